"""Conditional GET for what clients poll: a validator from a cheap stamp, 304 before rendering.

The patient's own reads (/me/...) may be kept on their phone (never in a shared cache:
`private`) and must be revalidated each time (`no-cache`). Staff reads keep `no-store` (a clinic
workstation's browser must not keep patient records on disk): a client that holds the body in
memory still revalidates with its ETag. Every answer depends on who asks: Vary: Authorization.
Lists get weak validators (the same content, not the same bytes, and no write checks them); an
object whose ETag a PATCH checks in If-Match gets a strong one.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, g, request
from flask_smorest import Blueprint
from flask_smorest.exceptions import PreconditionFailed

from schemas.common import digest
from service.api.middleware import rendered
from service.api.paths import API_PREFIX

PRIVATE_REVALIDATE = "private, no-cache"
OWN_DEVICE_PREFIX = API_PREFIX + "/me"
NOT_MODIFIED = "Not modified: the If-None-Match ETag is current (no body)"


def unchanged(stamp: Any) -> Response | None:
    """A bodiless 304 when If-None-Match names this stamp's weak validator (compared weakly, as
    RFC 9110 says for If-None-Match); else the body this process kept for the stamp, if any;
    None to go on and render, with the validator set."""
    tag = digest(stamp)
    g.cache_validator = (tag, True)
    if request.if_none_match.contains_weak(tag):
        return Response(status=304)
    return rendered.kept(tag)


def strong(blp: Blueprint, stamp: Any) -> str:
    """The strong validator of a @blp.etag view (raises 304 when the client has it)."""
    tag = digest(stamp)
    g.cache_validator = (tag, False)
    blp.set_etag(stamp)
    return tag


def install(app: Flask) -> None:
    def add_validator(response: Response) -> Response:
        validator = g.get("cache_validator")
        if validator is None or response.status_code not in (200, 304):
            return response
        tag, weak = validator
        response.set_etag(tag, weak=weak)
        if request.path == OWN_DEVICE_PREFIX or request.path.startswith(OWN_DEVICE_PREFIX + "/"):
            response.headers["Cache-Control"] = PRIVATE_REVALIDATE
        response.vary.add("Authorization")
        if response.status_code == 304:
            # flask-smorest's 304 went through the problem renderer; a 304 has no body.
            response.headers.pop("Content-Type", None)
            response.headers.pop("Content-Length", None)
            response.set_data(b"")
        return response

    app.after_request(add_validator)


def check_if_match(blp: Blueprint, row: dict[str, Any], *current: Any) -> None:
    """If-Match may name the row's version tag that list items carry (`row_version` of
    schemas.common) or what a GET answered (`current`: flask-smorest's check_etag arguments):
    either says the row is as the client last saw it."""
    try:
        blp.check_etag(row)
    except PreconditionFailed:
        blp.check_etag(*current)

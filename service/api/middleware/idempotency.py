"""Idempotency-Key on every POST that creates something: a retry gets the first response.

The creating routes are found in the URL map (POST answering 201, behind login), so a new one
is covered without a decorator. The key is claimed in its own committed transaction before the
view runs, so a retry in another process sees it. The response is stored on it in the request's
own transaction when the view wrote something (service.api.middleware.transaction): the change
and the answer to replay are committed together or not at all. A claim older than its lease
whose request stored nothing is taken over by the retry.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from flask import Flask, Response, current_app, g, request
from flask_smorest import Api
from flask_smorest.spec.plugins import FlaskPlugin
from sqlalchemy.orm import Session

from service.accounts.tokens import authenticate
from service.api.context import bearer_token, login_required, settings
from service.api.middleware import transaction
from service.db import SessionFactory, unit_of_work
from service.errors import IdempotencyInFlight
from service.trust import idempotency
from service.trust.idempotency import HEADER, StoredResponse

log = logging.getLogger(__name__)

REPLAYED_HEADER = "Idempotent-Replayed"
REPLAYED_HEADERS = ("Content-Type", "Location", "ETag")
# Not processed: a retry must be able to run the request for real.
NOT_STORED_STATUSES = frozenset({401, 429})
# Responses carrying a secret that the database keeps only as a hash are never stored for
# replay. Retrying them is safe anyway: a new invitation replaces the earlier code.
SECRET_RESPONSES = frozenset(
    {"auth.PatientInvitation", "calendar.MyCalendarFeed", "calendar.StaffCalendarFeed"}
)
EXTENSION = "cd20_idempotent_endpoints"


def install(app: Flask, api: Api) -> None:
    """Honour Idempotency-Key on the creating routes and document the header on them."""
    endpoints = creating_endpoints(app)
    app.extensions[EXTENSION] = endpoints
    app.before_request(claim_idempotency_key)
    transaction.add_record(app, idempotency_record)
    _document(app, api, endpoints)


def creating_endpoints(app: Flask) -> frozenset[str]:
    """Endpoints of the POST routes that answer 201 and act for a logged-in user."""
    found = set()
    for rule in app.url_map.iter_rules():
        if "POST" not in (rule.methods or ()) or rule.endpoint in SECRET_RESPONSES:
            continue
        view_class = getattr(app.view_functions.get(rule.endpoint), "view_class", None)
        method = getattr(view_class, "post", None)
        apidoc: dict[str, Any] = getattr(method, "_apidoc", {})
        if 201 not in apidoc.get("success_status_codes", ()):
            continue
        # Keys are scoped per user: a route without login (activation) has nobody to scope by.
        if login_required in getattr(view_class, "decorators", ()):
            found.add(rule.endpoint)
    return frozenset(found)


def claim_idempotency_key() -> Response | None:
    """Before the view: claim the key, or answer with the first response (or 409 / 422)."""
    if request.method != "POST" or request.endpoint not in current_app.extensions[EXTENSION]:
        return None
    raw_key = request.headers.get(HEADER)
    if raw_key is None:
        return None
    key = idempotency.check_key(raw_key)
    with SessionFactory() as session:
        # The view authenticates again; the actor is known now for a replay or a refusal here.
        g.actor = authenticate(session, settings(), bearer_token())
    user_id = g.actor.user_id
    path = _request_path()
    fingerprint = idempotency.request_fingerprint(request.method, path, request.get_data())
    with unit_of_work() as session:
        claim = idempotency.claim_key(
            session,
            user_id=user_id,
            key=key,
            method=request.method,
            path=path,
            request_hash=fingerprint,
            ttl=timedelta(seconds=settings().idempotency_key_ttl_s),
            lease=timedelta(seconds=settings().idempotency_lease_s),
        )
    if claim.replay is not None:
        return _replay(claim.replay)
    g.idempotency_claim = claim
    return None


def idempotency_record(response: Response) -> transaction.RequestRecord | None:
    """After the view: keep its response on the key, or free the key if it failed (5xx)."""
    claim: idempotency.Claim | None = g.get("idempotency_claim")
    if claim is None or claim.record_id is None or claim.claimed_at is None:
        return None
    record_id, claimed_at = claim.record_id, claim.claimed_at
    status = response.status_code
    if status >= 500 or status in NOT_STORED_STATUSES or response.is_streamed:

        def release(session: Session, *, with_changes: bool) -> None:
            idempotency.release_key(session, record_id, claimed_at=claimed_at)

        return release
    kept = {name: response.headers[name] for name in REPLAYED_HEADERS if name in response.headers}
    stored = StoredResponse(status=status, body=response.get_data(), headers=kept)

    def keep(session: Session, *, with_changes: bool) -> None:
        ours = idempotency.record_response(session, record_id, stored, claimed_at=claimed_at)
        if not ours and with_changes:
            # The claim lapsed and a retry took the key over: its outcome stands, not ours.
            raise IdempotencyInFlight(
                "Another request with this Idempotency-Key took over: retry to get its answer"
            )

    return keep


def _replay(stored: StoredResponse) -> Response:
    response = Response(stored.body, status=stored.status)
    for name, value in stored.headers.items():
        response.headers[name] = value
    response.headers[REPLAYED_HEADER] = "true"
    return response


def _request_path() -> str:
    if not request.query_string:
        return request.path
    pairs = sorted(request.args.items(multi=True))
    return request.path + "?" + "&".join(f"{name}={value}" for name, value in pairs)


def _document(app: Flask, api: Api, endpoints: frozenset[str]) -> None:
    api.spec.components.parameter(
        "IdempotencyKey",
        "header",
        {
            "name": HEADER,
            "required": False,
            "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
            "description": (
                "Recommended. A retry with the same key returns the first response (with "
                f"`{REPLAYED_HEADER}: true`) instead of creating a second object; the same key "
                "with another body is 422 idempotency_key_reused, and 409 idempotency_in_flight "
                "while the first request runs (at most a short lease: if it never finished, the "
                "retry after the lease runs the request). Keys are per user and kept 24 hours."
            ),
        },
    )
    paths = api.spec.to_dict()["paths"]
    reference = {"$ref": "#/components/parameters/IdempotencyKey"}
    for rule in app.url_map.iter_rules():
        operation = paths.get(FlaskPlugin.flaskpath2openapi(rule.rule), {}).get("post")
        if rule.endpoint in endpoints and operation is not None:
            operation.setdefault("parameters", []).append(reference)

"""Swagger UI's assets for /docs, served from an installed, pinned package: no CDN, so the docs
work on a clinic's closed network and the page's policy allows only this origin."""

from __future__ import annotations

import mimetypes
from functools import lru_cache
from pathlib import Path

import flask_swagger_ui
from flask import Flask, Response, request
from werkzeug.exceptions import NotFound
from werkzeug.security import safe_join

ASSETS_URL = "/docs/assets/"
ASSETS_DIR = Path(flask_swagger_ui.__file__).parent / "dist"
# The files change only with the package's pinned version.
ASSETS_MAX_AGE_S = 24 * 3600


def install(app: Flask) -> None:
    app.add_url_rule(ASSETS_URL + "<path:filename>", "docs_assets", serve_asset, methods=["GET"])


def serve_asset(filename: str) -> Response:
    found = _read(filename)
    if found is None:
        raise NotFound()
    content, mimetype = found
    response = Response(content, mimetype=mimetype)
    response.cache_control.public = True
    response.cache_control.max_age = ASSETS_MAX_AGE_S
    response.add_etag()
    response.make_conditional(request)
    return response


# Bounded: a request for any made-up name must not grow the cache.
@lru_cache(maxsize=32)
def _read(filename: str) -> tuple[bytes, str] | None:
    """The asset's bytes, read once (a handful of files, 2.5 MB in all), and its media type."""
    path = safe_join(str(ASSETS_DIR), filename)
    if path is None or not Path(path).is_file():
        return None
    mimetype = mimetypes.guess_type(path)[0] or "application/octet-stream"
    return Path(path).read_bytes(), mimetype

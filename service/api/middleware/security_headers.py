"""Security headers on every response, and CORS for the web clients named in the settings."""

from __future__ import annotations

import base64
import hashlib
import re
from urllib.parse import urlsplit

from flask import Flask, Response, request
from flask_cors import CORS

from service.config import Settings

API_PREFIX = "/api/"
# JSON answers are never rendered: nothing may load, frame or submit anything.
API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
_INLINE_SCRIPT = re.compile(rb"<script>(.*?)</script>", re.DOTALL)

CORS_ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
]
CORS_EXPOSE_HEADERS = ["ETag", "Location", "Retry-After", "Idempotent-Replayed"]
CORS_MAX_AGE_S = 600


def install(app: Flask, settings: Settings) -> None:
    docs_origin = _origin(app.config.get("OPENAPI_SWAGGER_UI_URL") or "")
    hsts = (
        f"max-age={settings.hsts_max_age_s}; includeSubDomains"
        if settings.hsts_max_age_s > 0
        else None
    )

    def add_security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("X-Frame-Options", "DENY")
        if response.mimetype == "text/html":
            # A page that set its own policy (the staff console's) keeps it.
            headers.setdefault("Content-Security-Policy", docs_policy(response, docs_origin))
        else:
            headers["Content-Security-Policy"] = API_CSP
        if request.path.startswith(API_PREFIX):
            # Patient data must not stay in browser or proxy caches.
            headers.setdefault("Cache-Control", "no-store")
        if hsts:
            headers["Strict-Transport-Security"] = hsts
        return response

    app.after_request(add_security_headers)
    if settings.cors_origins:
        CORS(
            app,
            resources={r"/api/*": {"origins": list(settings.cors_origins)}},
            allow_headers=CORS_ALLOW_HEADERS,
            expose_headers=CORS_EXPOSE_HEADERS,
            methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
            # Bearer tokens, not cookies.
            supports_credentials=False,
            max_age=CORS_MAX_AGE_S,
        )


def docs_policy(response: Response, asset_origin: str) -> str:
    """The interactive docs page: its assets from the CDN, its own inline script by hash."""
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script).digest()).decode() + "'"
        for script in (() if response.is_streamed else _INLINE_SCRIPT.findall(response.get_data()))
    )
    assets = asset_origin or "'self'"
    return (
        "default-src 'none'; "
        f"script-src {assets} {hashes}; "
        # Swagger UI sets inline styles from its script.
        f"style-src {assets} 'unsafe-inline'; "
        f"img-src 'self' data: {assets}; "
        f"font-src {assets} data:; "
        "connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ).replace("  ", " ")


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else ""

"""Rate limits on log-in, activation and password change (Flask-Limiter), per client address
and per account from that address.

The per-account limit counts one account's attempts from one address, never from every address
together: a limit across addresses would let anyone keep the real user out by guessing. (Wrong
passwords also lock an address out of an account: service.accounts.users.log_in.)

Counters live in Redis when REDIS_URL is set, so every API process shares them; in memory
otherwise (one process). If Redis stops answering, each process falls back to its own memory.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import time
from collections.abc import Callable
from typing import Any

from flask import Flask, Response, current_app, request
from flask_limiter import Limiter, RateLimitExceeded
from flask_limiter.util import get_remote_address
from limits import parse_many

from service.api.problems import problem
from service.config import ConfigurationError, Settings

log = logging.getLogger(__name__)

EXTENSION = "cd20_limiter"
# Endpoint -> the body field naming the account the request tries to get into (None: the
# signed-in caller's own account, which the password check's lock counts).
LIMITED_ENDPOINTS: dict[str, str | None] = {
    "auth.Token": "username",
    "auth.Activate": "code",
    "me.MyPassword": None,
}
# The secret calendar feed URL: counted per feed (by the token's hash), not per address, since
# hosted calendars (Google, Outlook) fetch every subscriber's feed from a few shared addresses.
FEED_ENDPOINT = "calendar.SecretFeed"


def install(app: Flask, settings: Settings) -> Limiter | None:
    """Put the per-address and per-account limits on the log-in and activation routes."""
    if not settings.rate_limits_enabled:
        return None
    for name in ("login_limit_per_address", "login_limit_per_account", "calendar_feed_limit"):
        try:
            parse_many(getattr(settings, name))
        except ValueError as exc:
            raise ConfigurationError(f"{name}: {exc}") from exc
    if settings.redis_url is None and settings.environment == "production":
        log.warning("REDIS_URL is unset: each process counts login attempts on its own")
    limiter = Limiter(
        key_func=address_key,
        app=app,
        storage_uri=settings.redis_url or "memory://",
        # A moving window: no burst of twice the limit around a window's edge.
        strategy="moving-window",
        key_prefix=settings.rate_limit_key_prefix,
        headers_enabled=False,
        in_memory_fallback_enabled=True,
    )
    for endpoint, field in LIMITED_ENDPOINTS.items():
        view: Any = app.view_functions[endpoint]
        if field is not None:
            per_account = account_key(field)
            view = limiter.limit(settings.login_limit_per_account, key_func=per_account)(view)
        view = limiter.limit(settings.login_limit_per_address, key_func=address_key)(view)
        app.view_functions[endpoint] = view
    if FEED_ENDPOINT in app.view_functions:
        feed_view: Any = app.view_functions[FEED_ENDPOINT]
        feed_view = limiter.limit(settings.calendar_feed_limit, key_func=feed_key)(feed_view)
        app.view_functions[FEED_ENDPOINT] = feed_view
    app.register_error_handler(RateLimitExceeded, too_many_requests)
    app.extensions[EXTENSION] = limiter
    return limiter


def address_key() -> str:
    return "address:" + get_remote_address()


def account_key(field: str) -> Callable[[], str]:
    """The submitted account (username or activation code), hashed: no logins kept in Redis."""

    def key() -> str:
        body = request.get_json(silent=True)
        value = body.get(field) if isinstance(body, dict) else None
        # A login name is counted per address (see above); an activation code is a secret
        # nobody can aim at another's account with, so it counts from every address.
        where = f":{get_remote_address()}" if field == "username" else ""
        if not isinstance(value, str):
            return f"{field}:none{where}"
        # As the use cases compare them: codes without dashes or spaces, e-mails lower-cased.
        value = re.sub(r"[\s-]", "", value).upper() if field == "code" else value.strip().lower()
        return f"{field}:" + hashlib.sha256(value.encode()).hexdigest()[:32] + where

    return key


def feed_key() -> str:
    """The feed named in the URL, hashed: no feed token is kept in Redis."""
    token = (request.view_args or {}).get("feed_token", "")
    return "feed:" + hashlib.sha256(str(token).encode()).hexdigest()[:32]


def too_many_requests(error: RateLimitExceeded) -> Response:
    limiter: Limiter = current_app.extensions[EXTENSION]
    breached = limiter.current_limit
    retry_after = max(1, math.ceil(breached.reset_at - time.time())) if breached else 60
    return problem(
        429,
        code="rate_limited",
        detail="Too many attempts: wait before trying again",
        headers={"Retry-After": str(retry_after)},
    )

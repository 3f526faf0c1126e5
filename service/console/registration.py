"""Registering the staff console on the app: its blueprint, CSRF protection and session hooks."""

from __future__ import annotations

import hashlib
from typing import Any

from flask import Flask, Request, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface

from service.config import Settings

CONSOLE_PATH = "/console"


def register_console(app: Flask, settings: Settings) -> None:
    from service.console import context
    from service.console.blueprint import bp, csrf
    from service.console.views import auth, clinic, monitoring, patients, plans, today, worklist

    del clinic, monitoring, patients, plans, today, worklist  # imported for their routes
    # Flask-WTF's token lives in Flask's signed session cookie, scoped to the console.
    app.config.update(
        WTF_CSRF_CHECK_DEFAULT=False,  # checked by the console's own hook: the API uses tokens
        WTF_CSRF_TIME_LIMIT=None,  # the token lives as long as the console session
        SESSION_COOKIE_NAME="cd20_console_form",
        SESSION_COOKIE_PATH=CONSOLE_PATH + "/",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=context.secure_cookies(settings),
    )
    app.session_interface = ConsoleSessions()
    csrf.init_app(app)
    app.register_blueprint(bp)
    _limit_sign_in(app, settings, auth.SIGN_IN_ENDPOINT + "_post")


class ConsoleSessions(SecureCookieSessionInterface):
    """Flask's signed session cookie holds the console's form token and nothing else: its path is
    the console's, so no other request carries it. Only console requests open it; any other
    gets Flask's null session, and the API's requests do not pay for a signer each."""

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        if not (request.path == CONSOLE_PATH or request.path.startswith(CONSOLE_PATH + "/")):
            return None
        return super().open_session(app, request)


def _limit_sign_in(app: Flask, settings: Settings, endpoint: str) -> None:
    """The API's log-in limits, per address and per account from that address."""
    limiter: Any = app.extensions.get("cd20_limiter")
    if limiter is None:
        return

    def address() -> str:
        return "address:" + (request.remote_addr or "unknown")

    def account() -> str:
        login = (request.form.get("email") or "").strip().lower()
        digest = hashlib.sha256(login.encode()).hexdigest()[:32]
        return f"username:{digest}:{request.remote_addr or 'unknown'}"

    view: Any = app.view_functions[endpoint]
    view = limiter.limit(settings.login_limit_per_account, key_func=account)(view)
    view = limiter.limit(settings.login_limit_per_address, key_func=address)(view)
    app.view_functions[endpoint] = view

"""Sign-in and sign-out."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from service.accounts import console_sessions
from service.console.blueprint import bp
from service.console.context import COOKIE, audit_page, db, hold_commit, secure_cookies, settings
from service.errors import DomainError

SIGN_IN_ENDPOINT = "console.login"


def _next_page() -> str:
    """Back to the page that asked for the sign-in: a path of the console only."""
    wanted = request.values.get("next") or ""
    parts = urlsplit(wanted)
    if parts.scheme or parts.netloc or not parts.path.startswith("/console/"):
        return url_for("console.today")
    return wanted


@bp.get("/login")
def login() -> Any:
    return render_template("console/login.html", next=request.args.get("next", ""))


@bp.post("/login")
def login_post() -> Any:
    email = request.form.get("email", "")
    outcome = console_sessions.sign_in(
        db(),
        settings(),
        email=email,
        password=request.form.get("password", ""),
        client_address=request.remote_addr,
    )
    hold_commit()  # a failed attempt is counted (and audited) even though the sign-in fails
    # Every attempt naming an account reaches its clinic's audit trail, as the API's log-in.
    account = outcome.account
    audit_page(
        "session",
        None,
        action="create",
        clinic_id=account.clinic_id if account else None,
        account_id=account.user_id if account else None,
    )
    if outcome.token is None:
        refusal = outcome.refusal
        status = refusal.status if isinstance(refusal, DomainError) else 401
        page = render_template(
            "console/login.html", refusal=refusal, email=email, next=request.form.get("next", "")
        )
        headers = getattr(refusal, "headers", None) or {}
        return page, status, headers
    response: Response = redirect(_next_page())
    response.set_cookie(
        COOKIE,
        outcome.token,
        httponly=True,
        samesite="Strict",
        secure=secure_cookies(settings()),
        path="/console/",
        max_age=int(console_sessions.ABSOLUTE_TIMEOUT.total_seconds()),
    )
    return response


@bp.post("/logout")
def logout() -> Any:
    console_sessions.sign_out(db(), request.cookies.get(COOKIE))
    hold_commit()
    response: Response = redirect(url_for("console.login"))
    response.delete_cookie(COOKIE, path="/console/")
    return response

"""The console's blueprint: its templates and vendored assets, hooks, headers and error pages."""

from __future__ import annotations

import math
import time
from typing import Any

from flask import Blueprint, Response, current_app, g, render_template
from flask_limiter import RateLimitExceeded
from flask_wtf.csrf import CSRFError, CSRFProtect

from service.console import context
from service.console.registration import CONSOLE_PATH
from service.core.wall_clock import local_today
from service.errors import DomainError

bp = Blueprint(
    "console",
    __name__,
    url_prefix=CONSOLE_PATH,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
)
csrf = CSRFProtect()

# Self only: no inline script or style, nothing from another origin, forms post to the console.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)


@bp.before_request
def _start() -> None:
    context.request_started()
    # Every form of the console carries its token (the API's bearer-token routes do not).
    csrf.protect()


@bp.after_request
def _finish(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = CONSOLE_CSP
    # Over HTTPS, Flask-WTF also checks that a form comes from this origin (its Referer):
    # sent to the console itself, never to another site.
    response.headers["Referrer-Policy"] = "same-origin"
    # Patient data must not stay in the browser's cache or a proxy's.
    response.headers["Cache-Control"] = "no-store"
    # The change and its audit event commit together (or neither), as the API's do.
    return context.finish(response)


@bp.teardown_request
def _close(exc: BaseException | None = None) -> None:
    context.close_db(exc)


@bp.errorhandler(CSRFError)
def _csrf_refused(error: CSRFError) -> Any:
    g.pop("console_seen", None)
    context.load_actor()  # the refusal comes before the page's own sign-in check: show the nav
    return (
        render_template(
            "console/error.html",
            status=400,
            code="csrf_failed",
            title="The form was refused",
            detail="The form had no valid security token (it may have been open too long, or "
            "sent from another site). Reload the page and send it again.",
        ),
        400,
    )


@bp.errorhandler(RateLimitExceeded)
def _too_many(error: RateLimitExceeded) -> Any:
    page = render_template(
        "console/login.html",
        next="",
        refusal={
            "code": "rate_limited",
            "title": "Too many attempts",
            "detail": "Too many attempts: wait before trying again",
        },
    )
    limiter: Any = current_app.extensions.get("cd20_limiter")
    breached = limiter.current_limit if limiter is not None else None
    retry_after = max(1, math.ceil(breached.reset_at - time.time())) if breached else 60
    return page, 429, {"Retry-After": str(retry_after)}


@bp.errorhandler(DomainError)
def _refused(error: DomainError) -> Any:
    return render_template("console/error.html", refusal=error, status=error.status), error.status


@bp.app_template_filter("local")
def _local(moment: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    return context.local(moment, fmt)


@bp.app_template_filter("local_input")
def _local_input(moment: Any) -> str:
    """A moment as a datetime-local field's value, on the clinic's wall clock."""
    return moment.astimezone(context.zone()).strftime("%Y-%m-%dT%H:%M") if moment else ""


@bp.context_processor
def _globals() -> dict[str, Any]:
    me = g.get("console_actor")
    today = local_today(context.zone().key).isoformat() if me is not None else ""
    return {"me": me, "today_iso": today}

"""Per-request state of the console: its database session, the signed-in staff member, the
clinic's zone, and the audit of pages that show patient data."""

from __future__ import annotations

import logging
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any
from zoneinfo import ZoneInfo

from flask import (
    Response,
    current_app,
    g,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.accounts import console_sessions
from service.config import Settings
from service.core.access import Actor
from service.db import WRITE_TRANSACTION, SessionFactory, unit_of_work, utcnow
from service.models import Clinic
from service.trust import audit

log = logging.getLogger(__name__)

COOKIE = "cd20_console"
SAFE_METHODS = frozenset({"GET", "HEAD"})


def settings() -> Settings:
    value: Settings = current_app.extensions["cd20_settings"]
    return value


def secure_cookies(current: Settings) -> bool:
    """Cookies only over HTTPS, except on a developer's machine and in the tests."""
    return current.environment not in ("development", "test")


def db() -> Session:
    """The request's session; a view holds its commit (`hold_commit`), `finish` ends it."""
    if "console_db" not in g:
        g.console_db = SessionFactory()
        if request.method not in SAFE_METHODS and g.console_db.get_bind().dialect.name == "sqlite":
            # As the API: a write request reads and writes one snapshot (service.db).
            g.console_db.connection(execution_options=WRITE_TRANSACTION)
    session: Session = g.console_db
    return session


def close_db(_exc: BaseException | None = None) -> None:
    session = g.pop("console_db", None)
    if session is not None:
        session.close()


def actor() -> Actor:
    value: Actor = g.console_actor
    return value


def zone() -> ZoneInfo:
    """The clinic's time zone: every time on a page is shown in it, and named."""
    if "console_zone" not in g:
        clinic = db().get(Clinic, actor().clinic_id)
        g.console_zone = ZoneInfo(clinic.time_zone if clinic else "UTC")
    value: ZoneInfo = g.console_zone
    return value


def load_actor() -> Actor | None:
    """The staff member the session cookie signs in (ending a session that is over)."""
    found = console_sessions.resume(db(), request.cookies.get(COOKIE))
    db().commit()
    if found is not None:
        g.console_actor = found
    return found


def signed_in(view: Callable[..., Any]) -> Callable[..., Any]:
    """Pages for signed-in staff; anyone else is sent to the sign-in page, then back."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if load_actor() is None:
            # Back to the page after signing in; a form's post is not repeated.
            wanted = request.full_path if request.method in SAFE_METHODS else None
            return redirect(url_for("console.login", next=wanted))
        return view(*args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class Seen:
    """What a page showed or changed, for the audit trail (ids only)."""

    resource_type: str
    resource_id: int | None
    subjects: tuple[tuple[str, int], ...]
    action: str
    operation: str | None
    # A request nobody is signed in for that names an account (a sign-in attempt).
    clinic_id: int | None = None
    account_id: int | None = None


def audit_page(
    resource_type: str,
    resource_id: int | None,
    *,
    subjects: tuple[tuple[str, int], ...] = (),
    operation: str | None = None,
    action: str | None = None,
    clinic_id: int | None = None,
    account_id: int | None = None,
) -> None:
    """Have this request written to the audit trail, as the API's requests are."""
    if action is None:
        action = "read" if request.method in SAFE_METHODS else "update"
        if request.method == "POST" and operation is not None:
            action = "execute"
    if not subjects and resource_id is not None:
        subjects = ((resource_type, resource_id),)
    g.console_seen = Seen(
        resource_type, resource_id, subjects, action, operation, clinic_id, account_id
    )


def hold_commit() -> None:
    """The view's change is done: flushed now (ids, constraints), committed by `finish` with
    the request's audit event, so that neither is stored without the other."""
    db().flush()
    g.console_commit_held = True


def finish(response: Response) -> Response:
    """End the request's transaction once the answer is known, as the API does
    (service.api.middleware.transaction): a change commits together with its audit event; a
    read, a refusal or a failure is rolled back and its event written in a transaction of its
    own. If the change cannot commit, nothing of it is stored and the page says so."""
    held = g.pop("console_commit_held", False)
    session: Session | None = g.get("console_db")
    event = _audit_event(response.status_code)
    if held and session is not None and response.status_code < 500:
        try:
            if event is not None:
                audit.record_event(session, g.get("console_actor"), event)
            session.commit()
            return response
        except Exception as error:
            session.rollback()
            response = _not_stored(error)
            event = _audit_event(response.status_code)
        finally:
            close_db()
    close_db()
    if event is not None:
        try:
            with unit_of_work() as own:
                audit.record_event(own, g.get("console_actor"), event)
        except Exception as error:  # the answer is decided; a lost event must be loud
            log_failure("console audit event NOT written", error)
    return response


def log_failure(message: str, error: BaseException) -> None:
    """Loud, with the traceback, but without the error's text: a database error's may quote
    the values stored (patient data)."""
    trace = "".join(traceback.format_tb(error.__traceback__))
    log.error("%s: %s\n%s", message, type(error).__name__, trace)


def _not_stored(error: Exception) -> Response:
    """The page when a change (or its audit event) could not be committed: nothing was stored."""
    if isinstance(error, IntegrityError):
        status, code, detail = 409, "conflict", "Conflicts with data already stored."
    else:
        log_failure("console change not committed", error)
        status, code, detail = 500, "internal_error", "Something went wrong on our side."
    page = render_template(
        "console/error.html",
        status=status,
        code=code,
        title="Nothing was saved",
        detail=f"{detail} Nothing was saved: reload the page and try again.",
    )
    return make_response(page, status)


def _audit_event(status_code: int) -> audit.AuditedRequest | None:
    """The request's audit event, once the answer is known (None: the page is not audited)."""
    seen: Seen | None = g.get("console_seen")
    who: Actor | None = g.get("console_actor")
    if seen is None:
        return None
    rule = request.url_rule.rule if request.url_rule else None
    return audit.AuditedRequest(
        request_id=g.setdefault("console_request_id", str(uuid.uuid4())),
        method=request.method,
        path_template=rule[:200] if rule else None,
        action=seen.action,
        resource_type=seen.resource_type,
        resource_id=str(seen.resource_id) if seen.resource_id is not None else None,
        status_code=status_code,
        source_address=(request.remote_addr or "")[:45] or None,
        occurred_at=g.get("console_started") or utcnow(),
        subjects=seen.subjects,
        operation=seen.operation,
        details={"via": "console"}
        | ({"account_id": seen.account_id} if who is None and seen.account_id else {}),
        clinic_id=seen.clinic_id,
    )


def request_started() -> None:
    g.console_started = utcnow()


def local(moment: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A moment in the clinic's zone, the zone named."""
    if moment is None:
        return ""
    here = moment.astimezone(zone())
    return f"{here.strftime(fmt)} {zone().key}"

"""Per-request session and actor: what every view needs from the request."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import current_app, g, request
from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from service.accounts.tokens import Caller, authenticate_caller, caller_of
from service.config import Settings
from service.core.access import Actor
from service.db import WRITE_TRANSACTION, SessionFactory, read_engine
from service.errors import InvalidToken, Unauthenticated
from service.models import Patient, TreatmentPlan

log = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class RequestSession(Session):
    """The request's session. A view's `commit()` is held: it flushes (ids are assigned, the
    constraints checked) and the transaction commits once the response is known, together with
    the request's audit event and idempotency record (service.api.middleware.transaction).
    A crash in between leaves neither the change nor its records."""

    commit_held = False
    # Bound to service.db.read_engine: each statement commits on its own, so it may not flush.
    autocommit_read = False
    # Whether anything was flushed: a read that wrote (and did not commit) is rolled back.
    wrote = False

    def commit(self) -> None:
        self.flush()
        self.commit_held = True

    def commit_request(self) -> None:
        """Commit the request's transaction: the one real commit of a request."""
        super().commit()
        self.commit_held = False


@event.listens_for(RequestSession, "before_flush")
def _refuse_writes_of_a_read(session: Session, _context: Any, _instances: Any) -> None:
    # On the read engine a flush would commit at once, where a read that wrote must roll back.
    if isinstance(session, RequestSession) and session.autocommit_read:
        raise RuntimeError("a read request tried to write; reads run in autocommit")


@event.listens_for(RequestSession, "do_orm_execute")
def _refuse_statements_that_write(state: ORMExecuteState) -> None:
    # The same for an UPDATE, INSERT or DELETE a read would run through the session.
    session = state.session
    writes = state.is_insert or state.is_update or state.is_delete
    if writes and isinstance(session, RequestSession) and session.autocommit_read:
        raise RuntimeError("a read request tried to write; reads run in autocommit")


@event.listens_for(RequestSession, "after_flush")
def _note_write(session: Session, _context: Any) -> None:
    if isinstance(session, RequestSession):
        session.wrote = True


@event.listens_for(RequestSession, "loaded_as_persistent")
def _hold_subject(session: Session, instance: Any) -> None:
    # The session's identity map holds objects weakly: the patients and plans a request loaded
    # are kept until it ends, so that its audit event finds who they belong to without a query.
    if isinstance(instance, Patient | TreatmentPlan):
        session.info.setdefault("held", []).append(instance)


def db() -> Session:
    """The request's session; the view commits it, teardown closes it."""
    if "db_session" not in g:
        g.db_session = _request_session()
    session: Session = g.db_session
    return session


def _request_session() -> RequestSession:
    options = SessionFactory.kw
    if request.method in SAFE_METHODS:
        reads = read_engine(options.get("bind"))
        if reads is not None:
            session = RequestSession(**{**options, "bind": reads})
            session.autocommit_read = True
            return session
    session = RequestSession(**options)
    if request.method not in SAFE_METHODS and session.get_bind().dialect.name == "sqlite":
        # See service.db.WRITE_TRANSACTION: a write request reads and writes one snapshot.
        session.connection(execution_options=WRITE_TRANSACTION)
    return session


def close_session(_exc: BaseException | None = None) -> None:
    session = g.pop("db_session", None)
    if session is not None:
        session.close()


def settings() -> Settings:
    value: Settings = current_app.extensions["cd20_settings"]
    return value


def actor() -> Actor:
    """The authenticated caller; reads their account row if no statement of the request has."""
    known: Actor | None = g.get("actor")
    if known is None:
        known = g.actor = authenticate_caller(db(), g.caller)
    return known


def caller() -> Caller:
    """The request's verified token, for a read whose first statement reads the account row too
    (service.accounts.tokens.with_account)."""
    value: Caller = g.caller
    return value


def audit_clinic(clinic_id: int, *, account_id: int) -> None:
    """The clinic an unauthenticated request concerns (a log-in naming one of its accounts), so
    the audit event reaches that clinic's admins."""
    g.audit_clinic_id = clinic_id
    g.audit_account_id = account_id


def bearer_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Send an access token: Authorization: Bearer <token>")
    return token.strip()


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Authenticate the bearer token before anything else is parsed.

    A write reads the account row first. A read may read it in its own first statement (see
    `caller`); whatever the read did, the row is checked before its answer is used, so a token
    whose account is disabled or signed out gets 401, never what the read found (its 404
    included). A read writes nothing (see RequestSession), so there is nothing to undo.
    """

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        g.caller = caller_of(settings(), bearer_token())
        if request.method not in SAFE_METHODS:
            actor()
            return view(*args, **kwargs)
        try:
            answer = view(*args, **kwargs)
        except InvalidToken:
            raise
        except BaseException:
            _refuse_a_revoked_caller()
            raise
        actor()
        return answer

    return wrapper


def _refuse_a_revoked_caller() -> None:
    """After a failed read: InvalidToken when the caller's account refuses the token. If the row
    cannot be read either (the read's own database failure, say), the read's failure stands."""
    try:
        actor()
    except InvalidToken:
        raise
    except Exception:
        log.debug("account row unread after a failed read", exc_info=True)

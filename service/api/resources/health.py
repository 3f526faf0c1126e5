"""Liveness and readiness probes."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import text
from sqlalchemy.orm import Session

from service.api.contract import HEALTH, operation
from service.db import SQLITE_BUSY_TIMEOUT_MS, SessionFactory
from service.errors import DomainError

blp = Blueprint("health", __name__, description="Liveness and readiness")


class DatabaseUnavailable(DomainError):
    status = 503
    code = "database_unavailable"
    title = "The database does not answer"


class DatabaseReadOnly(DomainError):
    status = 503
    code = "database_read_only"
    title = "The database answers but refuses writes"


# How long the probe's write may wait for another writer's lock before the answer is "not ready".
PROBE_LOCK_TIMEOUT_MS = 2000


def _status_body(**properties: str) -> dict[str, Any]:
    """An OpenAPI 200 response whose JSON body has these constant string members."""
    schema = {
        "type": "object",
        "properties": {
            name: {"type": "string", "enum": [value]} for name, value in properties.items()
        },
        "required": list(properties),
        "additionalProperties": False,
    }
    return {"200": {"description": "OK", "content": {"application/json": {"schema": schema}}}}


@blp.route("/healthz")
class Health(MethodView):
    @operation("checkLiveness", HEALTH)
    @blp.doc(security=[], responses=_status_body(status="ok"))
    def get(self) -> dict[str, str]:
        """Report that the process is alive."""
        return {"status": "ok"}


@blp.route("/readyz")
class Ready(MethodView):
    @operation(
        "checkReadiness",
        HEALTH,
        refusals={503: ("database_unavailable", "database_read_only")},
    )
    @blp.doc(security=[], responses=_status_body(status="ready", database="ok"))
    def get(self) -> dict[str, str]:
        """Report whether the database answers and takes writes."""
        # The write engine's session, not the request's: a GET's session may be one for reads
        # only (service.db.read_engine), and the probe is of the path writes take.
        with SessionFactory() as session:
            try:
                session.execute(text("SELECT 1"))
            except Exception as exc:
                raise DatabaseUnavailable() from exc
            try:
                _write_and_roll_back(session)
            except Exception as exc:
                # A read-only file or mount, PRAGMA query_only, a PostgreSQL standby or a
                # database set default_transaction_read_only: reads work, every write would fail.
                raise DatabaseReadOnly() from exc
        return {"status": "ready", "database": "ok"}


def _write_and_roll_back(session: Session) -> None:
    """A write that changes nothing, in a savepoint rolled back at once."""
    sqlite = session.get_bind().dialect.name == "sqlite"
    savepoint = session.begin_nested()
    try:
        if sqlite:
            session.execute(text(f"PRAGMA busy_timeout = {PROBE_LOCK_TIMEOUT_MS}"))
        else:
            session.execute(text(f"SET LOCAL lock_timeout = {PROBE_LOCK_TIMEOUT_MS}"))
        session.execute(text("UPDATE alembic_version SET version_num = version_num"))
    finally:
        savepoint.rollback()
        if sqlite:
            session.execute(text(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}"))

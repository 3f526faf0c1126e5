"""On PostgreSQL the audit table itself refuses UPDATE, DELETE and TRUNCATE (migration 0002)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, func, insert, select, text
from sqlalchemy.exc import ProgrammingError

from service.db import utcnow
from service.models import AuditEvent

pytestmark = pytest.mark.postgres


@pytest.fixture
def connection(requires_postgres) -> Iterator[Connection]:
    """A connection in a transaction that is rolled back; each refusal runs in a savepoint."""
    with requires_postgres.connect() as connection:
        outer = connection.begin()
        connection.execute(
            insert(AuditEvent).values(
                occurred_at=utcnow(),
                request_id="req-1",
                actor_id=1,
                actor_role="clinician",
                clinic_id=1,
                action="read",
                resource_type="patient",
                resource_id="1",
                patient_id=1,
                outcome="success",
                status_code=200,
                source_address="127.0.0.1",
                method="GET",
                path_template="/api/v1/patients/<int:patient_id>",
                details={},
            )
        )
        yield connection
        outer.rollback()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_event SET outcome = 'denied'",
        "UPDATE audit_event SET actor_id = NULL WHERE request_id = 'req-1'",
        "DELETE FROM audit_event",
        "DELETE FROM audit_event WHERE request_id = 'req-1'",
        "TRUNCATE audit_event",
        # Statement-level: refused even when no row matches.
        "UPDATE audit_event SET outcome = 'denied' WHERE false",
        "DELETE FROM audit_event WHERE false",
    ],
)
def test_audit_rows_cannot_be_changed_or_removed(connection, statement):
    savepoint = connection.begin_nested()
    with pytest.raises(ProgrammingError, match="audit_event is append-only"):
        connection.execute(text(statement))
    savepoint.rollback()
    row = connection.execute(
        select(AuditEvent.outcome, AuditEvent.actor_id).where(AuditEvent.request_id == "req-1")
    ).one()
    assert tuple(row) == ("success", 1)


def test_appending_still_works(connection):
    before = connection.scalar(select(func.count()).select_from(AuditEvent))
    connection.execute(
        insert(AuditEvent).values(
            occurred_at=utcnow(),
            request_id="req-2",
            action="execute",
            resource_type="session",
            outcome="denied",
            status_code=401,
            method="POST",
            details={"operation": "token"},
        )
    )
    assert connection.scalar(select(func.count()).select_from(AuditEvent)) == before + 1


def test_the_trigger_is_in_place(connection):
    triggers = connection.scalars(
        text(
            "SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_event'::regclass "
            "AND NOT tgisinternal"
        )
    ).all()
    # The statement trigger, and the row trigger every month partition inherits (0010).
    assert sorted(triggers) == ["audit_event_append_only", "audit_event_append_only_row"]
    unguarded = connection.scalars(
        text(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " WHERE i.inhparent = 'audit_event'::regclass AND NOT EXISTS (SELECT 1"
            " FROM pg_trigger t WHERE t.tgrelid = c.oid"
            " AND t.tgname = 'audit_event_append_only_truncate')"
        )
    ).all()
    assert unguarded == [], "partitions that TRUNCATE could empty"

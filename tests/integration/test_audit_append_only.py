"""The audit table refuses UPDATE and DELETE on every database: on PostgreSQL through migration
0002's trigger, on SQLite through 0003's (before it, a SQLite trail could be edited at will)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Connection, Engine, func, insert, select, text
from sqlalchemy.exc import DBAPIError

from service.db import create_db_engine, utcnow
from service.migrations import upgrade_database
from service.models import AuditEvent


@pytest.fixture
def connection(engine: Engine) -> Iterator[Connection]:
    """A connection in a transaction that is rolled back, holding one event."""
    with engine.connect() as connection:
        outer = connection.begin()
        connection.execute(
            insert(AuditEvent).values(
                occurred_at=utcnow(),
                request_id="req-append-only",
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
        "UPDATE audit_event SET patient_id = NULL WHERE request_id = 'req-append-only'",
        "UPDATE audit_event SET details = '{}' WHERE request_id = 'req-append-only'",
        "DELETE FROM audit_event",
        "DELETE FROM audit_event WHERE request_id = 'req-append-only'",
    ],
)
def test_no_database_lets_an_audit_event_be_changed_or_removed(connection, statement):
    savepoint = connection.begin_nested()
    with pytest.raises(DBAPIError, match="audit_event is append-only"):
        connection.execute(text(statement))
    savepoint.rollback()
    event = connection.execute(
        select(AuditEvent.outcome, AuditEvent.patient_id).where(
            AuditEvent.request_id == "req-append-only"
        )
    ).one()
    assert tuple(event) == ("success", 1)


def test_events_are_still_appended(connection):
    before = connection.scalar(select(func.count()).select_from(AuditEvent))
    connection.execute(
        insert(AuditEvent).values(
            request_id="req-2",
            action="create",
            resource_type="patient",
            outcome="success",
            status_code=201,
            method="POST",
            details={},
        )
    )
    assert connection.scalar(select(func.count()).select_from(AuditEvent)) == before + 1


def test_a_new_sqlite_database_refuses_edits_of_its_trail(tmp_path):
    """Checked on a SQLite file of its own, so the PostgreSQL run checks it too."""
    url = f"sqlite:///{tmp_path / 'trail.db'}"
    upgrade_database(url)
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            names = connection.scalars(
                text("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            ).all()
            assert sorted(names) == ["audit_event_no_delete", "audit_event_no_update"]
            connection.execute(
                insert(AuditEvent).values(
                    request_id="req-3",
                    action="read",
                    resource_type="patient",
                    outcome="success",
                    status_code=200,
                    method="GET",
                    details={},
                )
            )
            connection.commit()
            for statement in (
                "UPDATE audit_event SET status_code = 500",
                "DELETE FROM audit_event",
            ):
                with pytest.raises(DBAPIError, match="append-only"):
                    connection.execute(text(statement))
                connection.rollback()
            assert connection.scalar(select(AuditEvent.status_code)) == 200
    finally:
        engine.dispose()

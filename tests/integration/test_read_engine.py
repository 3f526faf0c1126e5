"""API reads on PostgreSQL run on the read engine (service.db.read_engine): each statement commits
on its own, so a read is its statements and its audit event, nothing more. On a database of its
own with real commits, as a deployed server runs, not inside a test's rolled-back transaction."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, event, func, select, text, update

import service.db
from service.api.context import db
from service.app import create_app
from service.db import engines, init_engine, unit_of_work
from service.models import AuditEvent, Clinic
from tests.bench.seed import scratch_database
from tests.factories import auth_headers, make_clinic, make_patient, make_plan, make_user

pytestmark = pytest.mark.postgres


@dataclass
class Served:
    app: Flask
    url: str
    staff: dict[str, str]
    plan_id: int
    other_plan_id: int


@pytest.fixture
def served(requires_postgres, database_url, settings) -> Iterator[Served]:
    with scratch_database(database_url, f"reads_{uuid.uuid4().hex[:8]}") as url:
        app = create_app(settings, database_url=url)

        @app.get("/test/read-that-writes")
        def read_that_writes() -> Any:
            db().add(Clinic(name="Written by a read", time_zone="UTC", settings={}))
            db().flush()
            return {}

        @app.get("/test/read-that-updates")
        def read_that_updates() -> Any:
            db().execute(update(Clinic).values(name="Written by a read"))
            return {}

        with unit_of_work() as session:
            clinic, other = make_clinic(session), make_clinic(session)
            staff = make_user(session, settings, clinic)
            other_staff = make_user(session, settings, other)
            plan = make_plan(session, make_patient(session, clinic), staff)
            other_plan = make_plan(session, make_patient(session, other), other_staff)
            served = Served(app, url, auth_headers(settings, staff), plan.id, other_plan.id)
        try:
            yield served
        finally:
            for engine in engines():
                engine.dispose()
            init_engine(database_url)  # the process engine the rest of the run uses


def events(url: str, request_id: str) -> list[tuple[str, int]]:
    """The audit events of one request, read on a connection of the test's own."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            rows = connection.execute(
                select(AuditEvent.outcome, AuditEvent.status_code).where(
                    AuditEvent.request_id == request_id
                )
            ).all()
    finally:
        engine.dispose()
    return [tuple(row) for row in rows]  # type: ignore[misc]


def test_a_read_is_answered_and_its_event_is_committed_with_it(served):
    client = served.app.test_client()
    response = client.get(f"/api/v1/plans/{served.plan_id}", headers=served.staff)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["id"] == served.plan_id
    assert events(served.url, response.headers["X-Request-ID"]) == [("success", 200)]

    reads = service.db.read_engine(service.db.get_engine())
    assert reads is not None
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()[:3]))

    event.listen(reads, "before_cursor_execute", seen)
    try:
        again = client.get(
            f"/api/v1/plans/{served.plan_id}",
            headers={**served.staff, "If-None-Match": response.headers["ETag"]},
        )
    finally:
        event.remove(reads, "before_cursor_execute", seen)
    assert again.status_code == 304
    assert events(served.url, again.headers["X-Request-ID"]) == [("success", 304)]
    # The caller's row with the plan's stamp, then the event: no SET LOCAL for the asynchronous
    # commit (the read engine's connections commit that way), and the event needs no transaction.
    assert len(statements) == 2, statements
    assert statements[-1] == "INSERT INTO audit_event"


def test_a_refused_read_is_audited_too(served):
    client = served.app.test_client()
    response = client.get(f"/api/v1/plans/{served.other_plan_id}", headers=served.staff)
    assert response.status_code == 404
    assert events(served.url, response.headers["X-Request-ID"]) == [("denied", 404)]


@pytest.mark.parametrize("path", ["/test/read-that-writes", "/test/read-that-updates"])
def test_a_read_that_tries_to_write_is_refused_and_nothing_is_stored(served, path):
    client = served.app.test_client()
    response = client.get(path)
    assert response.status_code == 500
    assert response.content_type == "application/problem+json"
    with unit_of_work() as session:
        written = session.scalar(
            select(func.count()).select_from(Clinic).where(Clinic.name == "Written by a read")
        )
    assert written == 0


def test_readiness_probes_the_write_path(served):
    response = served.app.test_client().get("/api/v1/readyz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ready", "database": "ok"}


def test_a_pooled_read_connection_the_server_dropped_is_replaced(served, monkeypatch):
    client = served.app.test_client()
    path = f"/api/v1/plans/{served.plan_id}"
    assert client.get(path, headers=served.staff).status_code == 200  # the pool holds one now
    database = served.url.rsplit("/", 1)[1]
    admin = create_engine(served.url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            dropped = connection.scalar(
                text(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = :database AND pid <> pg_backend_pid()"
                ),
                {"database": database},
            )
    finally:
        admin.dispose()
    assert dropped
    # A connection idle longer than this is pinged before use; make every one count as idle.
    monkeypatch.setattr(service.db, "PING_AFTER_IDLE_S", 0.0)
    response = client.get(path, headers=served.staff)
    assert response.status_code == 200, response.get_json()

"""How a request's audit event is committed: a successful read's in its own transaction without
waiting for the WAL flush (PostgreSQL), everything else synchronously (README, "The audit trail
at scale")."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.models import AuditEvent
from tests.api.test_statement_counts import counting
from tests.factories import make_patient, make_plan

ASYNC = "set local synchronous_commit to off"


def _statements(
    client: FlaskClient, session: Session, method: str, url: str, **kw: Any
) -> list[Any]:
    with counting(session.connection()) as statements:
        response = client.open(url, method=method, **kw)
    return [response.status_code, [" ".join(s.split()).lower() for s in statements]]


def _events(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(AuditEvent)) or 0)


def test_a_read_commits_its_event_without_waiting_for_the_disk_on_postgresql(
    client: FlaskClient, session: Session, clinic: Any, staff: Any, headers: dict[str, str]
) -> None:
    plan = make_plan(session, make_patient(session, clinic), staff)
    before = _events(session)

    status, statements = _statements(
        client, session, "GET", f"/api/v1/plans/{plan.id}", headers=headers
    )

    assert status == 200
    assert _events(session) == before + 1
    inserts = [i for i, s in enumerate(statements) if s.startswith("insert into audit_event")]
    assert len(inserts) == 1
    if session.get_bind().dialect.name == "postgresql":
        assert ASYNC in statements[: inserts[0]], "the read's event waited for the WAL flush"
    else:  # SQLite: a transaction of its own, committed synchronously
        assert ASYNC not in statements


def test_writes_and_refusals_commit_their_events_synchronously(
    client: FlaskClient, session: Session, clinic: Any, headers: dict[str, str]
) -> None:
    patient = make_patient(session, clinic)
    body = {"regimen": "ocrelizumab-iv", "start_date": (date.today() + timedelta(30)).isoformat()}
    before = _events(session)

    created, writing = _statements(
        client, session, "POST", f"/api/v1/patients/{patient.id}/plans", json=body, headers=headers
    )
    missing, refused = _statements(client, session, "GET", "/api/v1/plans/999999", headers=headers)

    assert (created, missing) == (201, 404)
    assert _events(session) == before + 2
    assert ASYNC not in writing
    assert ASYNC not in refused

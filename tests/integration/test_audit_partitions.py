"""The audit trail by month: PostgreSQL partitions (boundaries, append-only, kept ahead, pruned
reads) and a month's export (both databases)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from jobs.tasks import ensure_audit_partitions
from service.models import AuditEvent
from service.trust import audit
from service.trust.audit_partitions import (
    ensure_partitions,
    export_month,
    month_bounds,
    partition_of,
)
from tests.factories import actor_of, make_clinic, make_user


def _event(session: Session, at: datetime, *, clinic_id: int | None, request_id: str) -> int:
    event = AuditEvent(
        occurred_at=at,
        request_id=request_id,
        clinic_id=clinic_id,
        action="read",
        resource_type="plan",
        resource_id="1",
        outcome="success",
        status_code=200,
        method="GET",
        path_template="/api/v1/plans/<int:plan_id>",
        details={},
    )
    session.add(event)
    session.flush()
    return event.id


def _next_month(day: date) -> date:
    return month_bounds(day)[1].date()


def _where(session: Session, event_id: int) -> str:
    return str(
        session.execute(
            text("SELECT tableoid::regclass::text FROM audit_event WHERE id = :id"),
            {"id": event_id},
        ).scalar_one()
    )


def test_events_either_side_of_a_month_boundary_land_in_their_months(
    session: Session, requires_postgres: Any
) -> None:
    this_month = date.today().replace(day=1)
    boundary = month_bounds(this_month)[1]
    before = _event(session, boundary - timedelta(microseconds=1), clinic_id=1, request_id="a")
    after = _event(session, boundary, clinic_id=1, request_id="b")

    assert _where(session, before) == partition_of(this_month)
    assert _where(session, after) == partition_of(_next_month(this_month))


def test_an_event_beyond_the_partitions_made_is_still_stored(
    session: Session, requires_postgres: Any
) -> None:
    far = datetime.now(UTC) + timedelta(days=365 * 30)
    event_id = _event(session, far, clinic_id=1, request_id="far")
    assert _where(session, event_id) == "audit_event_default"


def test_the_trail_stays_append_only_through_a_partition_too(
    session: Session, requires_postgres: Any
) -> None:
    now = datetime.now(UTC)
    _event(session, now, clinic_id=1, request_id="kept")
    partition = partition_of(now.date())
    for statement in (
        "UPDATE audit_event SET status_code = 500",
        "DELETE FROM audit_event",
        f"UPDATE {partition} SET status_code = 500",
        f"DELETE FROM {partition}",
        f"TRUNCATE {partition}",
        "TRUNCATE audit_event",
    ):
        savepoint = session.begin_nested()
        with pytest.raises(DBAPIError, match="append-only"):
            session.execute(text(statement))
        savepoint.rollback()
    count = select(func.count()).select_from(AuditEvent).where(AuditEvent.request_id == "kept")
    assert session.scalar(count) == 1


def test_months_are_kept_ahead_by_the_runner(session: Session, requires_postgres: Any) -> None:
    # The migration made two years ahead; asking for three makes the twelve after them.
    assert ensure_partitions(session, months_ahead=24) == 0
    assert ensure_partitions(session, months_ahead=36) == 12
    far_month = date.today().replace(day=1) + timedelta(days=35 * 31)
    far_month = far_month.replace(day=1)
    event_id = _event(
        session, month_bounds(far_month)[0] + timedelta(hours=1), clinic_id=1, request_id="x"
    )
    assert _where(session, event_id) == partition_of(far_month)
    assert ensure_audit_partitions() == 0  # a year ahead: there already


def test_reading_a_clinics_month_scans_only_that_month(
    session: Session, settings: Any, requires_postgres: Any
) -> None:
    clinic = make_clinic(session)
    admin = make_user(session, settings, clinic, "admin")
    this_month = date.today().replace(day=1)
    start, end = month_bounds(this_month)
    for n in range(3):
        _event(session, start + timedelta(hours=n), clinic_id=clinic.id, request_id=f"r{n}")
    _event(session, end + timedelta(hours=1), clinic_id=clinic.id, request_id="next")

    page = audit.list_events(session, actor_of(admin), page=1, page_size=10, since=start, until=end)
    assert [e.request_id for e in page.items if e.request_id.startswith("r")] == [
        "r2",
        "r1",
        "r0",
    ]
    plan = session.execute(
        text(
            "EXPLAIN SELECT * FROM audit_event WHERE clinic_id = :clinic"
            " AND occurred_at >= :start AND occurred_at < :end"
            " ORDER BY occurred_at DESC LIMIT 10"
        ),
        {"clinic": clinic.id, "start": start, "end": end},
    ).scalars()
    plan_text = "\n".join(plan)
    assert partition_of(this_month) in plan_text
    assert partition_of(_next_month(this_month)) not in plan_text
    assert "audit_event_default" not in plan_text


def test_a_months_export_holds_that_month_only_oldest_first(session: Session) -> None:
    this_month = date.today().replace(day=1)
    start, end = month_bounds(this_month)
    _event(session, start + timedelta(hours=2), clinic_id=7, request_id="second")
    _event(session, start, clinic_id=7, request_id="first")
    _event(session, start - timedelta(microseconds=1), clinic_id=7, request_id="before")
    _event(session, end, clinic_id=7, request_id="after")
    _event(session, start + timedelta(hours=1), clinic_id=8, request_id="other clinic")

    exported = list(export_month(session, this_month, clinic_id=7))
    assert [e["request_id"] for e in exported] == ["first", "second"]
    json.dumps(exported)  # every value is plain JSON


def test_the_export_command_refuses_a_month_it_cannot_read() -> None:
    from service.cli import cli

    result = CliRunner().invoke(cli, ["audit", "export", "--month", "November"])
    assert result.exit_code != 0
    assert "YYYY-MM" in result.output

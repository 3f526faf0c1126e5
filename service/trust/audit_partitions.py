"""The audit trail's growth: month partitions kept ahead (PostgreSQL), and a month's export.

On PostgreSQL audit_event is partitioned by calendar month (UTC) of occurred_at (migration
0010_audit_partitions); `ensure_partitions` creates the coming months, so rows never land in
the DEFAULT partition that is only there so an insert cannot fail. SQLite has one table.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from service.models import AuditEvent

MONTHS_AHEAD = 12


def ensure_partitions(session: Session, *, months_ahead: int = MONTHS_AHEAD) -> int:
    """Create the month partitions up to `months_ahead` months from now; how many were made."""
    if session.get_bind().dialect.name != "postgresql":
        return 0
    made = session.execute(
        text("SELECT audit_event_ensure_partitions(:ahead)"), {"ahead": months_ahead}
    ).scalar_one()
    return int(made)


def month_bounds(month: date) -> tuple[datetime, datetime]:
    """The first instant of the (UTC) month and of the next one."""
    start = datetime(month.year, month.month, 1, tzinfo=UTC)
    following = datetime(month.year + month.month // 12, month.month % 12 + 1, 1, tzinfo=UTC)
    return start, following


def partition_of(month: date) -> str:
    """The PostgreSQL partition that holds the month's events."""
    return f"audit_event_{month.year:04d}_{month.month:02d}"


def export_month(
    session: Session, month: date, *, clinic_id: int | None = None, batch: int = 5000
) -> Iterator[dict[str, Any]]:
    """Every event of the (UTC) month, oldest first, as plain values (one JSON line each)."""
    start, end = month_bounds(month)
    stmt = select(AuditEvent).where(AuditEvent.occurred_at >= start, AuditEvent.occurred_at < end)
    if clinic_id is not None:
        stmt = stmt.where(AuditEvent.clinic_id == clinic_id)
    stmt = stmt.order_by(AuditEvent.occurred_at, AuditEvent.id).execution_options(yield_per=batch)
    for event in session.scalars(stmt):
        yield {
            "id": event.id,
            "occurred_at": event.occurred_at.isoformat(),
            "request_id": event.request_id,
            "actor_id": event.actor_id,
            "actor_role": event.actor_role,
            "clinic_id": event.clinic_id,
            "action": event.action,
            "resource_type": event.resource_type,
            "resource_id": event.resource_id,
            "patient_id": event.patient_id,
            "outcome": event.outcome,
            "status_code": event.status_code,
            "source_address": event.source_address,
            "method": event.method,
            "path_template": event.path_template,
            "details": event.details,
        }

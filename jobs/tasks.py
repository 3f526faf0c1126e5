"""Job functions: each opens a unit of work, calls one use case and logs its counts."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from jobs.runner import Runner
from service.db import unit_of_work, utcnow
from service.models import Delivery, Reminder

log = logging.getLogger("jobs")

DELIVERY_RETENTION = timedelta(days=90)

_runner: Runner | None = None


def use_runner(runner: Runner) -> None:
    global _runner
    _runner = runner


def logfmt(counts: dict[str, int]) -> str:
    """`claimed=3 sent=3 ...`: one line per tick that log tools can parse."""
    return " ".join(f"{name}={value}" for name, value in counts.items())


def dispatch_due_reminders() -> None:
    if _runner is None:
        raise RuntimeError("use_runner() was not called")
    counts = _runner.tick()
    if counts.claimed or counts.lost_lease:
        log.info("dispatch_due_reminders %s", logfmt(counts.as_log()))


def mark_overdue_items() -> None:
    from service.treatment.monitoring import mark_overdue

    # Overdue doses and tasks reach staff as the dose_overdue / monitoring_overdue reminders.
    with unit_of_work() as session:
        counts = mark_overdue(session, now=utcnow())
    log.info("mark_overdue_items %s", logfmt(counts))


def extend_rolling_schedules() -> None:
    from service.treatment.doses import extend_rolling_schedules as extend

    with unit_of_work() as session:
        added = extend(session, today=utcnow().date())
    log.info("extend_rolling_schedules added=%d", added)


def purge_old_deliveries() -> None:
    cutoff = utcnow() - DELIVERY_RETENTION
    with unit_of_work() as session:
        finished = select(Reminder.id).where(
            Reminder.status.in_(("sent", "dead", "cancelled", "expired"))
        )
        result = session.execute(
            delete(Delivery).where(
                Delivery.created_at < cutoff, Delivery.reminder_id.in_(finished)
            ),
            execution_options={"synchronize_session": False},
        )
    log.info("purge_old_deliveries deleted=%d", getattr(result, "rowcount", 0) or 0)


def purge_ended_console_sessions(now: datetime | None = None) -> int:
    """Delete the staff console's sessions that are over (`now` for tests)."""
    from service.accounts.console_sessions import purge_ended

    with unit_of_work() as session:
        deleted = purge_ended(session, now=now or utcnow())
    log.info("purge_ended_console_sessions deleted=%d", deleted)
    return deleted


def purge_expired_idempotency_keys(now: datetime | None = None) -> int:
    """Delete Idempotency-Keys past their 24 hours (`now` for tests)."""
    from service.trust.idempotency import purge_expired_keys

    with unit_of_work() as session:
        deleted = purge_expired_keys(session, now=now or utcnow())
    log.info("purge_expired_idempotency_keys deleted=%d", deleted)
    return deleted


def ensure_audit_partitions() -> int:
    """Keep the audit trail's month partitions a year ahead (PostgreSQL; nothing on SQLite)."""
    from service.trust.audit_partitions import ensure_partitions

    with unit_of_work() as session:
        made = ensure_partitions(session)
    log.info("ensure_audit_partitions created=%d", made)
    return made

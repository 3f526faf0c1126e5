"""Runner metrics: counters every runner adds to per batch, and the figures /metrics shows."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.models import MetricCounter, Reminder
from service.reminders.dispatch import CLAIMABLE, TickCounts

COUNTERS = ("claimed", "sent", "failed", "dead", "expired")
LATENESS_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


def _bucket_name(bound: float) -> str:
    return f"lateness_le_{bound:g}"


def record_batch(session: Session, counts: TickCounts) -> None:
    """Add a batch's counts in one statement (an upsert, safe with many runners)."""
    increments: dict[str, float] = {
        f"reminders_{name}": float(getattr(counts, name)) for name in COUNTERS
    }
    if counts.lateness_s:
        increments["lateness_count"] = float(len(counts.lateness_s))
        increments["lateness_sum"] = float(sum(counts.lateness_s))
        for bound in LATENESS_BUCKETS:
            increments[_bucket_name(bound)] = float(sum(1 for s in counts.lateness_s if s <= bound))
    rows = [{"name": k, "value": v} for k, v in sorted(increments.items()) if v]
    if not rows:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(MetricCounter).values(rows)
    stmt = stmt.on_conflict_do_update(
        index_elements=[MetricCounter.name],
        set_={"value": MetricCounter.value + stmt.excluded.value},
    )
    session.execute(stmt)


def read_counters(session: Session) -> dict[str, float]:
    return {
        name: value
        for name, value in session.execute(select(MetricCounter.name, MetricCounter.value))
    }


def due_backlog(session: Session, now: datetime) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Reminder)
            .where(Reminder.status.in_(CLAIMABLE), Reminder.due_at <= now)
        )
        or 0
    )


class RunnerCollector(Collector):
    """Reads the shared counters at scrape time, so any API process shows every runner's work."""

    def __init__(self, session_factory: Any, clock: Any) -> None:
        self.session_factory = session_factory
        self.clock = clock

    def collect(self) -> Iterator[Any]:
        with self.session_factory() as session:
            counters = read_counters(session)
            backlog = due_backlog(session, self.clock())
        yield GaugeMetricFamily(
            "cd20_reminders_due_backlog", "Reminders due now and not yet delivered", value=backlog
        )
        for name in COUNTERS:
            family = CounterMetricFamily(
                f"cd20_reminders_{name}", f"Reminders {name} by the runners"
            )
            family.add_metric([], counters.get(f"reminders_{name}", 0.0))
            yield family
        yield HistogramMetricFamily(
            "cd20_reminder_lateness_seconds",
            "Time from a reminder's fire time to its delivery",
            buckets=_buckets(counters),
            sum_value=counters.get("lateness_sum", 0.0),
        )


def _buckets(counters: dict[str, float]) -> list[tuple[str, float]]:
    buckets = [(f"{bound:g}", counters.get(_bucket_name(bound), 0.0)) for bound in LATENESS_BUCKETS]
    buckets.append(("+Inf", counters.get("lateness_count", 0.0)))
    return buckets

"""The runner's use cases: claim due reminders under a lease, deliver them, record every attempt."""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import and_, insert, select, update
from sqlalchemy.orm import Session

from service.config import Settings
from service.models import Delivery, Reminder, StaffAlert

log = logging.getLogger(__name__)

CLAIMABLE = ("pending", "failed", "claimed")
_RNG = random.Random()


@dataclass(frozen=True)
class Outgoing:
    """One claimed reminder as plain values: what every channel delivers."""

    reminder_id: int
    idempotency_key: str
    kind: str
    audience: str
    clinic_id: int
    patient_id: int
    subject_type: str
    subject_id: int
    fire_at: datetime
    payload: Mapping[str, Any]
    expires_at: datetime | None = None
    channels: tuple[str, ...] = ("inbox",)
    attempts: int = 0

    @classmethod
    def from_reminder(cls, reminder: Reminder) -> Outgoing:
        return cls(
            reminder_id=reminder.id,
            idempotency_key=reminder.idempotency_key,
            kind=reminder.kind,
            audience=reminder.audience,
            clinic_id=reminder.clinic_id,
            patient_id=reminder.patient_id,
            subject_type=reminder.subject_type,
            subject_id=reminder.subject_id,
            fire_at=reminder.fire_at,
            payload=dict(reminder.payload or {}),
            expires_at=reminder.expires_at,
            channels=tuple(reminder.channels or ("inbox",)),
            attempts=reminder.attempts,
        )


def backoff_delay(attempt: int, settings: Settings, rng: random.Random | None = None) -> timedelta:
    """How long to wait after failed attempt number `attempt` (1 for the first failure).

    Full jitter: uniform between zero and base * 2**(attempt - 1), that ceiling capped at the
    maximum delay, so many failed reminders do not all come back at the same moment.
    """
    base = max(0.0, float(settings.retry_base_delay_s))
    cap = max(0.0, float(settings.retry_max_delay_s))
    exponent = min(max(attempt, 1) - 1, 62)
    ceiling = min(cap, base * (2**exponent))
    return timedelta(seconds=(rng or _RNG).uniform(0.0, ceiling))


@dataclass
class TickCounts:
    claimed: int = 0
    sent: int = 0
    failed: int = 0
    dead: int = 0
    expired: int = 0
    lost_lease: int = 0
    lateness_s: list[float] = field(default_factory=list)

    def add(self, other: TickCounts) -> None:
        for name in ("claimed", "sent", "failed", "dead", "expired", "lost_lease"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.lateness_s.extend(other.lateness_s)

    def as_log(self) -> dict[str, int]:
        return {
            name: getattr(self, name)
            for name in ("claimed", "sent", "failed", "dead", "expired", "lost_lease")
        }


class ChannelResult(Protocol):
    outcome: str
    response_code: int | None
    error: str | None
    retryable: bool


class BatchChannel(Protocol):
    """A delivery channel; the inbox and worklist write in the runner's transaction."""

    name: str

    def deliver(self, session: Session, message: Outgoing) -> ChannelResult: ...


def claim_due_reminders(
    session: Session, *, owner: str, now: datetime, limit: int, lease: timedelta
) -> list[Outgoing]:
    """Take up to `limit` due reminders for `owner` until the lease runs out.

    A claimed row's due_at becomes its lease expiry, so a crashed runner's rows come due
    again by themselves. On PostgreSQL, SKIP LOCKED lets any number of runners claim at once.
    """
    due = (
        select(Reminder.id)
        .where(Reminder.status.in_(CLAIMABLE), Reminder.due_at <= now)
        .order_by(Reminder.due_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
    expiry = now + lease
    rows = session.execute(
        update(Reminder)
        .where(Reminder.id.in_(due.scalar_subquery()))
        .values(status="claimed", lease_owner=owner, lease_expires_at=expiry, due_at=expiry)
        .returning(
            Reminder.id,
            Reminder.idempotency_key,
            Reminder.kind,
            Reminder.audience,
            Reminder.clinic_id,
            Reminder.patient_id,
            Reminder.subject_type,
            Reminder.subject_id,
            Reminder.fire_at,
            Reminder.expires_at,
            Reminder.channels,
            Reminder.attempts,
            Reminder.payload,
        ),
        execution_options={"synchronize_session": False},
    ).all()
    return [
        Outgoing(
            reminder_id=row.id,
            idempotency_key=row.idempotency_key,
            kind=row.kind,
            audience=row.audience,
            clinic_id=row.clinic_id,
            patient_id=row.patient_id,
            subject_type=row.subject_type,
            subject_id=row.subject_id,
            fire_at=row.fire_at,
            expires_at=row.expires_at,
            channels=tuple(row.channels or ("inbox",)),
            attempts=row.attempts,
            payload=row.payload or {},
        )
        for row in sorted(rows, key=lambda r: r.id)
    ]


def _still_owned(session: Session, ids: Sequence[int], owner: str) -> set[int]:
    """Lock the rows still leased to `owner` (a lease lost to another runner is not ours)."""
    if not ids:
        return set()
    stmt = (
        select(Reminder.id)
        .where(Reminder.id.in_(ids), Reminder.lease_owner == owner, Reminder.status == "claimed")
        .order_by(Reminder.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return set(session.scalars(stmt))


def _channels_already_sent(session: Session, ids: Sequence[int]) -> dict[int, set[str]]:
    done: dict[int, set[str]] = defaultdict(set)
    if not ids:
        return done
    rows = session.execute(
        select(Delivery.reminder_id, Delivery.channel).where(
            Delivery.reminder_id.in_(ids), Delivery.outcome.in_(("sent", "skipped"))
        )
    )
    for reminder_id, channel in rows:
        done[reminder_id].add(channel)
    return done


def deliver_claimed(
    session: Session,
    claimed: Sequence[Outgoing],
    channels: Mapping[str, BatchChannel],
    *,
    owner: str,
    now: datetime,
    settings: Settings,
    rng: random.Random | None = None,
) -> TickCounts:
    """Deliver a claimed batch in the caller's transaction; only rows still leased to `owner`."""
    counts = TickCounts(claimed=len(claimed))
    owned = _still_owned(session, [c.reminder_id for c in claimed], owner)
    counts.lost_lease = len(claimed) - len(owned)
    already = _channels_already_sent(session, sorted(owned))
    status_updates: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    for message in claimed:
        if message.reminder_id not in owned:
            continue
        if message.expires_at is not None and message.expires_at <= now:
            status_updates.append(_release(message, "expired", now))
            counts.expired += 1
            continue
        attempt = message.attempts + 1
        retry_needed = False
        for name in message.channels:
            if name in already.get(message.reminder_id, ()):
                continue
            channel = channels.get(name)
            if channel is None:
                deliveries.append(
                    _attempt(message, name, attempt, "skipped", None, "not configured", now)
                )
                continue
            result = channel.deliver(session, message)
            deliveries.append(
                _attempt(
                    message, name, attempt, result.outcome, result.response_code, result.error, now
                )
            )
            if result.outcome == "failed" and result.retryable:
                retry_needed = True
            elif result.outcome == "failed":
                log.warning(
                    "reminder %s: %s failed for good: %s", message.reminder_id, name, result.error
                )
        if not retry_needed:
            update_row = _release(message, "sent", now)
            update_row["sent_at"] = now
            update_row["attempts"] = attempt
            status_updates.append(update_row)
            counts.sent += 1
            counts.lateness_s.append(max((now - message.fire_at).total_seconds(), 0.0))
        elif attempt >= settings.retry_max_attempts:
            update_row = _release(message, "dead", now)
            update_row["attempts"] = attempt
            status_updates.append(update_row)
            _alert_dead(session, message, now)
            counts.dead += 1
        else:
            update_row = _release(message, "failed", now)
            update_row["attempts"] = attempt
            update_row["due_at"] = now + backoff_delay(attempt, settings, rng)
            status_updates.append(update_row)
            counts.failed += 1
    if deliveries:
        session.execute(insert(Delivery), deliveries)
    if status_updates:
        session.execute(
            update(Reminder), status_updates, execution_options={"synchronize_session": False}
        )
    return counts


def _release(message: Outgoing, status: str, now: datetime) -> dict[str, Any]:
    return {
        "id": message.reminder_id,
        "status": status,
        "lease_owner": None,
        "lease_expires_at": None,
        "due_at": now,
        "updated_at": now,
    }


def _attempt(
    message: Outgoing,
    channel: str,
    attempt: int,
    outcome: str,
    response_code: int | None,
    error: str | None,
    now: datetime,
) -> dict[str, Any]:
    return {
        "reminder_id": message.reminder_id,
        "channel": channel,
        "attempt": attempt,
        "outcome": outcome,
        "response_code": response_code,
        "error": (error or None) and error[:500],
        "created_at": now,
    }


def _alert_dead(session: Session, message: Outgoing, now: datetime) -> None:
    session.add(
        StaffAlert(
            clinic_id=message.clinic_id,
            patient_id=message.patient_id,
            kind="reminder_dead",
            subject_type="reminder",
            subject_id=message.reminder_id,
            details={"reminder_kind": message.kind},
            created_at=now,
        )
    )


def release_claims(session: Session, ids: Sequence[int], *, owner: str, now: datetime) -> int:
    """Hand claimed rows back at shutdown so another runner takes them at once."""
    if not ids:
        return 0
    result = session.execute(
        update(Reminder)
        .where(
            and_(Reminder.id.in_(ids), Reminder.lease_owner == owner, Reminder.status == "claimed")
        )
        .values(status="pending", lease_owner=None, lease_expires_at=None, due_at=now),
        execution_options={"synchronize_session": False},
    )
    return int(getattr(result, "rowcount", 0) or 0)


SINGLE_RUNNER_LEASE = "reminder-runner"


def acquire_runner_lease(session: Session, *, owner: str, now: datetime, ttl: timedelta) -> bool:
    """On SQLite only one runner works at a time: take or renew the lease if free or ours."""
    from service.models import RunnerLease

    lease = session.get(RunnerLease, SINGLE_RUNNER_LEASE)
    if lease is None:
        session.add(RunnerLease(name=SINGLE_RUNNER_LEASE, owner=owner, expires_at=now + ttl))
        session.flush()
        return True
    if lease.owner == owner or lease.expires_at <= now:
        lease.owner = owner
        lease.expires_at = now + ttl
        session.flush()
        return True
    return False


def give_up_runner_lease(session: Session, *, owner: str) -> None:
    from service.models import RunnerLease

    lease = session.get(RunnerLease, SINGLE_RUNNER_LEASE)
    if lease is not None and lease.owner == owner:
        session.delete(lease)
        session.flush()

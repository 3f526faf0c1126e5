"""The runner's use cases: claim due reminders under a lease, deliver them, record every attempt."""

from __future__ import annotations

import logging
import random
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select, update
from sqlalchemy.orm import Session

from service.config import Settings
from service.core.bulk import among, insert_rows
from service.models import Delivery, Patient, Reminder
from service.reminders.channels import Channel, ExternalChannel, Outgoing, Result
from service.reminders.retry import backoff_delay
from service.reminders.timing import QuietHours, push_out_of_quiet_hours
from service.staff.alerts import raise_alert
from service.vocabulary import ACTIVE_REMINDER_STATUSES

log = logging.getLogger(__name__)

CLAIMABLE = ACTIVE_REMINDER_STATUSES
# Channels that interrupt the patient: they wait for the end of the patient's quiet hours.
INTERRUPTING = ("push", "email")
QUIET_SKIP = "the quiet hours last past the reminder's relevance"


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


_OUTGOING_COLUMNS = (
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
)


def _outgoing(rows: Sequence[Any], now: datetime) -> list[Outgoing]:
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
            now=now,
        )
        for row in sorted(rows, key=lambda r: r.id)
    ]


# Transaction-scoped advisory locks (PostgreSQL) keyed (PATIENT_LOCKS, patient_id % buckets).
PATIENT_LOCKS = 0xCD20
PATIENT_LOCK_BUCKETS = 1024


def _due(session: Session, now: datetime, limit: int, *, by_patient: bool = False) -> Any:
    due = (
        select(Reminder.id)
        .where(Reminder.status.in_(CLAIMABLE), Reminder.due_at <= now)
        .order_by(Reminder.due_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        due = due.with_for_update(skip_locked=True)
        if by_patient:
            # A runner takes only reminders of patients no other runner is delivering to at
            # the moment, so runners do not queue behind each other's locks on the patients'
            # inbox counters. At most PATIENT_LOCK_BUCKETS locks are held by all runners together.
            bucket = Reminder.patient_id % PATIENT_LOCK_BUCKETS
            due = due.where(func.pg_try_advisory_xact_lock(PATIENT_LOCKS, bucket))
    return due


def claim_due_reminders(
    session: Session, *, owner: str, now: datetime, limit: int, lease: timedelta
) -> list[Outgoing]:
    """Take up to `limit` due reminders for `owner` until the lease runs out.

    A claimed row's due_at becomes its lease expiry, so a crashed runner's rows come due
    again by themselves. On PostgreSQL, SKIP LOCKED lets any number of runners claim at once.
    """
    due = Reminder.id.in_(_due(session, now, limit).scalar_subquery())
    return _lease(session, due, owner, now, lease)


def _lease(
    session: Session, which: ColumnElement[bool], owner: str, now: datetime, lease: timedelta
) -> list[Outgoing]:
    expiry = now + lease
    rows = session.execute(
        update(Reminder)
        .where(which)
        .values(status="claimed", lease_owner=owner, lease_expires_at=expiry, due_at=expiry)
        .returning(*_OUTGOING_COLUMNS),
        execution_options={"synchronize_session": False},
    ).all()
    return _outgoing(rows, now)


def take_due_reminders(session: Session, *, now: datetime, limit: int) -> list[Outgoing]:
    """Lock up to `limit` due reminders for the rest of the caller's transaction.

    On PostgreSQL, rows other runners hold are skipped (SKIP LOCKED), and so are reminders of
    patients another runner is delivering to right now.
    """
    due = _due(session, now, limit, by_patient=True).add_columns(*_OUTGOING_COLUMNS[1:])
    return _outgoing(session.execute(due).all(), now)


@dataclass(frozen=True)
class Leased:
    """A reminder leased to this runner for the channels that leave the database.

    `channels` are still to be tried in this round (attempt `attempt`); `earlier` holds what the
    channels already tried in the claiming transaction came to, and `held_until` when push and
    e-mail wait for the end of the patient's quiet hours.
    """

    message: Outgoing
    attempt: int
    channels: tuple[str, ...]
    earlier: tuple[tuple[str, Result], ...] = ()
    held_until: datetime | None = None

    @classmethod
    def of(cls, message: Outgoing) -> Leased:
        """A reminder leased by claim_due_reminders: all its channels, in one new attempt."""
        return cls(message, message.attempts + 1, tuple(dict.fromkeys(message.channels)))

    @property
    def reminder_id(self) -> int:
        return self.message.reminder_id


@dataclass
class Round:
    """One leased reminder's sends, prepared: what to send where, and results known already."""

    leased: Leased
    sends: list[tuple[str, ExternalChannel[Any], Any]] = field(default_factory=list)
    results: dict[str, Result] = field(default_factory=dict)
    # Channels that write in the database (the inbox), delivered when the round is recorded.
    local: list[str] = field(default_factory=list)


def claim_and_deliver(
    session: Session,
    channels: Mapping[str, Channel],
    *,
    owner: str,
    now: datetime,
    limit: int,
    lease: timedelta,
    settings: Settings,
    rng: random.Random | None = None,
) -> tuple[TickCounts, list[Leased]]:
    """Take up to `limit` due reminders; deliver at once what stays in the database.

    Every channel that writes in this transaction (inbox, worklist) is delivered in it while
    the rows are locked: a crash rolls everything back and leaves them due. A reminder that
    also goes out (webhook, e-mail, push) is leased to `owner` with its attempt counted, and
    returned, to be sent once this commits (prepare_round, begin_send, record_send,
    finish_round). The counts cover the reminders finished here and count every one taken
    as claimed.
    """
    taken = take_due_reminders(session, now=now, limit=limit)
    counts = TickCounts(claimed=len(taken))
    if not taken:
        return counts, []
    already = _channels_already_sent(session, taken)
    quiet_until = _quiet_hours_end(session, taken, now)
    status_updates: list[dict[str, Any]] = []
    deliveries: list[dict[str, Any]] = []
    plans: list[tuple[Outgoing, list[str], list[str], datetime | None]] = []
    for message in taken:
        if message.expires_at is not None and message.expires_at <= now:
            status_updates.append(_release(message, "expired", now))
            counts.expired += 1
            continue
        names = _channels_to_try(message, already)
        held: datetime | None = None
        wait_until = quiet_until.get(message.patient_id) if message.audience == "patient" else None
        if wait_until is not None and any(n in INTERRUPTING for n in names):
            waiting = [n for n in names if n in INTERRUPTING]
            names = [n for n in names if n not in INTERRUPTING]
            if message.expires_at is None or wait_until < message.expires_at:
                held = wait_until
            else:
                deliveries.extend(
                    _attempt(message, n, message.attempts + 1, "skipped", None, QUIET_SKIP, now)
                    for n in waiting
                )
        local = [n for n in names if _stays_in_database(channels.get(n))]
        external = [n for n in names if n not in local]
        plans.append((message, local, external, held))
    results = _deliver_by_channel(session, [(m, local) for m, local, _, _ in plans], channels)
    leased: list[Leased] = []
    for message, local, external, held in plans:
        attempt = message.attempts + 1
        got: dict[str, Result] = {}
        for name in local:
            result = results.get((message.reminder_id, name)) or NOT_CONFIGURED
            got[name] = result
            deliveries.append(_recorded(message, name, attempt, result, now))
        if external:
            leased.append(Leased(message, attempt, tuple(external), tuple(got.items()), held))
        else:
            status_updates.append(
                _conclude(session, message, attempt, got, held, counts, now, settings, rng)
            )
    insert_rows(session, Delivery, deliveries)
    _write_statuses(session, status_updates)
    if leased:
        expiry = now + lease
        session.execute(
            update(Reminder)
            .where(among(session, Reminder.id, [item.reminder_id for item in leased]))
            .values(
                status="claimed",
                lease_owner=owner,
                lease_expires_at=expiry,
                due_at=expiry,
                # Counted now: a runner that dies mid-send has used up this attempt.
                attempts=Reminder.attempts + 1,
            ),
            execution_options={"synchronize_session": False},
        )
    return counts, leased


NOT_CONFIGURED = Result.skipped("not configured")


def prepare_round(
    session: Session, leased: Sequence[Leased], channels: Mapping[str, Channel]
) -> list[Round]:
    """Read what each send needs (read-only, no rows locked): one Round per leased reminder.

    A channel whose preparation raises fails for that reminder alone.
    """
    already = _channels_already_sent(session, [item.message for item in leased])
    rounds: list[Round] = []
    for item in leased:
        done = already.get(item.reminder_id, set())
        this = Round(item)
        for name in item.channels:
            if name in done:
                continue
            channel = channels.get(name)
            if not isinstance(channel, ExternalChannel):
                this.local.append(name)
                continue
            try:
                prepared = channel.prepare(session, item.message)
            except Exception as exc:
                log.warning(
                    "reminder %s: preparing %s failed: %s",
                    item.reminder_id,
                    name,
                    type(exc).__name__,
                )
                log.debug("preparing %s failed", name, exc_info=True)
                session.rollback()
                this.results[name] = Result.failed("channel_error", retryable=True)
                continue
            if isinstance(prepared, Result):
                this.results[name] = prepared
            else:
                this.sends.append((name, channel, prepared))
        rounds.append(this)
    return rounds


def send_safely(channel: ExternalChannel[Any], prepared: Any, reminder_id: int) -> Result:
    """The channel's send; an exception from it is that reminder's failure, never the batch's."""
    try:
        return channel.send(prepared)
    except Exception as exc:
        log.warning("reminder %s: %s raised %s", reminder_id, channel.name, type(exc).__name__)
        log.debug("%s send raised", channel.name, exc_info=True)
        return Result.failed("channel_error", retryable=True)


def begin_send(
    session: Session, item: Leased, channel: str, *, owner: str, now: datetime, lease: timedelta
) -> int | None:
    """Before a send: renew the lease if it is still ours, and record the send as in flight.

    Returns the in-flight attempt's id, or None when the lease was lost (the send must not be
    made). A crash after this retries this one send, with the same idempotency key.
    """
    expiry = now + lease
    renewed = session.execute(
        update(Reminder)
        .where(
            Reminder.id == item.reminder_id,
            Reminder.lease_owner == owner,
            Reminder.status == "claimed",
        )
        .values(lease_expires_at=expiry, due_at=expiry),
        execution_options={"synchronize_session": False},
    )
    if not getattr(renewed, "rowcount", 0):
        return None
    # A send a crashed runner left in flight: it may or may not have arrived.
    session.execute(
        update(Delivery)
        .where(
            Delivery.reminder_id == item.reminder_id,
            Delivery.channel == channel,
            Delivery.outcome == IN_FLIGHT,
        )
        .values(outcome="interrupted"),
        execution_options={"synchronize_session": False},
    )
    attempt = Delivery(
        reminder_id=item.reminder_id,
        channel=channel,
        attempt=item.attempt,
        outcome=IN_FLIGHT,
        created_at=now,
    )
    session.add(attempt)
    session.flush()
    return attempt.id


IN_FLIGHT = "in_flight"


def record_send(
    session: Session,
    attempt_id: int,
    channel: ExternalChannel[Any],
    prepared: Any,
    result: Result,
) -> None:
    """After a send: its outcome on the in-flight attempt, and what the channel makes of it."""
    session.execute(
        update(Delivery)
        .where(Delivery.id == attempt_id)
        .values(
            outcome=result.outcome,
            response_code=result.response_code,
            error=(result.error or None) and result.error[:500],
        ),
        execution_options={"synchronize_session": False},
    )
    channel.finish(session, prepared, result)


def finish_round(
    session: Session,
    this: Round,
    results: Mapping[str, Result],
    channels: Mapping[str, Channel],
    *,
    owner: str,
    now: datetime,
    settings: Settings,
    rng: random.Random | None = None,
) -> TickCounts:
    """Record a round: deliver its in-database channels, then the reminder's new status.

    `results` are the sends made (already recorded by record_send). Only a reminder still
    leased to `owner` changes; one whose lease was lost is counted as such.
    """
    counts = TickCounts()
    item = this.leased
    message = item.message
    if not _still_owned(session, [item.reminder_id], owner):
        counts.lost_lease = 1
        return counts
    got: dict[str, Result] = dict(item.earlier)
    deliveries = [
        _recorded(message, name, item.attempt, result, now) for name, result in this.results.items()
    ]
    got.update(this.results)
    local = _deliver_by_channel(session, [(message, this.local)], channels)
    for name in this.local:
        result = local.get((item.reminder_id, name)) or NOT_CONFIGURED
        got[name] = result
        deliveries.append(_recorded(message, name, item.attempt, result, now))
    got.update(results)
    insert_rows(session, Delivery, deliveries)
    update_row = _conclude(
        session, message, item.attempt, got, item.held_until, counts, now, settings, rng
    )
    _write_statuses(session, [update_row])
    return counts


def _stays_in_database(channel: Channel | None) -> bool:
    # A channel that is not configured is only recorded as skipped.
    return channel is None or channel.in_transaction


def _channels_to_try(message: Outgoing, already: Mapping[int, set[str]]) -> list[str]:
    done = already.get(message.reminder_id, set())
    return [name for name in dict.fromkeys(message.channels) if name not in done]


def _still_owned(session: Session, ids: Sequence[int], owner: str) -> set[int]:
    """Lock the rows still leased to `owner` (a lease lost to another runner is not ours)."""
    if not ids:
        return set()
    stmt = (
        select(Reminder.id)
        .where(
            among(session, Reminder.id, ids),
            Reminder.lease_owner == owner,
            Reminder.status == "claimed",
        )
        .order_by(Reminder.id)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return set(session.scalars(stmt))


def _channels_already_sent(session: Session, messages: Sequence[Outgoing]) -> dict[int, set[str]]:
    done: dict[int, set[str]] = defaultdict(set)
    # Attempts are recorded only together with attempts += 1: a reminder never tried has none.
    ids = sorted(m.reminder_id for m in messages if m.attempts)
    if not ids:
        return done
    rows = session.execute(
        select(Delivery.reminder_id, Delivery.channel).where(
            among(session, Delivery.reminder_id, ids), Delivery.outcome.in_(("sent", "skipped"))
        )
    )
    for reminder_id, channel in rows:
        done[reminder_id].add(channel)
    return done


def _conclude(
    session: Session,
    message: Outgoing,
    attempt: int,
    results: Mapping[str, Result],
    held_until: datetime | None,
    counts: TickCounts,
    now: datetime,
    settings: Settings,
    rng: random.Random | None,
) -> dict[str, Any]:
    """The reminder's new status after a round whose channels came to `results`."""
    retry_needed = False
    for name, result in results.items():
        if result.outcome == "failed" and result.retryable:
            retry_needed = True
        elif result.outcome == "failed":
            log.warning(
                "reminder %s: %s failed for good: %s", message.reminder_id, name, result.error
            )
    if not retry_needed and held_until is not None:
        # The silent inbox has it; push and e-mail wait for the end of the quiet hours.
        update_row = _release(message, "pending", now)
        update_row["attempts"] = attempt
        update_row["due_at"] = held_until
    elif not retry_needed:
        update_row = _release(message, "sent", now)
        update_row["sent_at"] = now
        update_row["attempts"] = attempt
        counts.sent += 1
        counts.lateness_s.append(max((now - message.fire_at).total_seconds(), 0.0))
    elif attempt >= settings.retry_max_attempts:
        update_row = _release(message, "dead", now)
        update_row["attempts"] = attempt
        _alert_dead(session, message, now)
        counts.dead += 1
    else:
        update_row = _release(message, "failed", now)
        update_row["attempts"] = attempt
        update_row["due_at"] = now + backoff_delay(attempt, settings, rng)
        counts.failed += 1
    return update_row


def _recorded(
    message: Outgoing, channel: str, attempt: int, result: Result, now: datetime
) -> dict[str, Any]:
    return _attempt(
        message, channel, attempt, result.outcome, result.response_code, result.error, now
    )


def _quiet_hours_end(
    session: Session, messages: Sequence[Outgoing], now: datetime
) -> dict[int, datetime]:
    """Patients inside their quiet hours now, and when those end (push and e-mail wait)."""
    ids = sorted(
        {
            m.patient_id
            for m in messages
            if m.audience == "patient" and any(c in INTERRUPTING for c in m.channels)
        }
    )
    if not ids:
        return {}
    rows = session.execute(
        select(Patient.id, Patient.time_zone, Patient.quiet_start, Patient.quiet_end).where(
            among(session, Patient.id, ids)
        )
    )
    ends: dict[int, datetime] = {}
    for patient_id, zone, start, end in rows:
        after = push_out_of_quiet_hours(now, zone, QuietHours(start, end))
        if after != now:
            ends[patient_id] = after
    return ends


def _deliver_by_channel(
    session: Session,
    live: Sequence[tuple[Outgoing, Sequence[str]]],
    channels: Mapping[str, Channel],
) -> dict[tuple[int, str], Result]:
    """Each channel's result per (reminder id, channel name); unconfigured channels have none."""
    wanted: dict[str, list[Outgoing]] = defaultdict(list)
    for message, names in live:
        for name in names:
            wanted[name].append(message)
    results: dict[tuple[int, str], Result] = {}
    for name, messages in wanted.items():
        channel = channels.get(name)
        if channel is None:
            continue
        outcomes = channel.deliver_many(session, messages)
        for message, result in zip(messages, outcomes, strict=True):
            results[(message.reminder_id, name)] = result
    return results


def _write_statuses(session: Session, rows: Sequence[dict[str, Any]]) -> None:
    """One UPDATE per set of identical new values (a batch is mostly "sent, attempt 1")."""
    groups: dict[tuple[tuple[str, Any], ...], list[int]] = defaultdict(list)
    for row in rows:
        values = tuple(sorted((k, v) for k, v in row.items() if k != "id"))
        groups[values].append(row["id"])
    for values, ids in groups.items():
        session.execute(
            update(Reminder).where(among(session, Reminder.id, ids)).values(dict(values)),
            execution_options={"synchronize_session": False},
        )


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
    raise_alert(
        session,
        clinic_id=message.clinic_id,
        patient_id=message.patient_id,
        kind="reminder_dead",
        subject=("reminder", message.reminder_id),
        details={"reminder_kind": message.kind},
        now=now,
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

"""Use cases for the in-app inbox: post a reminder's message once, sync changes, mark read."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.core.access import Actor
from service.core.bulk import among, insert_rows, on_postgres, rows_select
from service.db import utcnow
from service.errors import Forbidden, NotFound
from service.models import InboxCounter, InboxMessage


@dataclass(frozen=True)
class InboxChanges:
    """Messages changed after a cursor, in change order, and the cursor to sync from next."""

    items: Sequence[InboxMessage]
    cursor: int
    has_more: bool


def post_to_inbox(
    session: Session,
    *,
    patient_id: int,
    reminder_id: int | None,
    kind: str,
    title: str,
    body: str,
    now: datetime | None = None,
) -> InboxMessage:
    """The reminder's message in the patient's inbox: created once, returned as is after that."""
    _lock_counter(session, patient_id)
    # With the patient's counter locked, a message another runner posted for this reminder
    # is committed and visible by now: check before taking a number, so numbers stay gap-free.
    if reminder_id is not None:
        existing = session.scalar(
            select(InboxMessage).where(InboxMessage.reminder_id == reminder_id)
        )
        if existing is not None:
            return existing
    message = InboxMessage(
        patient_id=patient_id,
        reminder_id=reminder_id,
        kind=kind,
        title=title,
        body=body,
        seq=_next_seq(session, patient_id),
        created_at=now or utcnow(),
    )
    session.add(message)
    session.flush()
    return message


@dataclass(frozen=True)
class InboxPost:
    """One reminder's message for post_many_to_inbox."""

    patient_id: int
    reminder_id: int | None
    kind: str
    title: str
    body: str


def post_many_to_inbox(
    session: Session, posts: Sequence[InboxPost], *, now: datetime | None = None
) -> int:
    """Post a batch of reminders' messages in three statements; returns how many are new.

    The same rules as post_to_inbox, for the whole batch at once: each patient's counter is
    locked, and advanced by the number of messages the batch has for them, in one upsert (in
    patient order, so two runners' batches never deadlock); reminders that already have a
    message are left alone, and each patient's new messages take the reserved numbers in the
    order given. Numbers reserved for a message that turned out to exist already are given
    back before anyone else can take one, so the numbers stay gap-free.
    """
    if not posts:
        return 0
    wanted: list[InboxPost] = []
    reminder_ids: set[int] = set()
    for post in posts:
        if post.reminder_id is not None:
            if post.reminder_id in reminder_ids:
                continue  # the same reminder twice in one batch: one message
            reminder_ids.add(post.reminder_id)
        wanted.append(post)
    per_patient: dict[int, int] = defaultdict(int)
    for post in wanted:
        per_patient[post.patient_id] += 1
    last = _advance_counters(session, per_patient)
    taken: set[int | None] = set()
    if reminder_ids:
        taken = set(
            session.scalars(
                select(InboxMessage.reminder_id).where(
                    among(session, InboxMessage.reminder_id, sorted(reminder_ids))
                )
            )
        )
    # Each patient's reserved numbers run from seq + 1 to last[patient].
    seq = {patient_id: last[patient_id] - count for patient_id, count in per_patient.items()}
    created_at = now or utcnow()
    rows: list[dict[str, Any]] = []
    for post in wanted:
        if post.reminder_id in taken:
            continue
        seq[post.patient_id] += 1
        rows.append(
            {
                "patient_id": post.patient_id,
                "reminder_id": post.reminder_id,
                "kind": post.kind,
                "title": post.title,
                "body": post.body,
                "seq": seq[post.patient_id],
                "created_at": created_at,
            }
        )
    insert_rows(session, InboxMessage, rows)
    unused = {p: seq[p] for p in sorted(per_patient) if seq[p] != last[p]}
    if unused:
        _set_counters(session, unused)
    return len(rows)


def list_inbox(session: Session, actor: Actor, *, since: int = 0, limit: int = 50) -> InboxChanges:
    """The caller's messages created or changed after change number `since`, oldest change first."""
    patient_id = _inbox_owner(actor)
    rows = session.scalars(
        select(InboxMessage)
        .where(InboxMessage.patient_id == patient_id, InboxMessage.seq > since)
        .order_by(InboxMessage.seq)
        .limit(limit + 1)
    ).all()
    items = rows[:limit]
    return InboxChanges(
        items=items, cursor=items[-1].seq if items else since, has_more=len(rows) > limit
    )


def mark_read(
    session: Session, actor: Actor, message_id: int, *, now: datetime | None = None
) -> InboxMessage:
    """Mark one of the caller's messages read; it takes a new change number so phones see it."""
    patient_id = _inbox_owner(actor)
    message = session.get(InboxMessage, message_id)
    if message is None or message.patient_id != patient_id:
        raise NotFound("Message not found")
    if message.read_at is not None:
        return message
    _lock_counter(session, patient_id)
    # Another request may have marked it read while this one waited for the lock.
    session.refresh(message)
    if message.read_at is None:
        message.read_at = now or utcnow()
        message.seq = _next_seq(session, patient_id)
        session.flush()
    return message


def _inbox_owner(actor: Actor) -> int:
    if actor.is_staff or actor.patient_id is None:
        raise Forbidden("The inbox belongs to a patient account")
    return actor.patient_id


def _lock_counter(session: Session, patient_id: int) -> None:
    """Hold the patient's counter row (created at zero if missing) until the transaction ends.

    Concurrent writers for one patient queue here, so their change numbers are ordered and
    committed in order. The upsert is race-free where a plain SELECT ... FOR UPDATE would find
    no row to lock for a patient's first message.
    """
    stmt = _insert(session)(InboxCounter).values(patient_id=patient_id, seq=0)
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[InboxCounter.patient_id], set_={"seq": InboxCounter.seq}
        )
    )


def _advance_counters(session: Session, counts: Mapping[int, int]) -> dict[int, int]:
    """Add counts[patient] to each patient's counter (created at 0 if missing), locking the
    counters in patient order; returns each one's new value."""
    rows = [{"patient_id": p, "seq": counts[p]} for p in sorted(counts)]
    stmt = _upsert_counters(session, rows)
    result = session.execute(
        stmt.on_conflict_do_update(
            index_elements=[InboxCounter.patient_id],
            set_={"seq": InboxCounter.seq + stmt.excluded.seq},
        ).returning(InboxCounter.patient_id, InboxCounter.seq)
    )
    return {patient_id: seq for patient_id, seq in result}


def _set_counters(session: Session, values: Mapping[int, int]) -> None:
    stmt = _upsert_counters(session, [{"patient_id": p, "seq": values[p]} for p in sorted(values)])
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[InboxCounter.patient_id], set_={"seq": stmt.excluded.seq}
        )
    )


def _upsert_counters(session: Session, rows: Sequence[dict[str, int]]) -> Any:
    """INSERT INTO inbox_counter the rows, in their order, for an ON CONFLICT clause to finish."""
    if on_postgres(session):
        source = rows_select(InboxCounter.__table__, rows)
        return postgresql.insert(InboxCounter).from_select(["patient_id", "seq"], source)
    return _insert(session)(InboxCounter).values(list(rows))


def _next_seq(session: Session, patient_id: int) -> int:
    seq: int = session.execute(
        update(InboxCounter)
        .where(InboxCounter.patient_id == patient_id)
        .values(seq=InboxCounter.seq + 1)
        .returning(InboxCounter.seq)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    return seq


def _insert(session: Session) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert
    if dialect == "sqlite":
        return sqlite.insert
    raise NotImplementedError(f"inbox counters need PostgreSQL or SQLite, not {dialect}")

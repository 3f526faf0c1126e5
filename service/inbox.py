"""Use cases for the in-app inbox: post a reminder's message once, sync changes, mark read."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from service.access import Actor
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

"""Reminders, their delivery attempts, the in-app inbox, push devices and the runner lease."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base, utcnow
from service.vocabulary import ReminderStatus

# 64-bit ids on PostgreSQL; SQLite only autoincrements an INTEGER primary key.
BIG_ID = BigInteger().with_variant(Integer, "sqlite")


class Reminder(Base):
    __tablename__ = "reminder"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"))
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="CASCADE"), index=True
    )
    plan_id: Mapped[int | None] = mapped_column(ForeignKey("treatment_plan.id", ondelete="CASCADE"))
    audience: Mapped[str] = mapped_column(String(8))
    kind: Mapped[str] = mapped_column(String(40))
    subject_type: Mapped[str] = mapped_column(String(24))
    subject_id: Mapped[int]
    # What the reminder was derived from: same key means the same reminder (never sent twice).
    idempotency_key: Mapped[str] = mapped_column(String(160), unique=True)
    # The wall-clock moment and the zone it is read in; fire_at is derived from them.
    local_date: Mapped[date]
    local_time: Mapped[time]
    time_zone: Mapped[str] = mapped_column(String(64))
    fire_at: Mapped[datetime]
    # After this instant the reminder has stopped mattering and is expired, never sent late.
    expires_at: Mapped[datetime | None]
    channels: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["inbox"])
    status: Mapped[str] = mapped_column(String(12), default=ReminderStatus.PENDING.value)
    # When the runner should next look at it: fire_at, then the retry backoff.
    due_at: Mapped[datetime]
    attempts: Mapped[int] = mapped_column(default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None]
    # Codes and ids only: what the message says is rendered from these.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    sent_at: Mapped[datetime | None]
    acked_at: Mapped[datetime | None]
    ack_response: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    deliveries: Mapped[list[Delivery]] = relationship(
        back_populates="reminder", order_by="Delivery.id", cascade="all, delete-orphan"
    )

    __table_args__ = (
        # Only rows the runner still has work for, in due order: a claim walks the first few
        # entries whatever the number of sent or future reminders.
        Index(
            "ix_reminder_claimable_due_at",
            "due_at",
            postgresql_where=text("status IN ('pending', 'failed', 'claimed')"),
            sqlite_where=text("status IN ('pending', 'failed', 'claimed')"),
        ),
        Index("ix_reminder_subject", "subject_type", "subject_id"),
    )


class Delivery(Base):
    """One attempt of one reminder on one channel."""

    __tablename__ = "delivery"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    reminder_id: Mapped[int] = mapped_column(
        BIG_ID, ForeignKey("reminder.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(12))
    attempt: Mapped[int]
    outcome: Mapped[str] = mapped_column(String(12))
    response_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    reminder: Mapped[Reminder] = relationship(back_populates="deliveries")


class InboxMessage(Base):
    """The in-app channel: exactly one message per reminder."""

    __tablename__ = "inbox_message"

    id: Mapped[int] = mapped_column(BIG_ID, primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id", ondelete="CASCADE"))
    reminder_id: Mapped[int | None] = mapped_column(
        BIG_ID, ForeignKey("reminder.id", ondelete="SET NULL"), unique=True
    )
    kind: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    # Per-patient change counter: the phone syncs with `since=<seq>`.
    seq: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    read_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_inbox_message_patient_seq", "patient_id", "seq", unique=True),)


class InboxCounter(Base):
    """The last inbox change number per patient; its row lock orders concurrent changes."""

    __tablename__ = "inbox_counter"

    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(BigInteger, default=0)


class Device(Base):
    """A patient's push token."""

    __tablename__ = "device"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(
        ForeignKey("patient.id", ondelete="CASCADE"), index=True
    )
    platform: Mapped[str] = mapped_column(String(12))
    token: Mapped[str] = mapped_column(String(4096))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class RunnerLease(Base):
    """On SQLite one runner at a time holds this lease; a second one waits for it."""

    __tablename__ = "runner_lease"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime]

"""The audit trail: one append-only event per API request (HIPAA 45 CFR 164.312(b))."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, CheckConstraint, Index, Integer, SmallInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from service.db import Base, utcnow
from service.vocabulary import AuditAction, AuditOutcome, values

# success: 1xx-3xx; denied: refused for who is asking (401, 403, 404, 429);
# failed: refused for what was sent (other 4xx); error: the server failed (5xx).
# 64-bit ids on PostgreSQL; SQLite only autoincrements an INTEGER primary key.
AUDIT_ID = BigInteger().with_variant(Integer, "sqlite")


class AuditEvent(Base):
    """Who did what to which resource (and whose data), when, from where, with what outcome.

    Rows are only ever inserted: no code updates or deletes them, and the database refuses it
    too: on PostgreSQL a trigger refuses UPDATE, DELETE and TRUNCATE (migration 0002), on
    SQLite row triggers refuse UPDATE and DELETE (0003_audit). Actor, clinic and patient ids
    carry no foreign keys, so removing a user or a patient never touches the trail. `details`
    holds codes and ids only, never free text from a request.
    """

    __tablename__ = "audit_event"

    id: Mapped[int] = mapped_column(AUDIT_ID, primary_key=True)
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    request_id: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[int | None]
    actor_role: Mapped[str | None] = mapped_column(String(16))
    clinic_id: Mapped[int | None]
    action: Mapped[str] = mapped_column(String(8))
    resource_type: Mapped[str] = mapped_column(String(32))
    resource_id: Mapped[str | None] = mapped_column(String(128))
    patient_id: Mapped[int | None]
    outcome: Mapped[str] = mapped_column(String(8))
    status_code: Mapped[int] = mapped_column(SmallInteger)
    source_address: Mapped[str | None] = mapped_column(String(45))
    method: Mapped[str] = mapped_column(String(8))
    path_template: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    __table_args__ = (
        CheckConstraint(f"action IN {values(AuditAction)!r}", name="action"),
        CheckConstraint(f"outcome IN {values(AuditOutcome)!r}", name="outcome"),
        # The admin's queries: the clinic's events, or one patient's, or one actor's, by time.
        Index("ix_audit_event_clinic_time", "clinic_id", "occurred_at"),
        Index("ix_audit_event_patient_time", "patient_id", "occurred_at"),
        Index("ix_audit_event_actor_time", "actor_id", "occurred_at"),
    )


class AuditSpoolProgress(Base):
    """How far a host's spool file of read events is moved into audit_event
    (service.trust.audit_spool): updated in the transaction that moves its lines, so each line
    is moved once. The row goes when its file is wholly moved and removed."""

    __tablename__ = "audit_spool_progress"

    spool: Mapped[str] = mapped_column(String(200), primary_key=True)
    moved_bytes: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

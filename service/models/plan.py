"""Treatment plan with its pre-treatment screening checklist and overrides."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base, utcnow

PLAN_STATUSES = ("draft", "screening", "ready", "active", "on_hold", "completed", "discontinued")
OPEN_PLAN_STATUSES = ("draft", "screening", "ready", "active", "on_hold")
SCREENING_OUTCOMES = ("cleared", "pending", "needs_review", "contraindicated")


class TreatmentPlan(Base):
    __tablename__ = "treatment_plan"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    regimen_code: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="screening")
    start_date: Mapped[date]
    prescriber_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # The options chosen where sources conflict, fixed when the plan is made.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    notes: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    patient = relationship("Patient", back_populates="plans")
    screening_items: Mapped[list[ScreeningItem]] = relationship(
        back_populates="plan", order_by="ScreeningItem.id", cascade="all, delete-orphan"
    )
    overrides: Mapped[list[ScreeningOverride]] = relationship(
        back_populates="plan", order_by="ScreeningOverride.id", cascade="all, delete-orphan"
    )
    doses = relationship(
        "Dose", back_populates="plan", order_by="Dose.sequence", cascade="all, delete-orphan"
    )
    monitoring_tasks = relationship(
        "MonitoringTask",
        back_populates="plan",
        order_by="MonitoringTask.due_date, MonitoringTask.id",
        cascade="all, delete-orphan",
    )

    __mapper_args__ = {"version_id_col": version}

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_PLAN_STATUSES


class ScreeningItem(Base):
    __tablename__ = "screening_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("treatment_plan.id", ondelete="CASCADE"))
    code: Mapped[str] = mapped_column(String(32))
    required: Mapped[bool]
    result: Mapped[str | None] = mapped_column(String(16))
    value: Mapped[str | None] = mapped_column(String(64))
    unit: Mapped[str | None] = mapped_column(String(32))
    result_date: Mapped[date | None]
    notes: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime | None]

    plan: Mapped[TreatmentPlan] = relationship(back_populates="screening_items")

    __table_args__ = (UniqueConstraint("plan_id", "code"),)

    @property
    def status(self) -> str:
        return "pending" if self.result is None else "done"


class ScreeningOverride(Base):
    """A clinician's written decision to treat although the checklist is not cleared."""

    __tablename__ = "screening_override"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(
        ForeignKey("treatment_plan.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(Text)
    outcome_overridden: Mapped[str] = mapped_column(String(16))
    blocking_items: Mapped[list[str]] = mapped_column(JSON, default=list)
    clinician_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    plan: Mapped[TreatmentPlan] = relationship(back_populates="overrides")

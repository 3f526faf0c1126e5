"""Monitoring tasks, lab results and the staff alerts they raise."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base, utcnow

TASK_STATUSES = ("due", "done", "overdue", "waived")
LAB_FLAGS = ("low", "normal", "high")


class MonitoringTask(Base):
    __tablename__ = "monitoring_task"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(
        ForeignKey("treatment_plan.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    due_date: Mapped[date] = mapped_column(index=True)
    status: Mapped[str] = mapped_column(String(16), default="due")
    # The dose a "before the course" task belongs to, so it moves with a reschedule.
    dose_id: Mapped[int | None] = mapped_column(ForeignKey("dose.id", ondelete="SET NULL"))
    done_at: Mapped[datetime | None]
    notes: Mapped[str | None] = mapped_column(Text)
    lab_result_id: Mapped[int | None] = mapped_column(
        ForeignKey("lab_result.id", ondelete="SET NULL")
    )
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    plan = relationship("TreatmentPlan", back_populates="monitoring_tasks")
    lab_result: Mapped[LabResult | None] = relationship(foreign_keys=[lab_result_id])

    __mapper_args__ = {"version_id_col": version}


class LabResult(Base):
    __tablename__ = "lab_result"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    value: Mapped[float] = mapped_column(Numeric(12, 4, asdecimal=False))
    unit: Mapped[str] = mapped_column(String(32))
    ref_low: Mapped[float | None] = mapped_column(Numeric(12, 4, asdecimal=False))
    ref_high: Mapped[float | None] = mapped_column(Numeric(12, 4, asdecimal=False))
    flag: Mapped[str] = mapped_column(String(8))
    taken_at: Mapped[datetime]
    notes: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaffAlert(Base):
    """Something staff must look at: shown on the worklist until resolved."""

    __tablename__ = "staff_alert"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int]
    # Codes and ids only: no free-text clinical detail.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

"""Monitoring tasks, lab results and the staff alerts they raise."""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, Index, Numeric, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base, utcnow
from service.vocabulary import OPEN_TASK_STATUSES, TaskStatus

if TYPE_CHECKING:
    from service.models.dose import Dose
    from service.models.patient import Patient
    from service.models.plan import TreatmentPlan
    from service.protocols.catalog import MonitoringRule


class MonitoringTask(Base):
    __tablename__ = "monitoring_task"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(
        ForeignKey("treatment_plan.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    due_date: Mapped[date] = mapped_column(index=True)
    # The date the catalog rule gave when last derived. Staff may move due_date; re-derivation
    # only moves the task again when the rule's date itself changes (e.g. the dose moved).
    rule_date: Mapped[date]
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.DUE.value, index=True)
    # The dose a "before the course" task belongs to, so it moves with a reschedule.
    dose_id: Mapped[int | None] = mapped_column(
        ForeignKey("dose.id", ondelete="SET NULL"), index=True
    )
    done_at: Mapped[datetime | None]
    completed_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    notes: Mapped[str | None] = mapped_column(Text)
    # A result completes at most one task.
    lab_result_id: Mapped[int | None] = mapped_column(
        ForeignKey("lab_result.id", ondelete="SET NULL"), unique=True
    )
    # Set on tasks of monitoring that continues after the plan ended (see MonitoringFollowUp).
    follow_up_id: Mapped[int | None] = mapped_column(
        ForeignKey("monitoring_follow_up.id", ondelete="SET NULL"), index=True
    )
    version: Mapped[int] = mapped_column(default=1)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    plan: Mapped[TreatmentPlan] = relationship(back_populates="monitoring_tasks")
    dose: Mapped[Dose | None] = relationship()
    follow_up: Mapped[MonitoringFollowUp | None] = relationship(back_populates="tasks")
    lab_result: Mapped[LabResult | None] = relationship(foreign_keys=[lab_result_id])

    # Overdue tasks: status overdue, or due with a past due date, without scanning the rest.
    __table_args__ = (Index("ix_monitoring_task_status_due", "status", "due_date"),)
    __mapper_args__ = {"version_id_col": version}

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_TASK_STATUSES

    @property
    def after_treatment(self) -> bool:
        return self.follow_up_id is not None or self.follow_up is not None


class MonitoringFollowUp(Base):
    """Monitoring of one kind that goes on after its plan ended (discontinued or completed).

    Made when the plan closes, for each catalog monitoring rule with `after_stop`; it asks for
    one task at a time, every `every_months`, counted from `anchor_date` (the last dose given),
    until `until` (when set) or until a clinician ends it (`ended_at`, with a reason code).
    Other use cases may set `until` (e.g. a hepatology consult's planned stop).
    """

    __tablename__ = "monitoring_follow_up"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(
        ForeignKey("treatment_plan.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    # Why it continues, a code (e.g. until_b_cell_repletion).
    reason: Mapped[str] = mapped_column(String(48))
    every_months: Mapped[int]
    anchor_date: Mapped[date]
    started_on: Mapped[date]
    until: Mapped[date | None]
    ended_at: Mapped[datetime | None]
    end_reason: Mapped[str | None] = mapped_column(String(32))
    end_notes: Mapped[str | None] = mapped_column(Text)
    ended_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    version: Mapped[int] = mapped_column(default=1)

    plan: Mapped[TreatmentPlan] = relationship(back_populates="follow_ups")
    tasks: Mapped[list[MonitoringTask]] = relationship(
        back_populates="follow_up", order_by="MonitoringTask.due_date, MonitoringTask.id"
    )

    __table_args__ = (UniqueConstraint("plan_id", "kind"),)
    __mapper_args__ = {"version_id_col": version}

    @property
    def is_active(self) -> bool:
        return self.ended_at is None

    @property
    def rule(self) -> MonitoringRule | None:
        return next((r for r in self.plan.regimen.monitoring if r.kind == self.kind), None)

    @property
    def label(self) -> str:
        rule = self.rule
        return rule.label if rule is not None else self.kind

    @property
    def source(self) -> str | None:
        rule = self.rule
        return rule.after_stop.source if rule is not None and rule.after_stop else None

    @property
    def next_due(self) -> date | None:
        due = [t.due_date for t in self.tasks if t.is_open]
        return min(due) if due else None


class LabResult(Base):
    __tablename__ = "lab_result"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"))
    code: Mapped[str] = mapped_column(String(32))
    # Wide enough for HBV DNA in IU/mL (can exceed 10^9).
    value: Mapped[float] = mapped_column(Numeric(18, 4, asdecimal=False))
    unit: Mapped[str] = mapped_column(String(32))
    ref_low: Mapped[float | None] = mapped_column(Numeric(18, 4, asdecimal=False))
    ref_high: Mapped[float | None] = mapped_column(Numeric(18, 4, asdecimal=False))
    flag: Mapped[str] = mapped_column(String(8))
    # Where the range came from: the request, a cited default (see service.treatment.labs), or none.
    range_source: Mapped[str | None] = mapped_column(String(16))
    range_reference: Mapped[str | None] = mapped_column(String(300))
    taken_at: Mapped[datetime]
    notes: Mapped[str | None] = mapped_column(Text)
    recorded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)

    task: Mapped[MonitoringTask | None] = relationship(
        primaryjoin="MonitoringTask.lab_result_id == LabResult.id",
        viewonly=True,
        uselist=False,
    )

    __table_args__ = (Index("ix_lab_result_patient_taken", "patient_id", "code", "taken_at"),)


class StaffAlert(Base):
    """Something staff must look at: shown on the worklist until resolved."""

    __tablename__ = "staff_alert"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    # None for an alert about an account rather than a patient (e.g. failed logins on staff).
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patient.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    subject_type: Mapped[str] = mapped_column(String(32))
    subject_id: Mapped[int]
    # Codes and ids only: no free-text clinical detail.
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(index=True)
    resolved_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    patient: Mapped[Patient] = relationship()

    # The worklist's open alerts, oldest first, without the resolved ones that pile up.
    __table_args__ = (
        Index(
            "ix_staff_alert_open",
            "clinic_id",
            "created_at",
            postgresql_where=text("resolved_at IS NULL"),
            sqlite_where=text("resolved_at IS NULL"),
        ),
    )

    @property
    def is_resolved(self) -> bool:
        return self.resolved_at is not None

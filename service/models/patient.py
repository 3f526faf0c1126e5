"""Patient: a person treated at one clinic, with their time zone and reminder preferences."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base, utcnow
from service.vocabulary import ReactionGrade

if TYPE_CHECKING:
    from service.models.clinic import Clinic
    from service.models.monitoring import MonitoringFollowUp
    from service.models.plan import TreatmentPlan


DEFAULT_REMINDER_TIME = time(9, 0)
DEFAULT_QUIET_START = time(21, 0)
DEFAULT_QUIET_END = time(8, 0)


class Patient(Base):
    __tablename__ = "patient"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    mrn: Mapped[str] = mapped_column(String(64))
    given_name: Mapped[str] = mapped_column(String(100))
    family_name: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[date]
    sex: Mapped[str | None] = mapped_column(String(16))
    # Whether the patient can become pregnant: None until staff say (unknown asks, per dose,
    # where the catalog checks pregnancy before each dose).
    can_become_pregnant: Mapped[bool | None]
    time_zone: Mapped[str] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(254))
    phone: Mapped[str | None] = mapped_column(String(32))
    reminder_time: Mapped[time] = mapped_column(default=DEFAULT_REMINDER_TIME)
    quiet_start: Mapped[time] = mapped_column(default=DEFAULT_QUIET_START)
    quiet_end: Mapped[time] = mapped_column(default=DEFAULT_QUIET_END)
    # Channels besides the in-app inbox (always on), e.g. ["push", "email"].
    reminder_channels: Mapped[list[str]] = mapped_column(JSON, default=lambda: ["push"])
    # Days before a dose for "dose upcoming" reminders; None uses the clinic's setting.
    dose_lead_days: Mapped[list[int] | None] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    clinic: Mapped[Clinic] = relationship()
    plans: Mapped[list[TreatmentPlan]] = relationship(
        back_populates="patient", order_by="TreatmentPlan.id", viewonly=True
    )

    __table_args__ = (
        UniqueConstraint("clinic_id", "mrn"),
        # The patient list's order within a clinic: a page is read off the index, not sorted.
        Index("ix_patient_clinic_name", "clinic_id", "family_name", "given_name", "id"),
    )
    __mapper_args__ = {"version_id_col": version}

    @property
    def reaction_history(self) -> list[dict[str, Any]]:
        """Every infusion reaction recorded for the patient, under any plan, oldest first:
        it belongs to the patient, not only to the plan it happened in (reference §11)."""
        entries: list[dict[str, Any]] = []
        for plan in self.plans:
            for dose in plan.doses:
                record = dose.administration
                if record is None or record.reaction_grade in (None, ReactionGrade.NONE):
                    continue
                entries.append(
                    {
                        "grade": record.reaction_grade,
                        "drug": plan.regimen.molecule,
                        "regimen": plan.regimen_code,
                        "plan_id": plan.id,
                        "dose_id": dose.id,
                        "dose_sequence": dose.sequence,
                        "administered_at": record.administered_at,
                    }
                )
        return sorted(entries, key=lambda e: (e["administered_at"], e["dose_id"]))

    @property
    def monitoring_after_treatment(self) -> list[MonitoringFollowUp]:
        """Monitoring that goes on after a plan ended, still active."""
        return [f for plan in self.plans for f in plan.follow_ups if f.is_active]

    @property
    def hepatitis_b_after_treatment(self) -> list[dict[str, Any]]:
        """The hepatitis B pathway's tests still due after a plan ended (up to its planned
        stop), per plan: why, until when, how often, and the next one."""
        entries: list[dict[str, Any]] = []
        for plan in self.plans:
            pathway = plan.hbv_pathway if not plan.is_open else None
            if pathway is None or not pathway.active or pathway.planned_stop is None:
                continue
            kinds = {r.kind for r in plan.regimen.monitoring if r.condition == "hbv_pathway"}
            due = sorted(t.due_date for t in plan.monitoring_tasks if t.kind in kinds and t.is_open)
            if not due:
                continue
            entries.append(
                {
                    "plan_id": plan.id,
                    "kinds": sorted(kinds),
                    "path": pathway.path,
                    "reason": pathway.reason,
                    "planned_stop": pathway.planned_stop,
                    "planned_stop_source": pathway.planned_stop_source,
                    "every_months": pathway.monitoring_interval_months,
                    "next_due": due[0],
                }
            )
        return entries

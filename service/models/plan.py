"""Treatment plan with its pre-treatment screening checklist and overrides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base, utcnow
from service.errors import NotFound, ScreeningNotCleared
from service.protocols.catalog import Regimen, ScreeningRule, get_regimen
from service.vocabulary import OPEN_PLAN_STATUSES, DoseStatus, PlanStatus, ScreeningOutcome

if TYPE_CHECKING:
    from service.models.dose import Dose
    from service.models.monitoring import MonitoringFollowUp, MonitoringTask
    from service.models.patient import Patient


# How bad an outcome is: an override covers an item only at or below the severity it listed.
OUTCOME_SEVERITY = {outcome.value: rank for rank, outcome in enumerate(ScreeningOutcome)}


class TreatmentPlan(Base):
    __tablename__ = "treatment_plan"

    id: Mapped[int] = mapped_column(primary_key=True)
    clinic_id: Mapped[int] = mapped_column(ForeignKey("clinic.id"), index=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patient.id"), index=True)
    regimen_code: Mapped[str] = mapped_column(String(64))
    variant: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=PlanStatus.SCREENING.value)
    start_date: Mapped[date]
    prescriber_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    # The options chosen where sources conflict, fixed when the plan is made.
    settings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    hold_reason: Mapped[str | None] = mapped_column(Text)
    # The clinic day the plan was discontinued or completed.
    ended_on: Mapped[date | None]
    notes: Mapped[str | None] = mapped_column(Text)
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="plans")
    screening_items: Mapped[list[ScreeningItem]] = relationship(
        back_populates="plan", order_by="ScreeningItem.id", cascade="all, delete-orphan"
    )
    overrides: Mapped[list[ScreeningOverride]] = relationship(
        back_populates="plan", order_by="ScreeningOverride.id", cascade="all, delete-orphan"
    )
    doses: Mapped[list[Dose]] = relationship(
        back_populates="plan", order_by="Dose.sequence", cascade="all, delete-orphan"
    )
    monitoring_tasks: Mapped[list[MonitoringTask]] = relationship(
        back_populates="plan",
        order_by="MonitoringTask.due_date, MonitoringTask.id",
        cascade="all, delete-orphan",
    )
    follow_ups: Mapped[list[MonitoringFollowUp]] = relationship(
        back_populates="plan", order_by="MonitoringFollowUp.id", cascade="all, delete-orphan"
    )

    __mapper_args__ = {"version_id_col": version}

    @property
    def is_open(self) -> bool:
        return self.status in OPEN_PLAN_STATUSES

    @property
    def regimen(self) -> Regimen:
        return get_regimen(self.regimen_code)

    @property
    def has_administered_dose(self) -> bool:
        return any(dose.status == DoseStatus.ADMINISTERED for dose in self.doses)

    @property
    def checklist(self) -> Checklist:
        return Checklist.of(self)

    @property
    def patient_history(self) -> list[dict[str, Any]]:
        """Infusion reactions the patient had under their other plans."""
        patient = self.patient
        if patient is None:
            return []
        return [e for e in patient.reaction_history if e["plan_id"] != self.id]

    @property
    def contraception(self) -> dict[str, Any] | None:
        """For a patient who can become pregnant: until when contraception is advised, the
        last dose given plus the window of the clinic's option (None for other patients)."""
        patient = self.patient
        if patient is None or not patient.can_become_pregnant:
            return None
        regimen = self.regimen
        setting = regimen.settings["contraception_after_last_dose"]
        option = (self.settings or {}).get(setting.name, setting.default)
        if option not in setting.options:
            option = setting.default
        window = setting.options[option].value
        given = [d.due_date for d in self.doses if d.status == DoseStatus.ADMINISTERED]
        last = max(given) if given else None
        return {
            "advised_until": window.add_to(last) if window is not None and last else None,
            "last_dose_date": last,
            "window": window.as_dict() if window is not None else None,
            "option": option,
            "source": setting.options[option].source,
            # While doses are still to come, each one moves the date.
            "treatment_ongoing": self.is_open,
        }


@dataclass(frozen=True)
class Checklist:
    """The screening checklist's state, computed from the items and the latest override.

    contraindicated if any item is; else needs_review if any item is; else pending if a required
    item has no result; else cleared. An override covers the blocking items it listed, each at
    the outcome it had then: a new blocking item, or one that got worse, is not covered.
    """

    outcome: str
    items: list[ScreeningItem]
    blocking_items: list[dict[str, str]]
    override: ScreeningOverride | None

    @classmethod
    def of(cls, plan: TreatmentPlan) -> Checklist:
        items = list(plan.screening_items)
        outcomes = [item.outcome for item in items]
        if "contraindicated" in outcomes:
            outcome = "contraindicated"
        elif "needs_review" in outcomes:
            outcome = "needs_review"
        elif any(item.required and item.result is None for item in items):
            outcome = ScreeningOutcome.PENDING
        else:
            outcome = "cleared"
        blocking = [
            {"code": item.code, "outcome": item.outcome} for item in items if item.is_blocking
        ]
        current = [o for o in plan.overrides if o.revoked_at is None]
        return cls(outcome, items, blocking, current[-1] if current else None)

    @property
    def override_in_effect(self) -> bool:
        if self.override is None or self.outcome in ("cleared", "contraindicated"):
            return False
        return self.override.covers(self.blocking_items)

    @property
    def passes_gate(self) -> bool:
        """Whether a plan may become ready, a dose be confirmed or given."""
        return self.outcome == "cleared" or self.override_in_effect

    @property
    def blocking_codes(self) -> list[str]:
        return [] if self.passes_gate else [item["code"] for item in self.blocking_items]

    def ensure_passes(self, action: str) -> None:
        """Refuse `action` (e.g. "confirm the booking") unless the gate is open."""
        if self.passes_gate:
            return
        if self.outcome == "contraindicated":
            why = "a result contraindicates treatment, which no override can clear"
        elif self.override is not None:
            why = "items are blocking that the clinician's override did not cover"
        else:
            why = f"the screening checklist is {self.outcome.replace('_', ' ')}"
        raise ScreeningNotCleared(
            f"Cannot {action}: {why}.",
            outcome=self.outcome,
            blocking_items=self.blocking_items,
        )


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

    @property
    def rule(self) -> ScreeningRule | None:
        try:
            return self.plan.regimen.screening_rule(self.code)
        except NotFound:  # the catalog dropped the code after the plan was made
            return None

    @property
    def label(self) -> str:
        rule = self.rule
        return rule.label if rule is not None else self.code

    @property
    def outcome(self) -> str:
        rule = self.rule
        if self.result is None:
            return ScreeningOutcome.PENDING
        if rule is None or self.result not in rule.allowed_results:
            return "needs_review"
        return rule.outcome_for(self.result)

    @property
    def is_blocking(self) -> bool:
        """A finding that needs review, or a required item still without a result."""
        outcome = self.outcome
        return outcome in ("needs_review", "contraindicated") or (
            outcome == ScreeningOutcome.PENDING and self.required
        )


class ScreeningOverride(Base):
    """A clinician's written decision to treat although the checklist is not cleared."""

    __tablename__ = "screening_override"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(
        ForeignKey("treatment_plan.id", ondelete="CASCADE"), index=True
    )
    reason: Mapped[str] = mapped_column(Text)
    outcome_overridden: Mapped[str] = mapped_column(String(16))
    # [{code, outcome}] as they stood when the clinician signed the override.
    blocking_items: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    clinician_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]

    plan: Mapped[TreatmentPlan] = relationship(back_populates="overrides")

    def covers(self, blocking_items: list[dict[str, str]]) -> bool:
        listed = {item["code"]: item["outcome"] for item in self.blocking_items}
        return all(
            OUTCOME_SEVERITY[item["outcome"]]
            <= OUTCOME_SEVERITY.get(listed.get(item["code"], "cleared"), 0)
            for item in blocking_items
        )

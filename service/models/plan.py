"""Treatment plan with its pre-treatment screening checklist and overrides."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from service.db import Base, utcnow
from service.errors import NotFound, ScreeningNotCleared
from service.protocols.catalog import Interval, Regimen, ScreeningRule, get_regimen
from service.vocabulary import (
    OPEN_PLAN_STATUSES,
    SKIPPED_DOSE_STATUSES,
    DoseStatus,
    HbvPath,
    PlanStatus,
    ScreeningOutcome,
    ScreeningStatus,
)

if TYPE_CHECKING:
    from service.models.clinic import Clinic
    from service.models.dose import Dose
    from service.models.monitoring import MonitoringFollowUp, MonitoringTask
    from service.models.patient import Patient


GATE_CLOSED = "gate_open IS NOT TRUE AND status IN ('draft', 'screening', 'ready')"
NOT_READY = "status IN ('draft', 'screening')"

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
    # Checklist.passes_gate as the last write left it (service.models.stored_state), so the
    # worklist finds blocked plans by index; None: not worked out yet, read as "look".
    gate_open: Mapped[bool | None]
    # Checklist.outcome, .blocking_items and .override_in_effect stored beside the gate, so the
    # staff views show a plan's checklist without loading its items; None: not worked out yet.
    checklist_outcome: Mapped[str | None] = mapped_column(String(16))
    checklist_blocking: Mapped[list[dict[str, str]] | None] = mapped_column(JSON)
    checklist_overridden: Mapped[bool | None]
    version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    patient: Mapped[Patient] = relationship(back_populates="plans")
    clinic: Mapped[Clinic] = relationship()
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

    __table_args__ = (
        # The worklist's checklist section: plans before treatment whose gate is not open.
        Index(
            "ix_treatment_plan_gate_closed",
            "clinic_id",
            postgresql_where=text(GATE_CLOSED),
            sqlite_where=text(GATE_CLOSED),
        ),
        # Its "not made ready" section: plans still in draft or screening.
        Index(
            "ix_treatment_plan_not_ready",
            "clinic_id",
            postgresql_where=text(NOT_READY),
            sqlite_where=text(NOT_READY),
        ),
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

    def setting(self, name: str) -> Any:
        return self.regimen.setting_values(self.settings)[name]

    def item(self, code: str) -> ScreeningItem | None:
        return next((item for item in self.screening_items if item.code == code), None)

    @property
    def _zone(self) -> ZoneInfo:
        # A previewed plan is never in a session: it has no clinic loaded, and no dose given.
        return ZoneInfo(self.clinic.time_zone if self.clinic is not None else "UTC")

    @property
    def first_dose_day(self) -> date | None:
        """The day the checklist must hold on: the first dose's, given, booked or planned
        (in the clinic's time zone)."""
        first = min(self.doses, key=lambda d: d.sequence, default=None)
        if first is None:
            return None
        zone = self._zone
        if first.status == DoseStatus.ADMINISTERED and first.administration is not None:
            return first.administration.administered_at.astimezone(zone).date()
        if first.appointment_at is not None:
            return first.appointment_at.astimezone(zone).date()
        return first.due_date

    @property
    def last_dose_day(self) -> date | None:
        """The last anti-CD20 dose: the latest given, or, while the plan is open, planned."""
        zone = self._zone
        days: list[date] = []
        for dose in self.doses:
            if dose.status == DoseStatus.ADMINISTERED and dose.administration is not None:
                days.append(dose.administration.administered_at.astimezone(zone).date())
            elif self.is_open and dose.status not in SKIPPED_DOSE_STATUSES:
                days.append(dose.due_date)
        return max(days, default=None)

    @property
    def hbv_pathway(self) -> HbvPathway:
        return HbvPathway.of(self)

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
class HbvPathway:
    """Which hepatitis B path the checklist follows, why, and what the consult decided.

    anti-HBc positive (HBsAg negative): hbv_dna and hepatology_consult join the checklist, and
    only a consult (prophylaxis or monitor) plus the baseline HBV DNA clears anti-HBc. HBsAg
    positive: contraindicated unless the consult documents prophylaxis; then a clinician's
    override with a reason (§11; Ocrevus US PI 2.1, AASLD/APASL/AGA in PMC8066124 Table 4).
    """

    path: str
    reason: str
    decision: str | None = None
    consult: dict[str, Any] | None = None
    baseline_date: date | None = None
    planned_stop: date | None = None
    planned_stop_source: str | None = None
    monitoring_every: Interval | None = None

    @property
    def active(self) -> bool:
        return self.path in (HbvPath.ANTI_HBC_POSITIVE, HbvPath.HBSAG_POSITIVE)

    @property
    def monitoring_interval_months(self) -> int | None:
        return self.monitoring_every.months if self.monitoring_every else None

    @property
    def settled(self) -> bool:
        """A consult decided prophylaxis or monitoring, and the baseline HBV DNA is current."""
        return self.decision in ("prophylaxis", "monitor") and self.baseline_date is not None

    @classmethod
    def of(cls, plan: TreatmentPlan) -> HbvPathway:
        hbsag, anti_hbc = plan.item("hbsag"), plan.item("anti_hbc")
        if hbsag is not None and hbsag.result == "positive":
            path, reason = (
                HbvPath.HBSAG_POSITIVE,
                "HBsAg positive: contraindicated (active hepatitis B) unless a hepatology "
                "consult documents antiviral prophylaxis; then a clinician's override with a "
                "reason.",
            )
        elif anti_hbc is not None and anti_hbc.result == "positive":
            path, reason = (
                HbvPath.ANTI_HBC_POSITIVE,
                "anti-HBc positive: baseline HBV DNA and a hepatology consult (prophylaxis or "
                "monitoring) clear it; a free-text override cannot.",
            )
        elif any(i is None or i.result is None for i in (hbsag, anti_hbc)):
            return cls(HbvPath.PENDING, "HBsAg and anti-HBc results are not both recorded yet.")
        else:
            return cls(HbvPath.NONE, "No positive hepatitis B marker.")
        consult = plan.item("hepatology_consult")
        dna = plan.item("hbv_dna")
        details = dict(consult.details or {}) if consult and consult.result else None
        baseline = (
            dna.result_date
            if dna is not None and dna.result is not None and not dna.expired
            else None
        )
        every = plan.setting("hbv_dna_interval")
        if details and details.get("monitoring_interval_months"):
            every = Interval(months=int(details["monitoring_interval_months"]))
        stop, stop_source = None, None
        prophylaxis = (details or {}).get("prophylaxis") or {}
        if prophylaxis.get("planned_stop"):
            stop = date.fromisoformat(prophylaxis["planned_stop"])
            stop_source = "consult"
        elif (last := plan.last_dose_day) is not None:
            stop = plan.setting("hbv_prophylaxis_after_last_dose").add_to(last)
            stop_source = "hbv_prophylaxis_after_last_dose"
        return cls(
            path,
            reason,
            decision=consult.result if consult is not None else None,
            consult=details,
            baseline_date=baseline,
            planned_stop=stop,
            planned_stop_source=stop_source,
            monitoring_every=every,
        )


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
        # Each item's outcome once: it reads the catalog, the plan's settings and its doses.
        outcomes = [item.outcome for item in items]
        required_pending = [
            outcome == ScreeningOutcome.PENDING and item.is_required
            for item, outcome in zip(items, outcomes, strict=True)
        ]
        if "contraindicated" in outcomes:
            outcome = "contraindicated"
        elif "needs_review" in outcomes:
            outcome = "needs_review"
        elif any(required_pending):
            outcome = ScreeningOutcome.PENDING
        else:
            outcome = "cleared"
        blocking = [
            {"code": item.code, "outcome": item_outcome}
            for item, item_outcome, required in zip(items, outcomes, required_pending, strict=True)
            if ScreeningItem.blocks(item_outcome, required_pending=required)
        ]
        current = [o for o in plan.overrides if o.revoked_at is None]
        return cls(outcome, items, blocking, current[-1] if current else None)

    @property
    def hbv_pathway(self) -> HbvPathway:
        return self.items[0].plan.hbv_pathway if self.items else HbvPathway(HbvPath.NONE, "")

    @property
    def not_overridable(self) -> list[dict[str, str]]:
        """Blocking items only their structured record clears (the hepatitis B pathway)."""
        overridable = {item.code: item.overridable for item in self.items}
        return [item for item in self.blocking_items if not overridable[item["code"]]]

    @property
    def override_in_effect(self) -> bool:
        if self.override is None or self.outcome in ("cleared", "contraindicated"):
            return False
        if self.not_overridable:
            return False
        return self.override.covers(self.blocking_items)

    @property
    def passes_gate(self) -> bool:
        """Whether a plan may become ready, a dose be confirmed or given."""
        return self.gate_passes(self.outcome, override_in_effect=self.override_in_effect)

    @staticmethod
    def gate_passes(outcome: str, *, override_in_effect: bool) -> bool:
        """passes_gate for an outcome and override already worked out (or stored)."""
        return outcome == ScreeningOutcome.CLEARED or override_in_effect

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
    # Structured parts of a result: the hepatology consult, liver test values.
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(default=1, server_default="1")

    plan: Mapped[TreatmentPlan] = relationship(back_populates="screening_items")

    __table_args__ = (UniqueConstraint("plan_id", "code"),)
    __mapper_args__ = {"version_id_col": version}

    @property
    def status(self) -> str:
        if self.result is None:
            return ScreeningStatus.PENDING
        return ScreeningStatus.EXPIRED if self.expired else ScreeningStatus.DONE

    @property
    def is_required(self) -> bool:
        """Required by the template, by a clinic setting, or by the hepatitis B pathway."""
        rule = self.rule
        if rule is None:
            return self.required
        if rule.condition == "hbv_pathway":
            return self.plan.hbv_pathway.active
        if rule.required_setting is not None:
            return bool(self.plan.setting(rule.required_setting))
        return self.required

    @property
    def overridable(self) -> bool:
        rule = self.rule
        if rule is not None and not rule.overridable:
            return False
        # anti-HBc positive is cleared by the consult and the HBV DNA, never by free text.
        return not (self.code == "anti_hbc" and self.result == "positive")

    @property
    def validity_days(self) -> int | None:
        rule = self.rule
        if rule is None or rule.validity_setting is None:
            return None
        return int(self.plan.setting(rule.validity_setting))

    @property
    def valid_until(self) -> date | None:
        """The last first-dose day on which this result still clears (None: it does not age)."""
        rule = self.rule
        days = self.validity_days
        if self.result_date is None or days is None or rule is None:
            return None
        if self.result == "positive" and self.code in ("anti_hbc", "hbsag"):
            return None  # a positive marker decides the hepatitis B path; it does not age
        if rule.given_before is not None and self.result in rule.given_before.results:
            return None  # a vaccine's date is checked against the window, not for age
        return date.fromordinal(self.result_date.toordinal() + days)

    @property
    def expired(self) -> bool:
        until, first = self.valid_until, self.plan.first_dose_day
        return until is not None and first is not None and first > until

    @property
    def vaccine_gap_days(self) -> int | None:
        rule = self.rule
        first = self.plan.first_dose_day
        if (
            rule is None
            or rule.given_before is None
            or self.result not in rule.given_before.results
            or self.result_date is None
            or first is None
        ):
            return None
        return (first - self.result_date).days

    @property
    def warning(self) -> str | None:
        rule = self.rule
        gap = self.vaccine_gap_days
        if rule is None or rule.given_before is None or gap is None:
            return None
        if rule.given_before.advisory and gap < rule.given_before.days:
            return (
                f"Given {gap} days before the first dose; the label asks for at least "
                f"{rule.given_before.days} days whenever possible (advisory, not blocking)."
            )
        return None

    @property
    def reason(self) -> str | None:
        """Why the item has its outcome, where the result alone does not say it."""
        if self.result is None:
            return None
        if self.expired:
            return (
                f"The result of {self.result_date} is more than {self.validity_days} days "
                f"older than the first dose's day ({self.plan.first_dose_day}): record a new one."
            )
        rule = self.rule
        gap = self.vaccine_gap_days
        before = rule.given_before if rule is not None else None
        if before is not None and gap is not None and not before.advisory and gap < before.days:
            return (
                f"Given {gap} days before the first dose; the label asks for at least "
                f"{before.days} days: move the first dose, or a clinician reviews."
            )
        if self.code in ("anti_hbc", "hbsag") and self.result == "positive":
            return self.plan.hbv_pathway.reason
        return None

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
        """The catalog's outcome for the result, then the hepatitis B pathway, then its age.

        A result that blocks keeps blocking however old it is; one that clears stops clearing
        when it is older than its validity on the first dose's day (pending again), and a live
        vaccine given less than 4 weeks before the first dose needs review.
        """
        rule = self.rule
        if self.result is None:
            return ScreeningOutcome.PENDING
        if rule is None or self.result not in rule.allowed_results:
            return ScreeningOutcome.NEEDS_REVIEW
        outcome = rule.outcome_for(self.result)
        if self.result == "positive" and self.code in ("anti_hbc", "hbsag"):
            # A positive marker does not age: it decides the hepatitis B path.
            return self._hbv_outcome()
        if outcome != ScreeningOutcome.CLEARED:
            return outcome
        if self.expired:
            return ScreeningOutcome.PENDING
        gap = self.vaccine_gap_days
        before = rule.given_before
        if before is not None and gap is not None and gap < before.days and not before.advisory:
            return ScreeningOutcome.NEEDS_REVIEW
        return outcome

    def _hbv_outcome(self) -> str:
        pathway = self.plan.hbv_pathway
        if self.code == "hbsag":
            if pathway.settled and pathway.decision == "prophylaxis":
                return ScreeningOutcome.NEEDS_REVIEW
            return ScreeningOutcome.CONTRAINDICATED
        return ScreeningOutcome.CLEARED if pathway.settled else ScreeningOutcome.NEEDS_REVIEW

    @property
    def is_blocking(self) -> bool:
        """A finding that needs review, or a required item still without a current result."""
        outcome = self.outcome
        return self.blocks(
            outcome, required_pending=outcome == ScreeningOutcome.PENDING and self.is_required
        )

    @staticmethod
    def blocks(outcome: str, *, required_pending: bool) -> bool:
        """is_blocking for an outcome already worked out (`required_pending`: it is pending and
        the item is required)."""
        return outcome in ("needs_review", "contraindicated") or required_pending


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

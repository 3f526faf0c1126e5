"""A dose's own readiness: the catalog's pre-dose items, their state, and the override.

Every dose gets the items its regimen's catalog lists for it (`readiness:` in the YAML): some are
answered (active_infection, pregnancy: by staff, or by the patient's pre-dose check-in), some are
worked out from the plan's record (screening_current, ig_before_course), and premedication is
checked on the administration record itself. The dose is ready when no item blocks, or a
clinician's override covers every blocking item (never a contraindicated one).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from service.protocols.catalog import ReadinessRule
from service.vocabulary import (
    AnsweredBy,
    DoseKind,
    LabFlag,
    ReadinessCode,
    ReadinessStatus,
    ScreeningOutcome,
    TaskStatus,
)

if TYPE_CHECKING:
    from service.models.dose import Dose, DoseCheck, DoseReadinessOverride

# How bad an outcome is: an override covers an item only at or below the outcome it listed.
SEVERITY = {outcome.value: rank for rank, outcome in enumerate(ScreeningOutcome)}
BLOCKING_OUTCOMES = (
    ScreeningOutcome.PENDING,
    ScreeningOutcome.NEEDS_REVIEW,
    ScreeningOutcome.CONTRAINDICATED,
)


@dataclass
class ReadinessItem:
    code: str
    label: str
    status: str
    outcome: str
    source: str
    blocks: bool
    note: str | None = None
    result: str | None = None
    result_date: Any = None
    answered_by: str | None = None
    recorded_at: Any = None
    recorded_by_id: int | None = None
    version: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def blocking(self) -> dict[str, str]:
        return {"code": self.code, "outcome": self.outcome}


@dataclass
class Readiness:
    dose: Dose
    items: list[ReadinessItem]
    override: DoseReadinessOverride | None

    @property
    def open_items(self) -> list[ReadinessItem]:
        return [item for item in self.items if item.blocks]

    @property
    def blocking_items(self) -> list[dict[str, str]]:
        """The items that keep the dose from being given, override or not."""
        return [item.blocking for item in self.open_items]

    @property
    def override_in_effect(self) -> bool:
        if self.override is None or not self.open_items:
            return False
        return covers(self.override.blocking_items, self.blocking_items)

    @property
    def ready(self) -> bool:
        return not self.open_items or self.override_in_effect

    def item(self, code: str) -> ReadinessItem | None:
        return next((item for item in self.items if item.code == code), None)


def covers(signed: list[dict[str, str]], blocking: list[dict[str, str]]) -> bool:
    """Whether an override signed for `signed` covers every item of `blocking`.

    A contraindicated item is never covered; an item that got worse, or a new one, is not.
    """
    listed = {item["code"]: item["outcome"] for item in signed}
    for item in blocking:
        if item["outcome"] == ScreeningOutcome.CONTRAINDICATED:
            return False
        if item["code"] not in listed:
            return False
        if SEVERITY[item["outcome"]] > SEVERITY.get(listed[item["code"]], 0):
            return False
    return True


def applies_to(rule: ReadinessRule, dose: Dose) -> bool:
    if rule.applies == "first_dose":
        return dose.sequence == 1
    if rule.applies == "maintenance_course":
        before = [d for d in dose.plan.doses if d.sequence < dose.sequence]
        starts_course = not before or before[-1].course != dose.course
        return dose.kind == DoseKind.MAINTENANCE and starts_course
    if rule.condition == "can_become_pregnant":
        # Unknown asks: only a record saying the patient cannot become pregnant drops the item.
        return dose.plan.patient.can_become_pregnant is not False
    return True


def assess(dose: Dose) -> Readiness:
    regimen = dose.plan.regimen
    items: list[ReadinessItem] = []
    for rule in regimen.readiness:
        if not applies_to(rule, dose):
            continue
        if rule.code == ReadinessCode.PREMEDICATION:
            item = _premedication(rule, dose)
            if item is None:
                continue
        elif rule.code == ReadinessCode.SCREENING_CURRENT:
            item = _screening_current(rule, dose)
        elif rule.code == ReadinessCode.IG_BEFORE_COURSE:
            item = _ig_before_course(rule, dose)
        else:
            item = _answered(rule, dose)
        items.append(item)
    overrides = list(dose.readiness_overrides)
    return Readiness(dose, items, overrides[-1] if overrides else None)


def _base(rule: ReadinessRule, **values: Any) -> ReadinessItem:
    outcome = values.pop("outcome")
    return ReadinessItem(
        code=rule.code,
        label=rule.label,
        source=rule.source,
        outcome=outcome,
        blocks=values.pop("blocks", outcome in BLOCKING_OUTCOMES),
        **values,
    )


def check_of(dose: Dose, code: str) -> DoseCheck | None:
    return next((check for check in dose.checks if check.code == code), None)


def _answered(rule: ReadinessRule, dose: Dose) -> ReadinessItem:
    check = check_of(dose, rule.code)
    if check is None:
        note = rule.note
        if dose.kind == DoseKind.SELF_INJECTION and rule.patient_may_clear:
            note = "Waiting for the patient's pre-dose check-in (or a staff answer)."
        return _base(
            rule, status=ReadinessStatus.PENDING, outcome=ScreeningOutcome.PENDING, note=note
        )
    outcome = (
        rule.outcome_for(check.result)
        if check.result in rule.allowed_results
        else ScreeningOutcome.NEEDS_REVIEW
    )
    note = rule.note
    patient_clears = rule.patient_may_clear and dose.kind == DoseKind.SELF_INJECTION
    if (
        check.answered_by == AnsweredBy.PATIENT
        and outcome == ScreeningOutcome.CLEARED
        and not patient_clears
    ):
        outcome = ScreeningOutcome.PENDING
        note = "The patient reported no symptoms; staff assess before the dose."
    if check.answered_by == AnsweredBy.PATIENT and outcome == ScreeningOutcome.NEEDS_REVIEW:
        note = "The patient reported symptoms: a clinician reviews before the dose."
    return _base(
        rule,
        status=ReadinessStatus.ANSWERED,
        outcome=outcome,
        note=note,
        result=check.result,
        result_date=check.result_date,
        answered_by=check.answered_by,
        recorded_at=check.recorded_at,
        recorded_by_id=check.recorded_by_id,
        version=check.version,
    )


def _screening_current(rule: ReadinessRule, dose: Dose) -> ReadinessItem:
    checklist = dose.plan.checklist
    outcome = ScreeningOutcome.CLEARED if checklist.passes_gate else checklist.outcome
    note: str | None = rule.note
    if outcome == ScreeningOutcome.CLEARED and checklist.outcome != ScreeningOutcome.CLEARED:
        note = "Covered by the clinician's screening override."
    return _base(
        rule,
        status=ReadinessStatus.DERIVED,
        outcome=outcome,
        note=note,
        details={"screening_outcome": checklist.outcome, "blocking": checklist.blocking_items},
    )


def _ig_before_course(rule: ReadinessRule, dose: Dose) -> ReadinessItem:
    tasks = [t for t in dose.plan.monitoring_tasks if t.dose_id == dose.id and t.kind == "ig_quant"]
    if not tasks:
        return _base(
            rule,
            status=ReadinessStatus.DERIVED,
            outcome=ScreeningOutcome.CLEARED,
            note="No immunoglobulin task is planned before this course.",
        )
    task = tasks[-1]
    details: dict[str, Any] = {"task_id": task.id, "task_status": task.status}
    note: str | None
    if task.status == TaskStatus.WAIVED:
        outcome, note = ScreeningOutcome.CLEARED, "The task was waived by staff."
    elif task.status != TaskStatus.DONE:
        outcome, note = ScreeningOutcome.PENDING, "The immunoglobulin result is not recorded yet."
    elif task.lab_result is not None and task.lab_result.flag in (LabFlag.LOW, LabFlag.HIGH):
        details["flag"] = task.lab_result.flag
        outcome = ScreeningOutcome.NEEDS_REVIEW
        note = "The result is outside its range: a clinician reviews (override with a reason)."
    else:
        if task.lab_result is not None:
            details["flag"] = task.lab_result.flag
        outcome, note = ScreeningOutcome.CLEARED, rule.note
    return _base(rule, status=ReadinessStatus.DERIVED, outcome=outcome, note=note, details=details)


def _premedication(rule: ReadinessRule, dose: Dose) -> ReadinessItem | None:
    required = [p for p in dose.plan.regimen.premedications if p.required]
    if not required:
        return None
    details: dict[str, Any] = {
        "required": [
            {
                "drug": p.drug,
                "min_minutes_before": p.minutes_before.min if p.minutes_before else None,
                "max_minutes_before": p.minutes_before.max if p.minutes_before else None,
            }
            for p in required
        ]
    }
    administration = dose.administration
    if administration is None:
        # Not a question before the dose: the administration record is checked when it is made.
        return _base(
            rule,
            status=ReadinessStatus.AT_ADMINISTRATION,
            outcome=ScreeningOutcome.PENDING,
            blocks=False,
            details=details,
        )
    if administration.premedication_exception_reason:
        details["exception"] = True
    return _base(
        rule,
        status=ReadinessStatus.AT_ADMINISTRATION,
        outcome=ScreeningOutcome.CLEARED,
        blocks=False,
        details=details,
    )

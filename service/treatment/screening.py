"""Use cases for the pre-treatment screening checklist: results, and the clinician override.

The checklist's outcome and the gate itself live on the model (TreatmentPlan.checklist,
Checklist.ensure_passes) so that plans and doses apply the very same rule.

Every regimen's template in the catalog lists all twelve known item codes (the optional ones
with required: false), so each plan has an item for every code from the start; a code that is
not in the plan's template is 404, never added on the fly.

The per-dose item (active_infection, per_dose in the catalog) is kept simple: it is part of the
checklist at the start like the others, recorded once; each dose asks again in its own readiness.

Results have an age: a result dated after the first dose it clears is refused, and the model
works out whether it is still current on the first dose's day (ScreeningItem.outcome).

Some results have structure: the hepatology consult (who, decision, prophylaxis), the baseline
HBV DNA (value in IU/mL) and the liver tests (ALT, AST, ALP, bilirubin with units and ranges).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from service.core.access import Actor
from service.core.wall_clock import clinic_today
from service.db import utcnow
from service.errors import (
    Conflict,
    Contraindicated,
    InvalidTransition,
    NotFound,
    OverrideNotAllowed,
    ValidationFailed,
)
from service.models import ScreeningItem, ScreeningOverride, TreatmentPlan
from service.models.plan import Checklist
from service.reminders.derive import sync_checklist_reminders
from service.staff.alerts import raise_alert
from service.treatment.labs import flag_for, lab_code_problems, normalise_unit
from service.treatment.plans import get_plan, schedule_changed, touch
from service.vocabulary import ConsultDecision, LabFlag

MIN_OVERRIDE_REASON = 10
LIVER_TESTS = ("alt", "ast", "alp", "bilirubin")
HBV_DNA_UNIT = "IU/mL"
# The items the hepatitis B pathway reads (service.models.plan.HbvPathway): their results
# change monitoring; every other result changes at most the checklist's reminders.
HBV_PATHWAY_CODES = frozenset({"hbsag", "anti_hbc", "hbv_dna", "hepatology_consult"})


def blocking_items_of(plan: TreatmentPlan) -> list[str]:
    """Codes of the items that keep the gate closed; empty when cleared or overridden."""
    return plan.checklist.blocking_codes


def get_checklist(session: Session, actor: Actor, plan_id: int) -> Checklist:
    return get_plan(session, actor, plan_id).checklist


def get_screening_item(session: Session, actor: Actor, plan_id: int, code: str) -> ScreeningItem:
    plan = get_plan(session, actor, plan_id)
    for item in plan.screening_items:
        if item.code == code:
            return item
    raise NotFound(f"The {plan.regimen_code} checklist has no item '{code}'")


def record_screening_result(
    session: Session,
    actor: Actor,
    item: ScreeningItem,
    *,
    result_date: date,
    result: str | None = None,
    value: str | None = None,
    unit: str | None = None,
    notes: str | None = None,
    consult: Mapping[str, Any] | None = None,
    values: Sequence[Mapping[str, Any]] | None = None,
) -> ScreeningItem:
    """Record (or correct) one item's result; the checklist outcome follows from the rules.

    `consult` is the hepatology consult's record (that item only); `values` the liver tests
    (lft only), from which the result (normal or abnormal) is worked out.
    """
    actor.require_staff()
    plan = item.plan
    if not plan.is_open:
        raise InvalidTransition(f"The plan is {plan.status}; its checklist is closed", allowed=[])
    problems: dict[str, list[str]] = {}
    details: dict[str, Any] | None = None
    if item.code == "hepatology_consult":
        result, details = _consult(consult, result, result_date, problems)
    elif consult is not None:
        problems["consult"] = ["Only the hepatology_consult item takes a consult."]
    if item.code == "lft":
        result, details = _liver_tests(values, result, problems)
    elif values is not None:
        problems["values"] = ["Only the lft item takes liver test values."]
    if item.code == "hbv_dna":
        unit = _hbv_dna(value, unit, problems)
    rule = item.rule
    if result is None:
        problems.setdefault("result", ["Missing data for required field."])
    elif rule is not None and result not in rule.allowed_results:
        problems["result"] = [f"For {item.code}, one of: {', '.join(rule.allowed_results)}."]
    if result_date > clinic_today(session, plan.clinic_id):
        problems["result_date"] = ["Must not be in the future."]
    first = plan.first_dose_day
    if first is not None and result_date > first:
        problems.setdefault("result_date", []).append(
            f"Must not be after the first dose's day ({first.isoformat()}), which it clears."
        )
    if problems:
        raise ValidationFailed(errors=problems)
    assert result is not None
    blocking_before = plan.checklist.blocking_codes
    item.result = result
    item.result_date = result_date
    item.value = value
    item.unit = unit
    item.notes = notes
    item.details = details
    item.recorded_by_id = actor.user_id
    item.recorded_at = utcnow()
    touch(plan)
    session.flush()
    _alert_on_finding(session, plan, item)
    if item.code in HBV_PATHWAY_CODES:
        # The hepatitis B pathway decides monitoring tests and their reminders.
        schedule_changed(session, plan)
    elif plan.checklist.blocking_codes != blocking_before:
        sync_checklist_reminders(session, plan)
    return item


def _consult(
    consult: Mapping[str, Any] | None,
    result: str | None,
    consult_date: date,
    problems: dict[str, list[str]],
) -> tuple[str | None, dict[str, Any] | None]:
    """The structured consult: who, decision, and for prophylaxis the drug and its dates."""
    if consult is None:
        problems["consult"] = [
            "The hepatology consult is recorded as {consultant, decision, prophylaxis?}."
        ]
        return result, None
    decision = consult["decision"]
    if result is not None and result != decision:
        problems["result"] = ["Leave it out, or give the consult's decision."]
    details: dict[str, Any] = {
        "consultant": consult["consultant"],
        "decision": decision,
        "monitoring_interval_months": consult.get("monitoring_interval_months"),
        "prophylaxis": None,
    }
    prophylaxis = consult.get("prophylaxis")
    if decision == ConsultDecision.PROPHYLAXIS:
        if not prophylaxis:
            problems["consult.prophylaxis"] = ["Give the drug and start date of the prophylaxis."]
        else:
            start, stop = prophylaxis["start_date"], prophylaxis.get("planned_stop")
            if stop is not None and stop <= start:
                problems["consult.prophylaxis.planned_stop"] = ["Must be after the start date."]
            details["prophylaxis"] = {
                "drug": prophylaxis["drug"],
                "start_date": start.isoformat(),
                "planned_stop": stop.isoformat() if stop is not None else None,
            }
    elif prophylaxis:
        problems["consult.prophylaxis"] = ["Only a consult that decided prophylaxis has one."]
    if decision == ConsultDecision.NOT_ELIGIBLE and consult.get("monitoring_interval_months"):
        problems["consult.monitoring_interval_months"] = ["Not for a patient not treated."]
    del consult_date  # the consult's day is the item's result_date
    return decision, details


def _liver_tests(
    values: Sequence[Mapping[str, Any]] | None,
    result: str | None,
    problems: dict[str, list[str]],
) -> tuple[str | None, dict[str, Any] | None]:
    """ALT, AST, ALP and bilirubin as values with units and the laboratory's range."""
    if not values:
        problems["values"] = [f"Give each liver test as a value: {', '.join(LIVER_TESTS)}."]
        return result, None
    recorded: list[dict[str, Any]] = []
    for i, entry in enumerate(values):
        code, unit = entry["code"], normalise_unit(entry["unit"])
        for name, messages in lab_code_problems(code, unit).items():
            problems[f"values.{i}.{name}"] = messages
        low, high = entry.get("ref_low"), entry.get("ref_high")
        if low is None and high is None:
            problems[f"values.{i}.ref_high"] = ["Give the laboratory's reference range."]
        elif low is not None and high is not None and low > high:
            problems[f"values.{i}.ref_low"] = ["Must not be above ref_high."]
        recorded.append(
            {
                "code": code,
                "value": entry["value"],
                "unit": unit,
                "ref_low": low,
                "ref_high": high,
                "flag": flag_for(entry["value"], low, high),
            }
        )
    codes = [entry["code"] for entry in recorded]
    missing = [code for code in LIVER_TESTS if code not in codes]
    if missing:
        problems["values"] = [f"Missing: {', '.join(missing)}."]
    if len(set(codes)) != len(codes):
        problems["values"] = ["Each liver test once."]
    if not set(codes) <= set(LIVER_TESTS):
        problems["values"] = [f"Only {', '.join(LIVER_TESTS)}."]
    abnormal = any(entry["flag"] in (LabFlag.LOW, LabFlag.HIGH) for entry in recorded)
    derived = "abnormal" if abnormal else "normal"
    if result is not None and result != derived:
        problems["result"] = [f"The values say {derived}: leave it out, or give {derived}."]
    return derived, {"values": recorded}


def _hbv_dna(value: str | None, unit: str | None, problems: dict[str, list[str]]) -> str | None:
    """The baseline HBV DNA is a number in IU/mL (0 or the assay's limit when not detected)."""
    try:
        number = float(value) if value is not None else None
    except ValueError:
        number = None
    if number is None or number < 0:
        problems["value"] = ["Give the HBV DNA as a number in IU/mL."]
    if unit is None or normalise_unit(unit) != HBV_DNA_UNIT:
        problems["unit"] = [f"HBV DNA is reported in {HBV_DNA_UNIT}."]
    return HBV_DNA_UNIT


def _alert_on_finding(session: Session, plan: TreatmentPlan, item: ScreeningItem) -> None:
    """Detected HBV DNA and abnormal liver tests go to the staff worklist (codes only)."""
    details: dict[str, Any]
    if item.code == "hbv_dna" and item.result == "positive":
        kind, details = "hbv_dna_detectable", {"code": "hbv_dna"}
    elif item.code == "lft" and item.result == "abnormal":
        flagged = [
            v["code"] for v in (item.details or {}).get("values", []) if v["flag"] != "normal"
        ]
        kind, details = "lft_abnormal", {"codes": flagged}
    else:
        return
    raise_alert(
        session,
        clinic_id=plan.clinic_id,
        patient_id=plan.patient_id,
        kind=kind,
        subject=("screening_item", item.id),
        details=details,
    )


def override_screening(session: Session, actor: Actor, plan_id: int, *, reason: str) -> Checklist:
    """A clinician's signed decision to treat although the checklist is pending or needs review.

    A contraindicated checklist (HBsAg positive: the label contraindicates active HBV) is refused.
    """
    actor.require_role("clinician")
    plan = get_plan(session, actor, plan_id)
    reason = reason.strip()
    if len(reason) < MIN_OVERRIDE_REASON:
        raise ValidationFailed(
            errors={"reason": [f"Give the reason in at least {MIN_OVERRIDE_REASON} characters."]}
        )
    if not plan.is_open:
        raise InvalidTransition(f"The plan is {plan.status}", allowed=[])
    checklist = plan.checklist
    if checklist.outcome == "contraindicated":
        codes = [i["code"] for i in checklist.blocking_items if i["outcome"] == "contraindicated"]
        raise Contraindicated(
            f"Contraindicated by {', '.join(codes)}: an override cannot clear a "
            "contraindication. HBsAg positive (active hepatitis B) stays contraindicated unless "
            "a hepatology consult documents antiviral prophylaxis (PUT "
            "/plans/{id}/screening/hepatology_consult) and the baseline HBV DNA is recorded; "
            "then a clinician may override with a reason.",
            blocking_items=checklist.blocking_items,
        )
    if checklist.not_overridable:
        raise OverrideNotAllowed(
            "The hepatitis B items are cleared only by their record: the baseline HBV DNA "
            "and the hepatology consult (PUT /plans/{id}/screening/hepatology_consult), "
            "never by a free-text override. " + plan.hbv_pathway.reason,
            blocking_items=checklist.not_overridable,
        )
    if checklist.outcome == "cleared":
        raise Conflict("The checklist is cleared; there is nothing to override.")
    plan.overrides.append(
        ScreeningOverride(
            reason=reason,
            outcome_overridden=checklist.outcome,
            blocking_items=checklist.blocking_items,
            clinician_id=actor.user_id,
            created_at=utcnow(),
        )
    )
    touch(plan)
    session.flush()
    # An override moves no date: only the checklist's reminders follow it.
    sync_checklist_reminders(session, plan)
    return plan.checklist

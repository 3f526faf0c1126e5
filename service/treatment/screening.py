"""Use cases for the pre-treatment screening checklist: results, and the clinician override.

The checklist's outcome and the gate itself live on the model (TreatmentPlan.checklist,
Checklist.ensure_passes) so that plans and doses apply the very same rule.

Every regimen's template in the catalog lists all twelve known item codes (the optional ones
with required: false), so each plan has an item for every code from the start; a code that is
not in the plan's template is 404, never added on the fly.

The per-dose item (active_infection, per_dose in the catalog) is kept simple: it is part of the
checklist at the start like the others, recorded once. A later infection check-in reported by
the patient flags the dose (Dose.needs_review) instead.
"""

from __future__ import annotations

from datetime import date

from sqlalchemy.orm import Session

from service.core.access import Actor
from service.core.wall_clock import clinic_today
from service.db import utcnow
from service.errors import Conflict, Contraindicated, InvalidTransition, NotFound, ValidationFailed
from service.models import ScreeningItem, ScreeningOverride, TreatmentPlan
from service.models.plan import Checklist
from service.treatment.plans import get_plan, schedule_changed, touch

MIN_OVERRIDE_REASON = 10


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
    result: str,
    result_date: date,
    value: str | None = None,
    unit: str | None = None,
    notes: str | None = None,
) -> ScreeningItem:
    """Record (or correct) one item's result; the checklist outcome follows from the rules."""
    actor.require_staff()
    plan = item.plan
    if not plan.is_open:
        raise InvalidTransition(f"The plan is {plan.status}; its checklist is closed", allowed=[])
    problems: dict[str, list[str]] = {}
    rule = item.rule
    if rule is not None and result not in rule.allowed_results:
        problems["result"] = [f"For {item.code}, one of: {', '.join(rule.allowed_results)}."]
    if result_date > clinic_today(session, plan.clinic_id):
        problems["result_date"] = ["Must not be in the future."]
    if problems:
        raise ValidationFailed(errors=problems)
    item.result = result
    item.result_date = result_date
    item.value = value
    item.unit = unit
    item.notes = notes
    item.recorded_by_id = actor.user_id
    item.recorded_at = utcnow()
    touch(plan)
    session.flush()
    schedule_changed(session, plan)
    return item


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
            f"Contraindicated by {', '.join(codes)}: HBsAg positive is a label contraindication "
            "(active hepatitis B) and an override cannot clear a contraindication. Whether an "
            "HBsAg-positive carrier may be treated is for a liver-disease expert to decide "
            "outside this checklist; correct the result only if it was recorded in error.",
            blocking_items=checklist.blocking_items,
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
    schedule_changed(session, plan)
    return plan.checklist

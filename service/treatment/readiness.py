"""Use cases for a dose's own readiness: read it, answer an item, override, the patient check-in.

The items and their state are computed on the model (Dose.readiness, service.models.readiness)
so the gate, the API and the worklist apply the very same rule.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from service.core.access import Actor
from service.core.wall_clock import clinic_today, clinic_zone
from service.db import utcnow
from service.errors import Conflict, Contraindicated, InvalidTransition, NotFound, ValidationFailed
from service.models import Dose, DoseCheck, DoseReadinessOverride, Reminder
from service.models.readiness import Readiness, ReadinessItem, check_of
from service.reminders.derive import dose_day
from service.treatment.doses import get_dose
from service.treatment.plans import touch
from service.vocabulary import AnsweredBy, ReadinessCode, ScreeningOutcome

MIN_OVERRIDE_REASON = 10


def get_readiness(session: Session, actor: Actor, dose_id: int) -> Readiness:
    return get_dose(session, actor, dose_id).readiness


def get_readiness_item(session: Session, actor: Actor, dose_id: int, code: str) -> ReadinessItem:
    dose = get_dose(session, actor, dose_id)
    item = dose.readiness.item(code)
    if item is None:
        raise NotFound(f"Dose {dose.sequence} of this plan has no readiness item '{code}'")
    return item


def record_readiness_answer(
    session: Session,
    actor: Actor,
    dose_id: int,
    code: str,
    *,
    result: str,
    result_date: date,
    notes: str | None = None,
) -> ReadinessItem:
    """Staff answer one item (e.g. no active infection found at the chair); it replaces any
    earlier answer, the patient's included: a clinician reviewing reported symptoms records
    the outcome of that review here."""
    actor.require_staff()
    dose = get_dose(session, actor, dose_id)
    plan = dose.plan
    item = dose.readiness.item(code)
    if item is None:
        raise NotFound(f"Dose {dose.sequence} of this plan has no readiness item '{code}'")
    rule = plan.regimen.readiness_rule(code)
    if not rule.answered:
        raise InvalidTransition(
            f"{code} is worked out from the plan's record, not answered; "
            "a clinician may override it with a reason.",
            allowed=[],
        )
    if not plan.is_open or not dose.is_open:
        raise InvalidTransition(f"Dose {dose.sequence} is {dose.status}; its checks are closed")
    problems: dict[str, list[str]] = {}
    if result not in rule.allowed_results:
        problems["result"] = [f"For {code}, one of: {', '.join(rule.allowed_results)}."]
    # The dose is still open, so any day up to today comes before it.
    if result_date > clinic_today(session, plan.clinic_id):
        problems["result_date"] = ["Must not be in the future."]
    if problems:
        raise ValidationFailed(errors=problems)
    check = check_of(dose, code)
    if check is None:
        check = DoseCheck(code=code)
    check.result = result
    check.result_date = result_date
    check.answered_by = AnsweredBy.STAFF
    check.reminder_id = None
    check.notes = notes
    check.recorded_by_id = actor.user_id
    check.recorded_at = utcnow()
    if check not in dose.checks:
        dose.checks.append(check)
    if code == ReadinessCode.ACTIVE_INFECTION:
        dose.needs_review = rule.outcome_for(result) != ScreeningOutcome.CLEARED
    touch(plan)
    session.flush()
    answered = dose.readiness.item(code)
    assert answered is not None
    return answered


def override_readiness(session: Session, actor: Actor, dose_id: int, *, reason: str) -> Readiness:
    """A clinician's signed decision to give the dose although the listed items are open.

    A contraindicated item is refused: no override clears a contraindication.
    """
    actor.require_role("clinician")
    dose = get_dose(session, actor, dose_id)
    reason = reason.strip()
    if len(reason) < MIN_OVERRIDE_REASON:
        raise ValidationFailed(
            errors={"reason": [f"Give the reason in at least {MIN_OVERRIDE_REASON} characters."]}
        )
    if not dose.plan.is_open or not dose.is_open:
        raise InvalidTransition(f"Dose {dose.sequence} is {dose.status}", allowed=[])
    readiness = dose.readiness
    blocking = readiness.blocking_items
    contraindicated = [i["code"] for i in blocking if i["outcome"] == "contraindicated"]
    if contraindicated:
        raise Contraindicated(
            f"Contraindicated by {', '.join(contraindicated)}: an override cannot clear a "
            "contraindication.",
            blocking_items=blocking,
        )
    if not blocking:
        raise Conflict("Every readiness item is clear; there is nothing to override.")
    dose.readiness_overrides.append(
        DoseReadinessOverride(
            reason=reason,
            blocking_items=blocking,
            clinician_id=actor.user_id,
            created_at=utcnow(),
        )
    )
    touch(dose.plan)
    session.flush()
    return dose.readiness


def record_checkin_answer(
    session: Session, reminder: Reminder, response: dict[str, Any], now: datetime
) -> Dose | None:
    """The patient's pre-dose infection check-in becomes the dose's active_infection answer.

    "symptoms" always takes effect (it blocks the dose until a clinician reviews); "no symptoms"
    never replaces a staff answer. Returns the dose answered, if any.
    """
    if reminder.subject_type != "dose":
        return None
    dose = session.get(Dose, reminder.subject_id)
    if dose is None or not dose.is_open or not dose.plan.is_open:
        return None
    if dose.readiness.item(ReadinessCode.ACTIVE_INFECTION) is None:
        return None
    symptoms = response.get("status") == "symptoms"
    check = check_of(dose, ReadinessCode.ACTIVE_INFECTION)
    if check is not None and check.answered_by == AnsweredBy.STAFF and not symptoms:
        return None
    # Work out everything that reads the database before the new row joins the session.
    zone = clinic_zone(session, dose.plan.clinic_id)
    result_date = min(now.astimezone(ZoneInfo(zone)).date(), dose_day(dose, zone))
    if check is None:
        check = DoseCheck(code=ReadinessCode.ACTIVE_INFECTION)
        dose.checks.append(check)
    check.result = "positive" if symptoms else "negative"
    check.result_date = result_date
    check.answered_by = AnsweredBy.PATIENT
    check.reminder_id = reminder.id
    check.notes = None
    check.recorded_by_id = None
    check.recorded_at = now
    if symptoms:
        dose.needs_review = True
    touch(dose.plan)
    session.flush()
    return dose

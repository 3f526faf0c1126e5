"""Use cases for treatment plans: create or preview one from a regimen, read, list, change it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

from service.core.access import Actor
from service.core.paging import Page, paginate
from service.core.wall_clock import clinic_today
from service.db import utcnow
from service.errors import (
    AlreadyExists,
    ContraindicatedByHistory,
    Forbidden,
    InvalidTransition,
    NotFound,
    ValidationFailed,
)
from service.models import (
    Clinic,
    Dose,
    DoseAdministration,
    MonitoringTask,
    Patient,
    ScreeningItem,
    TreatmentPlan,
)
from service.protocols.catalog import Interval, Regimen, get_regimen
from service.protocols.schedule import PlannedDose, monitoring_due_dates, plan_doses
from service.reminders.derive import sync_plan_reminders
from service.treatment.monitoring import derive_monitoring_tasks, start_follow_ups
from service.vocabulary import (
    OPEN_DOSE_STATUSES,
    OPEN_PLAN_STATUSES,
    Booking,
    DoseStatus,
    PlanStatus,
    ReactionGrade,
    TaskStatus,
    values,
)

# The label's answer to a life-threatening infusion reaction is permanent discontinuation.
LIFE_THREATENING_HOLD = "life_threatening_infusion_reaction"

# Targets a PATCH may ask for from each status; resuming from on_hold is worked out below.
TRANSITIONS: dict[str, tuple[str, ...]] = {
    PlanStatus.DRAFT: values(PlanStatus.SCREENING, PlanStatus.DISCONTINUED),
    PlanStatus.SCREENING: values(PlanStatus.READY, PlanStatus.DISCONTINUED),
    PlanStatus.READY: values(PlanStatus.ON_HOLD, PlanStatus.DISCONTINUED),
    PlanStatus.ACTIVE: values(PlanStatus.ON_HOLD, PlanStatus.COMPLETED, PlanStatus.DISCONTINUED),
    PlanStatus.ON_HOLD: values(PlanStatus.READY, PlanStatus.ACTIVE, PlanStatus.DISCONTINUED),
    PlanStatus.COMPLETED: (),
    PlanStatus.DISCONTINUED: (),
}
GATED_TARGETS = values(PlanStatus.READY, PlanStatus.ACTIVE)
CLOSED_PLAN_STATUSES = values(PlanStatus.COMPLETED, PlanStatus.DISCONTINUED)


def plan_loader_options() -> list[Any]:
    """Everything the plan body dumps, loaded up front (no N+1 on lists). What is one or none
    per parent, or rarely more (a dose's record and readiness override, a plan's overrides and
    follow-ups), rides in its parent's statement; lists go in a statement each: every statement
    is a round trip, and a first read of a plan costs its round trips."""
    doses = selectinload(TreatmentPlan.doses)
    return [
        joinedload(TreatmentPlan.clinic),
        joinedload(TreatmentPlan.overrides),
        joinedload(TreatmentPlan.follow_ups),
        joinedload(TreatmentPlan.patient).selectinload(Patient.plans),
        selectinload(TreatmentPlan.screening_items),
        doses.selectinload(Dose.checks),
        doses.joinedload(Dose.readiness_overrides),
        doses.joinedload(Dose.administration).selectinload(DoseAdministration.premedications),
        selectinload(TreatmentPlan.monitoring_tasks),
    ]


def new_dose(planned: PlannedDose) -> Dose:
    return Dose(
        sequence=planned.sequence,
        course=planned.course,
        kind=planned.kind,
        rule_key=planned.rule_key,
        amount_mg=planned.amount_mg,
        due_date=planned.due_date,
        earliest_date=planned.earliest_date,
        status=DoseStatus.PLANNED,
        booking=None,
        appointment_at=None,
        location=None,
        needs_review=False,
    )


def schedule_changed(session: Session, plan: TreatmentPlan) -> None:
    """Re-derive, in this transaction, what follows from the plan's doses and checklist."""
    derive_monitoring_tasks(session, plan)
    sync_plan_reminders(session, plan)


def touch(plan: TreatmentPlan) -> None:
    """Mark the plan changed: its version moves, so a stale If-Match on it fails, and two
    requests changing the same plan's doses at once cannot both win."""
    plan.updated_at = utcnow()


# --- creating ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanRequest:
    """What staff ask for when they start (or preview) a plan."""

    regimen: str
    start_date: date
    variant: str | None = None
    notes: str | None = None
    # Option names for the regimen's settings; unnamed ones come from the clinic or the catalog.
    settings: Mapping[str, str] | None = None


def create_plan(
    session: Session, actor: Actor, patient_id: int, request: PlanRequest
) -> TreatmentPlan:
    """Start a plan: status screening, the regimen's checklist, its doses and monitoring."""
    plan, catalog_entry = _draft_plan(session, actor, patient_id, request, lock=True)
    patient = session.get(Patient, patient_id)
    assert patient is not None
    _refuse_contraindicated(patient, catalog_entry)
    open_plan = session.scalar(
        select(TreatmentPlan.id).where(
            TreatmentPlan.patient_id == patient_id,
            TreatmentPlan.status.in_(OPEN_PLAN_STATUSES),
        )
    )
    if open_plan is not None:
        raise AlreadyExists(
            "The patient already has an open treatment plan; complete or discontinue it first "
            "(two anti-CD20 plans at once would double the B-cell depletion).",
            open_plan_id=open_plan,
        )
    session.add(plan)
    session.flush()
    schedule_changed(session, plan)
    return plan


def _refuse_contraindicated(patient: Patient, regimen: Regimen) -> None:
    """A life-threatening infusion reaction to the same molecule, under any earlier plan, is a
    label contraindication (ocrelizumab, §1 and §11): no new plan of that drug."""
    contraindication = regimen.contraindicated_by(LIFE_THREATENING_HOLD)
    if contraindication is None:
        return
    history = [
        e
        for e in patient.reaction_history
        if e["grade"] == ReactionGrade.LIFE_THREATENING and e["drug"] == regimen.molecule
    ]
    if history:
        raise ContraindicatedByHistory(
            f"{contraindication.text} The patient had a life-threatening infusion reaction to "
            f"{regimen.molecule} (plan {history[0]['plan_id']}).",
            contraindication=contraindication.code,
            source=contraindication.source,
            history=[
                {
                    "plan_id": e["plan_id"],
                    "dose_id": e["dose_id"],
                    "regimen": e["regimen"],
                    "grade": e["grade"],
                    "administered_at": e["administered_at"].isoformat(),
                }
                for e in history
            ],
        )


def preview_plan(
    session: Session, actor: Actor, patient_id: int, request: PlanRequest
) -> TreatmentPlan:
    """The plan create_plan would make, with its monitoring, never added to the session."""
    plan, catalog_entry = _draft_plan(session, actor, patient_id, request, lock=False)
    start_date = request.start_date
    chosen = plan.settings
    planned = [d.as_planned() for d in plan.doses]
    horizon = Interval(months=catalog_entry.horizon_months(chosen)).add_to(start_date)
    until = max([horizon, *(d.due_date for d in planned)])
    for kind, due in monitoring_due_dates(
        catalog_entry, planned, start_date, settings=chosen, anti_hbc_positive=False, until=until
    ):
        plan.monitoring_tasks.append(
            MonitoringTask(kind=kind, due_date=due, rule_date=due, status=TaskStatus.DUE)
        )
    return plan


def _draft_plan(
    session: Session, actor: Actor, patient_id: int, request: PlanRequest, *, lock: bool
) -> tuple[TreatmentPlan, Regimen]:
    """A plan built from the catalog for a patient the actor may treat (not yet in the session)."""
    actor.require_staff()
    patient = _visible_patient(session, actor, patient_id, lock=lock)
    catalog_entry = _regimen(request.regimen)
    chosen = _chosen_settings(session, patient.clinic_id, catalog_entry, request.settings)
    plan = _build_plan(
        patient,
        catalog_entry,
        variant=request.variant,
        start_date=request.start_date,
        settings=chosen,
        notes=request.notes,
        prescriber_id=actor.user_id,
    )
    return plan, catalog_entry


def _visible_patient(
    session: Session, actor: Actor, patient_id: int, *, lock: bool = False
) -> Patient:
    # The row lock makes two simultaneous "create plan" requests for one patient take turns,
    # so both cannot pass the one-open-plan check (PostgreSQL; SQLite serialises writers).
    patient = session.get(Patient, patient_id, with_for_update=lock or None)
    if patient is None:
        raise NotFound("Patient not found")
    actor.ensure_can_see(clinic_id=patient.clinic_id, patient_id=patient.id, what="Patient")
    return patient


def _regimen(code: str) -> Regimen:
    try:
        return get_regimen(code)
    except NotFound:
        raise ValidationFailed(
            f"Unknown regimen '{code}'", errors={"regimen": ["Not a regimen in the catalog."]}
        ) from None


def _chosen_settings(
    session: Session, clinic_id: int, regimen: Regimen, requested: Mapping[str, str] | None
) -> dict[str, str]:
    """Option names for every setting: the request's, else the clinic's, else the catalog's."""
    clinic = session.get(Clinic, clinic_id)
    assert clinic is not None
    chosen = {
        name: option
        for name, option in (clinic.regimen_settings(regimen.code) if clinic else {}).items()
        if name in regimen.settings
        and isinstance(option, str)
        and option in regimen.settings[name].options
    }
    chosen.update(requested or {})
    regimen.resolve_settings(chosen)
    return {name: chosen.get(name, setting.default) for name, setting in regimen.settings.items()}


def _build_plan(
    patient: Patient,
    regimen: Regimen,
    *,
    variant: str | None,
    start_date: date,
    settings: dict[str, str],
    notes: str | None,
    prescriber_id: int,
) -> TreatmentPlan:
    """A transient plan with its checklist and doses; only the caller decides to store it."""
    variant_code = regimen.variant(variant).code
    plan = TreatmentPlan(
        clinic_id=patient.clinic_id,
        patient_id=patient.id,
        regimen_code=regimen.code,
        variant=variant_code,
        status=PlanStatus.SCREENING,
        start_date=start_date,
        settings=settings,
        notes=notes,
        hold_reason=None,
        prescriber_id=prescriber_id,
    )
    for rule in regimen.screening:
        plan.screening_items.append(ScreeningItem(code=rule.code, required=rule.required))
    for planned in plan_doses(regimen, variant_code, start_date, settings=settings):
        plan.doses.append(new_dose(planned))
    return plan


# --- reading ----------------------------------------------------------------------------------


def get_plan(session: Session, actor: Actor, plan_id: int) -> TreatmentPlan:
    """The plan, with everything its body dumps."""
    plan = session.get(TreatmentPlan, plan_id, options=plan_loader_options())
    if plan is None:
        raise NotFound("Plan not found")
    actor.ensure_can_see(clinic_id=plan.clinic_id, patient_id=plan.patient_id, what="Plan")
    return plan


def list_patient_plans(
    session: Session, actor: Actor, patient_id: int, *, page: int, page_size: int
) -> Page[TreatmentPlan]:
    patient = _visible_patient(session, actor, patient_id)
    return _plans_of(session, patient.id, page=page, page_size=page_size)


def list_my_plans(
    session: Session, actor: Actor, *, page: int, page_size: int
) -> Page[TreatmentPlan]:
    """The signed-in patient's own plans (the mobile app's view)."""
    if actor.is_staff or actor.patient_id is None:
        raise Forbidden("This lists a patient's own plans; staff use /patients/{id}/plans")
    return _plans_of(session, actor.patient_id, page=page, page_size=page_size)


def _plans_of(session: Session, patient_id: int, *, page: int, page_size: int) -> Page[Any]:
    stmt = (
        select(TreatmentPlan)
        .where(TreatmentPlan.patient_id == patient_id)
        .options(*plan_loader_options())
        .order_by(TreatmentPlan.start_date.desc(), TreatmentPlan.id.desc())
    )
    return paginate(session, stmt, page=page, page_size=page_size)


# --- changing ---------------------------------------------------------------------------------


def update_plan(
    session: Session, actor: Actor, plan: TreatmentPlan, changes: dict[str, Any]
) -> TreatmentPlan:
    """Change status (the allowed transitions only), start date, notes or the hold reason.

    Everything is checked before anything changes, so a refusal leaves the plan as it was.
    """
    actor.require_staff()
    target: str = changes.get("status") or plan.status
    moving = target != plan.status
    if moving:
        _check_transition(plan, target)
    status_after = target
    hold_reason = (changes.get("hold_reason") or "").strip() or None
    if status_after == PlanStatus.ON_HOLD:
        if (moving or "hold_reason" in changes) and hold_reason is None:
            raise ValidationFailed(errors={"hold_reason": ["Say why the plan is on hold."]})
        if not moving and "hold_reason" in changes and plan.hold_reason == LIFE_THREATENING_HOLD:
            raise InvalidTransition(
                "A hold for a life-threatening infusion reaction keeps its reason.",
                allowed=["discontinued"],
            )
    elif hold_reason is not None:
        raise ValidationFailed(errors={"hold_reason": ["Only a plan on hold has a hold reason."]})
    new_start: date = changes.get("start_date") or plan.start_date
    replan = new_start != plan.start_date
    if replan:
        _check_start_date_change(plan)

    if "notes" in changes:
        plan.notes = changes["notes"]
    if replan:
        replan_from_start(plan, new_start)
    if "hold_reason" in changes and status_after == PlanStatus.ON_HOLD:
        plan.hold_reason = hold_reason
    if moving:
        _apply_transition(plan, target, hold_reason)
        if target in CLOSED_PLAN_STATUSES:
            plan.ended_on = clinic_today(session, plan.clinic_id)
            start_follow_ups(session, plan, ended_on=plan.ended_on)
    touch(plan)
    session.flush()
    if replan or moving:
        schedule_changed(session, plan)
    return plan


def next_statuses(plan: TreatmentPlan) -> list[str]:
    """The statuses a PATCH may ask for next (the checklist's gate is checked on the way)."""
    if plan.status == PlanStatus.ON_HOLD:
        if plan.hold_reason == LIFE_THREATENING_HOLD:
            return [PlanStatus.DISCONTINUED]
        resume = PlanStatus.ACTIVE if plan.has_administered_dose else PlanStatus.READY
        return [resume, PlanStatus.DISCONTINUED]
    return list(TRANSITIONS[plan.status])


def _check_transition(plan: TreatmentPlan, target: str) -> None:
    allowed = list(TRANSITIONS[plan.status])
    if plan.status == PlanStatus.ON_HOLD:
        if plan.hold_reason == LIFE_THREATENING_HOLD and target != PlanStatus.DISCONTINUED:
            raise InvalidTransition(
                "The plan is on hold after a life-threatening infusion reaction: the label says "
                "to discontinue permanently, so it can only be discontinued.",
                allowed=["discontinued"],
            )
        resume = "active" if plan.has_administered_dose else "ready"
        allowed = [resume, "discontinued"]
    if target not in allowed:
        raise InvalidTransition(
            f"A {plan.status} plan cannot become {target}; allowed: "
            f"{', '.join(allowed) or 'nothing (the plan is closed)'}",
            allowed=allowed,
        )
    if target in GATED_TARGETS:
        plan.checklist.ensure_passes(f"make the plan {target}")


def _check_start_date_change(plan: TreatmentPlan) -> None:
    if not plan.is_open:
        raise InvalidTransition(f"A {plan.status} plan keeps its start date", allowed=[])
    fixed = [
        d.sequence
        for d in plan.doses
        if d.status == DoseStatus.ADMINISTERED
        or (d.status == DoseStatus.BOOKED and d.booking == Booking.CONFIRMED)
    ]
    if fixed:
        raise InvalidTransition(
            "The start date can change only while no dose is confirmed or given; "
            "reschedule the doses instead.",
            dose_sequences=fixed,
        )


def _apply_transition(plan: TreatmentPlan, target: str, hold_reason: str | None) -> None:
    if target == PlanStatus.ON_HOLD:
        plan.hold_reason = hold_reason
    elif plan.status == PlanStatus.ON_HOLD:
        plan.hold_reason = None
    if target in CLOSED_PLAN_STATUSES:
        for dose in plan.doses:
            if dose.status in OPEN_DOSE_STATUSES:
                dose.status = DoseStatus.CANCELLED
    plan.status = target


def replan_from_start(plan: TreatmentPlan, new_start: date) -> None:
    """Re-plan every dose from a new start date, keeping the dose rows (and their ids).

    Only called while nothing is confirmed or given; tentative bookings are dropped, since the
    appointment no longer falls on the dose's day.
    """
    regimen = plan.regimen
    doses = sorted(plan.doses, key=lambda d: d.sequence)
    delta = new_start - plan.start_date
    horizon = Interval(months=regimen.horizon_months(plan.settings)).add_to(new_start)
    until = max([horizon, *(d.due_date + delta for d in doses)])
    planned = plan_doses(regimen, plan.variant, new_start, settings=plan.settings, until=until)
    for dose, new in zip(doses, planned, strict=False):
        dose.due_date = new.due_date
        dose.earliest_date = new.earliest_date
        if dose.status == DoseStatus.BOOKED:
            dose.status, dose.booking, dose.appointment_at = DoseStatus.PLANNED, None, None
    for new in planned[len(doses) :]:
        plan.doses.append(new_dose(new))
    for dose in doses[len(planned) :]:
        plan.doses.remove(dose)
    plan.start_date = new_start

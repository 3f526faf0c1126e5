"""Use cases for doses: list, read, book and reschedule, record as given, extend rolling plans."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlalchemy.orm import Session, joinedload, selectinload

from service.core.access import Actor
from service.core.paging import Page, paginate
from service.core.wall_clock import clinic_today, clinic_zone
from service.db import utcnow
from service.errors import (
    DoseNotReady,
    Forbidden,
    InfusionOptionNotAllowed,
    InvalidTransition,
    MinimumIntervalViolated,
    NotFound,
    PlanOnHold,
    PremedicationOutsideWindow,
    ValidationFailed,
)
from service.models import Dose, DoseAdministration, Patient, PremedicationGiven, TreatmentPlan
from service.protocols.catalog import Interval, Regimen, all_regimens
from service.protocols.schedule import (
    PlannedDose,
    check_minimum_interval,
    extend_doses,
    reanchor_following,
    shift_following,
)
from service.treatment.plans import (
    LIFE_THREATENING_HOLD,
    get_plan,
    new_dose,
    schedule_changed,
    touch,
)
from service.vocabulary import (
    SKIPPED_DOSE_STATUSES,
    Booking,
    DoseStatus,
    PlanStatus,
    Role,
    values,
)

log = logging.getLogger(__name__)

# Doses that did not and will not happen: they anchor neither intervals nor the cascade.
# A client clock a little ahead of ours is not a dose recorded in the future.
CLOCK_SKEW = timedelta(minutes=5)
# Plans whose schedule the nightly run extends; a plan on hold waits for a decision.
EXTENDABLE_PLAN_STATUSES = values(PlanStatus.SCREENING, PlanStatus.READY, PlanStatus.ACTIVE)
MIN_REASON = 10
# No label states a tolerance around "about 30 min"; the regimen setting's default is used when
# a regimen does not declare it.
DEFAULT_PREMEDICATION_TOLERANCE = 10


@dataclass
class DoseChange:
    """A changed dose, and what else the change did that the caller should hear about."""

    dose: Dose
    warnings: list[dict[str, str]] = field(default_factory=list)

    @property
    def plan_status(self) -> str:
        return str(self.dose.plan.status)

    def __getattr__(self, name: str) -> Any:
        # The response is the dose itself plus plan_status and warnings.
        if name == "dose":
            raise AttributeError(name)
        return getattr(self.dose, name)


# --- reading ----------------------------------------------------------------------------------


def dose_loader_options() -> list[Any]:
    """What a dose's body and readiness read (its plan's other doses and patient), up front."""
    plan = joinedload(Dose.plan)
    return [
        selectinload(Dose.checks),
        selectinload(Dose.readiness_overrides),
        plan.joinedload(TreatmentPlan.patient).selectinload(Patient.plans),
        plan.selectinload(TreatmentPlan.doses)
        .selectinload(Dose.administration)
        .selectinload(DoseAdministration.premedications),
    ]


def get_dose(session: Session, actor: Actor, dose_id: int) -> Dose:
    dose = session.get(Dose, dose_id, options=dose_loader_options())
    if dose is None:
        raise NotFound("Dose not found")
    plan = dose.plan
    actor.ensure_can_see(clinic_id=plan.clinic_id, patient_id=plan.patient_id, what="Dose")
    return dose


def list_plan_doses(
    session: Session, actor: Actor, plan_id: int, *, page: int, page_size: int
) -> Page[Dose]:
    # The whole plan: each dose's readiness reads its siblings, checks and overrides. The doses
    # listed are the plan's own (the identity map), and hold it (joinedload), so none of what it
    # loaded is collected and lazily loaded again, dose by dose, while the list is serialized.
    plan = get_plan(session, actor, plan_id)
    stmt = (
        select(Dose)
        .where(Dose.plan_id == plan.id)
        .options(
            joinedload(Dose.plan),
            selectinload(Dose.administration).selectinload(DoseAdministration.premedications),
        )
        .order_by(Dose.sequence)
    )
    return paginate(session, stmt, page=page, page_size=page_size)


# --- booking and rescheduling -----------------------------------------------------------------


def update_dose(
    session: Session,
    actor: Actor,
    dose: Dose,
    changes: dict[str, Any],
    *,
    now: datetime | None = None,
) -> DoseChange:
    """Book (appointment_at), confirm (booking), move (due_date), place, miss or cancel a dose.

    An appointment on another day than the due date moves the due date to that day (in the
    clinic's time zone). A move is refused before the dose's earliest allowed date; with
    cascade (the default) the later open doses move by the same number of days, as the labels
    count the next dose from the one actually given; without it, the next dose must still be
    far enough away. Everything is checked before anything changes.
    """
    actor.require_staff()
    plan = dose.plan
    if "administration" in changes:
        return _amend_administration(session, dose, changes["administration"], now=now)
    _ensure_changeable(plan, dose)
    change = DoseChange(dose)
    if "status" in changes:
        _close_dose(
            session, actor, plan, dose, changes["status"], reason=changes.get("reason"), now=now
        )
    else:
        _book_or_move(session, plan, dose, changes, change)
    touch(plan)
    session.flush()
    schedule_changed(session, plan)
    return change


def _ensure_changeable(plan: TreatmentPlan, dose: Dose) -> None:
    if not plan.is_open:
        raise InvalidTransition(f"The plan is {plan.status}; its doses are closed", allowed=[])
    if not dose.is_open:
        raise InvalidTransition(
            f"Dose {dose.sequence} is {dose.status} and cannot be changed", allowed=[]
        )


def _close_dose(
    session: Session,
    actor: Actor,
    plan: TreatmentPlan,
    dose: Dose,
    status: str,
    *,
    reason: str | None,
    now: datetime | None,
) -> None:
    """Missed: the dose did not happen on its day and stays owed (overdue until given; the
    labels say give it as soon as possible). Skipped: a clinician leaves it out, with a reason.
    Cancelled: it will not happen (e.g. entered in error)."""
    today = clinic_today(session, plan.clinic_id, now=now)
    if status == DoseStatus.MISSED:
        if dose.due_date > today:
            raise ValidationFailed(
                errors={"status": ["A dose can only be missed on or after its due date."]}
            )
        if dose.status == DoseStatus.MISSED:
            raise InvalidTransition(f"Dose {dose.sequence} is already missed", allowed=[])
        # The appointment has passed: the dose must be booked again.
        dose.booking, dose.appointment_at = None, None
        dose.missed_on = today
    if status == DoseStatus.SKIPPED:
        if actor.role != Role.CLINICIAN:
            raise Forbidden("Only a clinician may skip a dose.")
        text = (reason or "").strip()
        if len(text) < MIN_REASON:
            raise ValidationFailed(
                errors={
                    "reason": [f"Say why the dose is skipped, in at least {MIN_REASON} characters."]
                }
            )
        dose.skip_reason = text
        dose.skipped_by_id = actor.user_id
        dose.booking, dose.appointment_at = None, None
    elif reason is not None:
        raise ValidationFailed(errors={"reason": ["Only skipping a dose takes a reason."]})
    dose.status = status


def _amend_administration(
    session: Session, dose: Dose, changes: dict[str, Any], *, now: datetime | None
) -> DoseChange:
    """Complete a given dose's record after the fact: the infusion's end, the end of
    observation, or the observed minutes (kept consistent with the two ends)."""
    record = dose.administration
    if record is None:
        raise InvalidTransition(
            f"Dose {dose.sequence} is {dose.status}: only a given dose has an administration "
            "record to complete.",
            allowed=[],
        )
    infusion_end = changes.get("infusion_ended_at", record.infusion_ended_at)
    observation_end = changes.get("observation_ended_at", record.observation_ended_at)
    if "observation_minutes" in changes:
        minutes = changes["observation_minutes"]
    else:  # worked out again from the ends when both are known
        both = infusion_end is not None and observation_end is not None
        minutes = None if both else record.observation_minutes
    minutes = _observation_times(
        record.administered_at, infusion_end, observation_end, minutes, now or utcnow()
    )
    record.infusion_ended_at = infusion_end.astimezone(UTC) if infusion_end else None
    record.observation_ended_at = observation_end.astimezone(UTC) if observation_end else None
    record.observation_minutes = minutes
    change = DoseChange(dose)
    change.warnings.extend(_observation_warnings(dose))
    touch(dose.plan)
    dose.updated_at = utcnow()
    session.flush()
    return change


def _observation_times(
    administered_at: datetime,
    infusion_end: datetime | None,
    observation_end: datetime | None,
    minutes: int | None,
    now: datetime,
) -> int | None:
    """Check the infusion's end and the observation's end against the start and each other;
    the observed minutes are the time between the two ends when both are known."""
    problems: dict[str, list[str]] = {}
    if infusion_end is not None:
        if infusion_end <= administered_at:
            problems["infusion_ended_at"] = [
                "Must be after the infusion's start (administered_at)."
            ]
        elif infusion_end > now + CLOCK_SKEW:
            problems["infusion_ended_at"] = ["Must not be in the future."]
    if observation_end is not None:
        if infusion_end is None:
            problems["observation_ended_at"] = [
                "Record infusion_ended_at too: observation counts from the end of the infusion."
            ]
        elif observation_end < infusion_end:
            problems["observation_ended_at"] = ["Must not be before infusion_ended_at."]
        elif observation_end > now + CLOCK_SKEW:
            problems["observation_ended_at"] = ["Must not be in the future."]
    if not problems and infusion_end is not None and observation_end is not None:
        between = int((observation_end - infusion_end).total_seconds() // 60)
        if minutes is not None and minutes != between:
            problems["observation_minutes"] = [
                f"{between} min lie between infusion_ended_at and observation_ended_at; leave "
                "observation_minutes out or make it agree."
            ]
        minutes = between
    if problems:
        raise ValidationFailed(errors=problems)
    return minutes


def _observation_warnings(dose: Dose) -> list[dict[str, str]]:
    """A warning when the recorded observation is shorter than the catalog asks for."""
    record = dose.administration
    required = dose.required_observation_minutes
    if record is None or not required or record.observation_minutes is None:
        return []
    if record.observation_minutes >= required:
        return []
    return [
        {
            "code": "observation_short",
            "detail": f"Observed {record.observation_minutes} min; at least {required} min are "
            f"required after dose {dose.sequence}.",
        }
    ]


def _check_infusion_option(plan: TreatmentPlan, dose: Dose, option: str | None) -> None:
    """The option must be one the catalog offers for this dose, and its condition met: the
    shorter ocrelizumab infusion only without a prior serious infusion reaction (§1, §11)."""
    if option is None:
        return
    rule = next(
        (r for r in plan.regimen.variant(plan.variant).doses if r.key == dose.rule_key), None
    )
    offered = rule.infusion.options if rule is not None and rule.infusion is not None else {}
    if option not in offered:
        raise ValidationFailed(
            errors={
                "infusion_option": [
                    f"Not an option for this dose; offered: {', '.join(offered) or 'none'}."
                ]
            }
        )
    if offered[option].requires == "no_prior_serious_reaction" and dose.serious_reaction_before:
        raise InfusionOptionNotAllowed(
            f"{offered[option].label}: the patient had a serious infusion reaction before, so "
            "this dose runs at the standard rates.",
            infusion_option=option,
            requires=offered[option].requires,
        )


def _book_or_move(
    session: Session, plan: TreatmentPlan, dose: Dose, changes: dict[str, Any], change: DoseChange
) -> None:
    if "infusion_option" in changes:
        _check_infusion_option(plan, dose, changes["infusion_option"])
    zone = ZoneInfo(clinic_zone(session, plan.clinic_id))
    booking_appointment = "appointment_at" in changes
    appointment: datetime | None = changes.get("appointment_at")
    new_due: date | None = changes.get("due_date")
    problems: dict[str, list[str]] = {}
    if appointment is not None:
        day = appointment.astimezone(zone).date()
        if new_due is not None and new_due != day:
            problems["appointment_at"] = [
                f"Falls on {day.isoformat()} at the clinic, not on due_date {new_due.isoformat()}."
            ]
        new_due = day
    elif new_due is not None and dose.status == DoseStatus.BOOKED and not booking_appointment:
        problems["due_date"] = [
            "The dose is booked: change appointment_at, or drop the booking with "
            "appointment_at null in the same request."
        ]
    booked_after = (
        appointment is not None if booking_appointment else dose.status == DoseStatus.BOOKED
    )
    if "booking" in changes and not booked_after:
        problems["booking"] = ["Only a dose with an appointment_at has a booking."]
    if problems:
        raise ValidationFailed(errors=problems)

    booking_after = None
    if booked_after:
        default = "tentative" if booking_appointment else dose.booking
        booking_after = changes.get("booking") or default
    newly_confirmed = booking_after == "confirmed" and (
        dose.booking != Booking.CONFIRMED or booking_appointment
    )
    if newly_confirmed:
        plan.checklist.ensure_passes("confirm the booking")
        if plan.status == PlanStatus.ON_HOLD:
            raise PlanOnHold(
                f"The plan is on hold ({plan.hold_reason}); a booking cannot be confirmed."
            )
    if new_due is not None and new_due != dose.due_date:
        _move(plan, dose, new_due, cascade=changes.get("cascade", True), change=change)

    if booking_appointment:
        if appointment is None:
            dose.status, dose.booking, dose.appointment_at = DoseStatus.PLANNED, None, None
        else:
            dose.status, dose.booking = DoseStatus.BOOKED, booking_after
            dose.appointment_at = appointment.astimezone(UTC)
    elif "booking" in changes:
        dose.booking = booking_after
    if "location" in changes:
        dose.location = changes["location"]
    if "infusion_option" in changes:
        dose.infusion_option = changes["infusion_option"]


def _move(
    plan: TreatmentPlan, dose: Dose, new_due: date, *, cascade: bool, change: DoseChange
) -> None:
    """Move `dose` to new_due (and, with cascade, the open doses after it); refuse first."""
    regimen = plan.regimen
    taking_place = _taking_place(plan)
    _refuse_before_earliest(regimen, plan, taking_place, dose, new_due, doing="be")
    if not cascade:
        _check_next_spacing(regimen, plan, taking_place, dose, new_due)
    planned = [d.as_planned() for d in taking_place]
    if cascade:
        planned = reanchor_following(
            regimen, plan.variant, planned, dose.sequence, new_due, settings=plan.settings
        )
    else:
        planned = [
            replace(p, due_date=new_due) if p.sequence == dose.sequence else p for p in planned
        ]
        later = [p for p in planned if p.sequence > dose.sequence]
        if later:  # the later doses stay; only their earliest dates follow the moved one
            planned = shift_following(
                planned,
                later[0].sequence,
                later[0].due_date,
                regimen=regimen,
                settings=plan.settings,
            )
    _apply(planned, taking_place, dose, change)


def _apply(
    planned: list[PlannedDose], doses: Sequence[Dose], moved: Dose, change: DoseChange
) -> None:
    by_sequence = {p.sequence: p for p in planned}
    shifted_booked = []
    for dose in doses:
        if dose.sequence < moved.sequence or not dose.is_open:
            continue
        target = by_sequence[dose.sequence]
        if dose is not moved and dose.due_date != target.due_date and dose.appointment_at:
            # The appointment no longer falls on the dose's day: it must be booked again.
            if dose.status == DoseStatus.BOOKED:
                dose.status = DoseStatus.PLANNED
            dose.booking, dose.appointment_at = None, None
            shifted_booked.append(dose.sequence)
        if dose.due_date != target.due_date and dose is not moved:
            change.warnings.append(
                {
                    "code": "dose_moved",
                    "detail": f"Dose {dose.sequence} moved from {dose.due_date.isoformat()} "
                    f"to {target.due_date.isoformat()}.",
                }
            )
        dose.due_date = target.due_date
        dose.earliest_date = target.earliest_date
    for sequence in shifted_booked:
        change.warnings.append(
            {
                "code": "booking_dropped",
                "detail": f"Dose {sequence} moved off its appointment day; book it again.",
            }
        )


def _taking_place(plan: TreatmentPlan) -> list[Dose]:
    return sorted(
        (d for d in plan.doses if d.status not in SKIPPED_DOSE_STATUSES), key=lambda d: d.sequence
    )


def _earliest_allowed(
    regimen: Regimen,
    plan: TreatmentPlan,
    taking_place: Sequence[Dose],
    dose: Dose,
    proposed: date,
) -> date | None:
    """None if `dose` may take place on `proposed`, else the earliest day it may."""
    before = [d for d in taking_place if d.sequence < dose.sequence]
    previous = before[-1] if before else None
    earlier_courses = [d for d in before if d.course != dose.course]
    return check_minimum_interval(
        regimen,
        plan.settings,
        earlier_courses[-1].due_date if earlier_courses else None,
        proposed,
        same_course=previous is not None and previous.course == dose.course,
        previous_date=previous.due_date if previous is not None else None,
    )


def _refuse_before_earliest(
    regimen: Regimen,
    plan: TreatmentPlan,
    taking_place: Sequence[Dose],
    dose: Dose,
    proposed: date,
    *,
    doing: str,
) -> None:
    earliest = _earliest_allowed(regimen, plan, taking_place, dose, proposed)
    if earliest is not None:
        raise MinimumIntervalViolated(
            f"Dose {dose.sequence} cannot {doing} before {earliest.isoformat()} (the minimum "
            "interval from the previous dose).",
            earliest_date=earliest.isoformat(),
        )


def _check_next_spacing(
    regimen: Regimen, plan: TreatmentPlan, taking_place: Sequence[Dose], dose: Dose, new_due: date
) -> None:
    following = [d for d in taking_place if d.sequence > dose.sequence]
    if not following:
        return
    nxt = following[0]
    same_course = nxt.course == dose.course
    earliest_next = check_minimum_interval(
        regimen,
        plan.settings,
        None if same_course else new_due,
        nxt.due_date,
        same_course=same_course,
        previous_date=new_due,
    )
    if earliest_next is not None:
        raise MinimumIntervalViolated(
            f"Dose {nxt.sequence} on {nxt.due_date.isoformat()} would come too soon after "
            f"{new_due.isoformat()} (it would need {earliest_next.isoformat()} or later); "
            "move the later doses too (cascade) or pick an earlier date.",
            earliest_date=dose.earliest_date.isoformat() if dose.earliest_date else None,
            next_dose={
                "sequence": nxt.sequence,
                "due_date": nxt.due_date.isoformat(),
                "earliest_date": earliest_next.isoformat(),
            },
        )


# --- administration ---------------------------------------------------------------------------


def record_administration(
    session: Session,
    actor: Actor,
    dose_id: int,
    *,
    administered_at: datetime,
    amount_mg: int,
    premedications: Sequence[dict[str, Any]] = (),
    reaction: dict[str, Any] | None = None,
    notes: str | None = None,
    premedication_exception_reason: str | None = None,
    observation_minutes: int | None = None,
    infusion_ended_at: datetime | None = None,
    observation_ended_at: datetime | None = None,
    now: datetime | None = None,
) -> DoseChange:
    """Record a dose as given: premedication, reaction grade, and what it does to the plan.

    administered_at is the start of the infusion; its end and the end of observation may be
    recorded now or later (PATCH /doses/{id} with `administration`); a warning says when the
    observation was shorter than the catalog asks for after this dose and this patient.

    The dose's own readiness must be complete (or covered by a clinician's override), else
    409 dose_not_ready with the blocking items. Each required premedication must be on the
    record inside its window, else 422 premedication_outside_window unless a clinician states
    the reason. Giving a dose on another day than its due date (late, or a missed dose given)
    counts the later open doses from the day given, in the regimen's own unit; a dose given
    before its earliest allowed date is refused. The first dose makes a ready plan active; a
    life-threatening reaction puts the plan on hold (the label: discontinue permanently).
    """
    actor.require_staff()
    dose = get_dose(session, actor, dose_id)
    plan = dose.plan
    _ensure_changeable(plan, dose)
    plan.checklist.ensure_passes("record the dose as given")
    if plan.status == PlanStatus.ON_HOLD:
        raise PlanOnHold(f"The plan is on hold ({plan.hold_reason}); no dose can be recorded.")
    if plan.status not in ("ready", "active"):
        raise InvalidTransition(
            f"The plan is {plan.status}: make it ready before recording a dose",
            allowed=["ready"],
        )
    still_open = [d.sequence for d in plan.doses if d.sequence < dose.sequence and d.is_open]
    if still_open:
        raise InvalidTransition(
            "Earlier doses are still open: record them as given, skipped or cancelled first.",
            open_doses=still_open,
        )
    reaction = reaction or {"grade": "none"}
    # A serious reaction recorded since the option was chosen takes the option away.
    _check_infusion_option(plan, dose, dose.infusion_option)
    _check_administration_times(administered_at, premedications, reaction, now or utcnow())
    observation_minutes = _observation_times(
        administered_at,
        infusion_ended_at,
        observation_ended_at,
        observation_minutes,
        now or utcnow(),
    )
    readiness = dose.readiness
    if not readiness.ready:
        codes = ", ".join(item["code"] for item in readiness.blocking_items)
        raise DoseNotReady(
            f"Dose {dose.sequence} is not ready: {codes} still open or blocking. Answer them "
            "(PUT /doses/{id}/readiness/{code}) or have a clinician override with a reason.",
            blocking_items=readiness.blocking_items,
        )
    exception = _check_premedication(
        actor, plan, administered_at, premedications, premedication_exception_reason
    )
    day = administered_at.astimezone(ZoneInfo(clinic_zone(session, plan.clinic_id))).date()
    regimen = plan.regimen
    taking_place = _taking_place(plan)
    _refuse_before_earliest(regimen, plan, taking_place, dose, day, doing="be given")

    change = DoseChange(dose)
    if amount_mg != dose.amount_mg:
        change.warnings.append(
            {
                "code": "amount_differs",
                "detail": f"{amount_mg} mg recorded; the plan's dose is {dose.amount_mg} mg.",
            }
        )
    if day != dose.due_date:
        planned = reanchor_following(
            regimen,
            plan.variant,
            [d.as_planned() for d in taking_place],
            dose.sequence,
            day,
            settings=plan.settings,
        )
        _apply(planned, taking_place, dose, change)
    onset = reaction.get("onset_at")
    dose.administration = DoseAdministration(
        administered_at=administered_at.astimezone(UTC),
        amount_mg=amount_mg,
        reaction_grade=reaction["grade"],
        reaction_onset_at=onset.astimezone(UTC) if onset is not None else None,
        reaction_action=reaction.get("action"),
        reaction_notes=reaction.get("notes"),
        notes=notes,
        premedication_exception_reason=exception,
        observation_minutes=observation_minutes,
        infusion_ended_at=infusion_ended_at.astimezone(UTC) if infusion_ended_at else None,
        observation_ended_at=(
            observation_ended_at.astimezone(UTC) if observation_ended_at else None
        ),
        recorded_by_id=actor.user_id,
        recorded_at=utcnow(),
        premedications=[
            PremedicationGiven(**{**p, "given_at": p["given_at"].astimezone(UTC)})
            for p in sorted(premedications, key=lambda p: p["given_at"])
        ],
    )
    dose.status = DoseStatus.ADMINISTERED
    dose.due_date = day
    change.warnings.extend(_observation_warnings(dose))
    if plan.status == PlanStatus.READY:
        plan.status = PlanStatus.ACTIVE
    if reaction["grade"] == "life_threatening":
        plan.status = PlanStatus.ON_HOLD
        plan.hold_reason = LIFE_THREATENING_HOLD
        change.warnings.append(
            {
                "code": "plan_on_hold",
                "detail": "A life-threatening infusion reaction: the plan is on hold. The label "
                "says to stop and permanently discontinue; no further dose can be recorded.",
            }
        )
    touch(plan)
    session.flush()
    schedule_changed(session, plan)
    return change


def _check_premedication(
    actor: Actor,
    plan: TreatmentPlan,
    administered_at: datetime,
    premedications: Sequence[dict[str, Any]],
    exception_reason: str | None,
) -> str | None:
    """Every required premedication on the record, inside its window (+/- the tolerance).

    Returns the clinician's stated reason when one is needed and given; refuses otherwise.
    """
    regimen = plan.regimen
    tolerance = int(
        regimen.setting_value(
            plan.settings, "premedication_tolerance_minutes", DEFAULT_PREMEDICATION_TOLERANCE
        )
    )
    problems: dict[str, list[str]] = {}
    for required in (p for p in regimen.premedications if p.required):
        given = [p for p in premedications if required.matches(str(p["drug"]))]
        if not given:
            problems[required.drug] = ["Required before each dose; not on the record."]
            continue
        window = required.minutes_before
        if window is None:
            continue
        low = None if window.min is None else window.min - tolerance
        high = None if window.max is None else window.max + tolerance
        minutes = [int((administered_at - p["given_at"]).total_seconds() // 60) for p in given]
        if not any((low is None or m >= low) and (high is None or m <= high) for m in minutes):
            span = f"{window.min if window.min is not None else 0}-" + (
                f"{window.max} min" if window.max is not None else "... min"
            )
            problems[required.drug] = [
                f"Given {', '.join(map(str, minutes))} min before; the window is {span} "
                f"before the dose (+/- {tolerance} min)."
            ]
    reason = (exception_reason or "").strip() or None
    if not problems:
        if reason is not None:
            raise ValidationFailed(
                errors={"premedication_exception_reason": ["The premedication is in order."]}
            )
        return None
    if reason is None:
        raise PremedicationOutsideWindow(
            "Required premedication is missing or outside its window; give it as the label "
            "says, or a clinician records the reason (premedication_exception_reason).",
            errors={"premedications": problems},
            premedications=sorted(problems),
        )
    if actor.role != Role.CLINICIAN:
        raise Forbidden("Only a clinician may record a dose with premedication outside the label.")
    if len(reason) < MIN_REASON:
        raise ValidationFailed(
            errors={"premedication_exception_reason": [f"At least {MIN_REASON} characters."]}
        )
    return reason


def _check_administration_times(
    administered_at: datetime,
    premedications: Sequence[dict[str, Any]],
    reaction: dict[str, Any],
    now: datetime,
) -> None:
    problems: dict[str, Any] = {}
    if administered_at > now + CLOCK_SKEW:
        problems["administered_at"] = ["Must not be in the future."]
    premed_problems = {
        str(i): {"given_at": ["Must not be after administered_at."]}
        for i, premedication in enumerate(premedications)
        if premedication["given_at"] > administered_at
    }
    if premed_problems:
        problems["premedications"] = premed_problems
    onset = reaction.get("onset_at")
    if onset is not None and onset > now + CLOCK_SKEW:
        problems["reaction"] = {"onset_at": ["Must not be in the future."]}
    elif onset is not None and onset < administered_at:
        problems["reaction"] = {"onset_at": ["Must not be before administered_at."]}
    if problems:
        raise ValidationFailed(errors=problems)


# --- the rolling horizon ----------------------------------------------------------------------


def extend_rolling_schedules(session: Session, *, today: date) -> int:
    """Append doses to open plans whose last dose falls inside their horizon from today.

    Monthly schedules (ofatumumab) are planned only a horizon ahead; the nightly run keeps
    them that far ahead. Returns the number of doses added.
    """
    longest = max(
        int(option.value)
        for regimen in all_regimens()
        for option in regimen.settings["schedule_horizon_months"].options.values()
    )
    last_due = (
        select(Dose.plan_id, func.max(Dose.due_date).label("last_due"))
        .group_by(Dose.plan_id)
        .subquery()
    )
    plans = session.scalars(
        select(TreatmentPlan)
        .join(last_due, last_due.c.plan_id == TreatmentPlan.id)
        .where(
            TreatmentPlan.status.in_(EXTENDABLE_PLAN_STATUSES),
            last_due.c.last_due < Interval(months=longest).add_to(today),
        )
        .options(selectinload(TreatmentPlan.doses))
        .order_by(TreatmentPlan.id)
    ).all()
    added = 0
    for plan in plans:
        regimen = plan.regimen
        until = Interval(months=regimen.horizon_months(plan.settings)).add_to(today)
        doses = sorted(plan.doses, key=lambda d: d.sequence)
        if doses[-1].due_date >= until:
            continue
        try:
            new = extend_doses(
                regimen,
                plan.variant,
                [d.as_planned() for d in doses],
                settings=plan.settings,
                until=until,
            )
        except ValueError:
            log.exception("plan %s: stored doses do not match its regimen; not extended", plan.id)
            continue
        if not new:
            continue
        for planned in new:
            plan.doses.append(new_dose(planned))
        touch(plan)
        session.flush()
        schedule_changed(session, plan)
        added += len(new)
    log.info("rolling schedules: %d dose(s) added (%d plan(s) checked)", added, len(plans))
    return added

"""Use cases behind the staff views: the day's chair list, the worklist, resolving alerts.

Every date here is a calendar date in the clinic's own time zone: an appointment at 23:30 UTC
on the 3rd belongs to the 4th in Berlin and still to the 3rd in Los Angeles.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Row, and_, bindparam, exists, func, literal, or_, select, union_all
from sqlalchemy.orm import Session, selectinload

from service.clinics.settings import get_clinic
from service.core.access import Actor
from service.core.wall_clock import day_bounds, local_today
from service.db import utcnow
from service.errors import NotFound
from service.models import (
    Dose,
    DoseAdministration,
    MonitoringFollowUp,
    MonitoringTask,
    Patient,
    ScreeningOverride,
    StaffAlert,
    TreatmentPlan,
)
from service.models.dose import reacted_before_or_in
from service.models.plan import Checklist
from service.protocols import Regimen, get_regimen
from service.protocols.schedule import (
    PlannedDose,
    expected_chair_minutes,
    expected_infusion_minutes,
)
from service.vocabulary import (
    OPEN_DOSE_STATUSES,
    OPEN_PLAN_STATUSES,
    DoseStatus,
    PlanStatus,
    ReactionGrade,
    ScreeningOutcome,
    TaskStatus,
    values,
)

# A checklist that is not cleared becomes worklist material this long before the first dose.
CHECKLIST_HORIZON_DAYS = 14
# A cleared plan that nobody made ready shows this long before its first dose.
READY_HORIZON_DAYS = 14
# A dose whose readiness is open shows this many days ahead (today included).
READINESS_HORIZON_DAYS = 2
# Doses given this recently are checked for their recorded observation time.
OBSERVATION_LOOKBACK_DAYS = 30
API = "/api/v1"
CHECKLIST_PLAN_STATUSES = values(PlanStatus.DRAFT, PlanStatus.SCREENING, PlanStatus.READY)
OUTCOME_URGENCY = {outcome.value: rank for rank, outcome in enumerate(reversed(ScreeningOutcome))}
DEFAULT_WORKLIST_LIMIT = 100


def _literal_in(column: Any, choices: tuple[str, ...]) -> Any:
    """`column IN (...)` with the values written into the SQL, so PostgreSQL can match it to
    the partial indexes whose predicates list the same values (service.models.dose)."""
    return column.in_(bindparam(None, list(choices), expanding=True, literal_execute=True))


def _first_open_dose() -> Any:
    """The plan's first open dose, found per plan through the (plan_id, sequence) key, so only
    the plans already selected are looked at (not every dose of the clinic)."""
    first_sequence = (
        select(func.min(Dose.sequence))
        .where(Dose.plan_id == TreatmentPlan.id, Dose.status.in_(OPEN_DOSE_STATUSES))
        .correlate(TreatmentPlan)
        .scalar_subquery()
    )
    return and_(Dose.plan_id == TreatmentPlan.id, Dose.sequence == first_sequence)


def _checklist_loads() -> tuple[Any, ...]:
    """What a plan's checklist reads: items, overrides, and its first dose's day."""
    return (
        selectinload(TreatmentPlan.patient),
        selectinload(TreatmentPlan.screening_items),
        selectinload(TreatmentPlan.overrides),
        selectinload(TreatmentPlan.doses).selectinload(Dose.administration),
    )


def _checklist_unsettled(row: Row[*tuple[Any, ...]]) -> bool:
    """Whether the stored gate leaves the plan's checklist to be worked out: it is not open, or
    an override may be what opens it."""
    return row.gate_open is not True or row.has_override


def _checklists(session: Session, plan_ids: Collection[int]) -> dict[int, Checklist]:
    """The checklists of these plans, worked out from their items, overrides and doses."""
    if not plan_ids:
        return {}
    plans = session.scalars(
        select(TreatmentPlan)
        .where(TreatmentPlan.id.in_(sorted(plan_ids)))
        .options(*_checklist_loads())
    ).all()
    return {plan.id: plan.checklist for plan in plans}


def _screening(checklist: Checklist | None) -> dict[str, Any]:
    """The checklist state staff see beside a dose: outcome, what blocks, override in force.
    None: the gate every write keeps (service.models.stored_state) is open with no override,
    so the checklist is cleared and nothing blocks."""
    if checklist is None:
        return {
            "outcome": ScreeningOutcome.CLEARED.value,
            "blocking_items": [],
            "overridden": False,
        }
    return {
        "outcome": checklist.outcome,
        "blocking_items": checklist.blocking_items,
        "overridden": checklist.override_in_effect,
    }


def _reactions(
    session: Session, patient_ids: Collection[int]
) -> dict[int, list[tuple[int, datetime]]]:
    """Each patient's infusion reactions under any plan: (dose id, when given)."""
    if not patient_ids:
        return {}
    rows = session.execute(
        select(TreatmentPlan.patient_id, Dose.id, DoseAdministration.administered_at)
        .join(Dose, Dose.plan_id == TreatmentPlan.id)
        .join(DoseAdministration, DoseAdministration.dose_id == Dose.id)
        .where(
            TreatmentPlan.patient_id.in_(sorted(patient_ids)),
            DoseAdministration.reaction_grade != ReactionGrade.NONE.value,
        )
    )
    found: dict[int, list[tuple[int, datetime]]] = {}
    for patient_id, dose_id, given_at in rows:
        found.setdefault(patient_id, []).append((dose_id, given_at))
    return found


# What an entry about a dose names, read as columns: building the plans, patients and doses
# as objects cost more than the rest of the view.
_SUBJECT_COLUMNS = (
    Patient.id.label("patient_id"),
    Patient.mrn,
    Patient.given_name,
    Patient.family_name,
    TreatmentPlan.id.label("plan_id"),
    TreatmentPlan.regimen_code,
    TreatmentPlan.variant,
    TreatmentPlan.status.label("plan_status"),
    TreatmentPlan.gate_open,
    exists()
    .where(ScreeningOverride.plan_id == TreatmentPlan.id)
    .correlate(TreatmentPlan)
    .label("has_override"),
    Dose.id.label("dose_id"),
    Dose.sequence,
    Dose.course,
    Dose.kind,
    Dose.amount_mg,
    Dose.due_date,
    Dose.booking,
    Dose.status.label("dose_status"),
    Dose.appointment_at,
    Dose.needs_review,
)
# What the schedule adds: where, and what the catalog's infusion and chair time read.
_SCHEDULE_COLUMNS = (
    Dose.location,
    Dose.infusion_option,
    Dose.rule_key,
    Dose.earliest_date,
)


def _subject(row: Row[*tuple[Any, ...]]) -> dict[str, Any]:
    """The patient, plan and dose of an entry read with _SUBJECT_COLUMNS."""
    return {
        "patient": {
            "id": row.patient_id,
            "mrn": row.mrn,
            "name": f"{row.given_name} {row.family_name}",
        },
        "plan": {
            "id": row.plan_id,
            "regimen": row.regimen_code,
            "variant": row.variant,
            "status": row.plan_status,
        },
        "dose": {
            "id": row.dose_id,
            "sequence": row.sequence,
            "course": row.course,
            "kind": row.kind,
            "amount_mg": row.amount_mg,
            "due_date": row.due_date,
            "booking": row.booking,
            "status": row.dose_status,
        },
    }


def _planned(row: Row[*tuple[Any, ...]]) -> PlannedDose:
    """The dose of a _SCHEDULE_COLUMNS row as the schedule arithmetic sees it."""
    return PlannedDose(
        sequence=row.sequence,
        course=row.course,
        kind=row.kind,
        amount_mg=row.amount_mg,
        due_date=row.due_date,
        earliest_date=row.earliest_date,
        rule_key=row.rule_key,
    )


def _patient_summary(patient: Patient) -> dict[str, Any]:
    return {
        "id": patient.id,
        "mrn": patient.mrn,
        "name": f"{patient.given_name} {patient.family_name}",
    }


def _plan_summary(plan: TreatmentPlan) -> dict[str, Any]:
    return {
        "id": plan.id,
        "regimen": plan.regimen_code,
        "variant": plan.variant,
        "status": plan.status,
    }


def _premedications(regimen: Regimen) -> list[dict[str, Any]]:
    return [
        {
            "drug": p.drug,
            "dose_mg": p.dose_mg,
            "route": p.route,
            "minutes_before": (
                {"min": p.minutes_before.min, "max": p.minutes_before.max}
                if p.minutes_before is not None
                else None
            ),
            "required": p.required,
            "note": p.note,
        }
        for p in regimen.premedications
    ]


def _history_loads() -> tuple[Any, ...]:
    """What a dose's required observation and chair time read: the patient's reactions under
    every plan (loaded up front, so more patients cost no more queries)."""
    patient_plans = (
        selectinload(Dose.plan).selectinload(TreatmentPlan.patient).selectinload(Patient.plans)
    )
    return (patient_plans.selectinload(TreatmentPlan.doses).selectinload(Dose.administration),)


def _dose_subject(dose: Dose) -> dict[str, Any]:
    """What a worklist entry about a dose names: the patient, the plan, the dose, and links."""
    return {
        "patient": _patient_summary(dose.plan.patient),
        "plan": _plan_summary(dose.plan),
        "dose": _dose_summary(dose),
        "links": _links(dose.plan, dose),
    }


def _dose_entry(dose: Dose, zone: ZoneInfo) -> dict[str, Any]:
    """A dose's worklist entry with its day on the clinic's wall clock."""
    day = dose.appointment_at.astimezone(zone).date() if dose.appointment_at else dose.due_date
    return {**_dose_subject(dose), "appointment_at": dose.appointment_at, "date": day}


def _links(plan: TreatmentPlan, dose: Dose | None = None) -> dict[str, str]:
    """Where the entry's objects are read and changed."""
    links = {"plan": f"{API}/plans/{plan.id}", "patient": f"{API}/patients/{plan.patient_id}"}
    if dose is not None:
        links["dose"] = f"{API}/doses/{dose.id}"
        links["readiness"] = f"{API}/doses/{dose.id}/readiness"
    return links


def _dose_summary(dose: Dose) -> dict[str, Any]:
    return {
        "id": dose.id,
        "sequence": dose.sequence,
        "course": dose.course,
        "kind": dose.kind,
        "amount_mg": dose.amount_mg,
        "due_date": dose.due_date,
        "booking": dose.booking,
        "status": dose.status,
    }


# --- the day's schedule -----------------------------------------------------------------------


def staff_schedule(session: Session, actor: Actor, *, day: date | None = None) -> dict[str, Any]:
    """The clinic's doses on `day` (default: today in the clinic's time zone).

    `items`: every dose with an appointment on that local day (cancelled ones left out), by
    appointment time. `unbooked_due`: doses still planned for that day without an appointment.
    """
    clinic = get_clinic(session, actor)
    zone = clinic.time_zone
    day = day or local_today(zone)
    start, end = day_bounds(day, zone)
    booked = session.execute(
        select(
            *_SUBJECT_COLUMNS,
            *_SCHEDULE_COLUMNS,
            DoseAdministration.administered_at,
        )
        .select_from(Dose)
        .join(TreatmentPlan, TreatmentPlan.id == Dose.plan_id)
        .join(Patient, Patient.id == TreatmentPlan.patient_id)
        .outerjoin(DoseAdministration, DoseAdministration.dose_id == Dose.id)
        .where(
            TreatmentPlan.clinic_id == clinic.id,
            Dose.appointment_at >= start,
            Dose.appointment_at < end,
            Dose.status != DoseStatus.CANCELLED,
        )
        .order_by(Dose.appointment_at, Dose.id)
    ).all()
    unbooked = session.execute(
        select(*_SUBJECT_COLUMNS, *_SCHEDULE_COLUMNS)
        .select_from(Dose)
        .join(TreatmentPlan, TreatmentPlan.id == Dose.plan_id)
        .join(Patient, Patient.id == TreatmentPlan.patient_id)
        .where(
            TreatmentPlan.clinic_id == clinic.id,
            TreatmentPlan.status.in_(OPEN_PLAN_STATUSES),
            Dose.status == DoseStatus.PLANNED,
            Dose.appointment_at.is_(None),
            Dose.due_date == day,
        )
        .order_by(Dose.id)
    ).all()
    checklists = _checklists(
        session,
        {row.plan_id for row in (*booked, *unbooked) if _checklist_unsettled(row)},
    )
    regimens = {row.regimen_code: get_regimen(row.regimen_code) for row in booked}
    reactions = _reactions(
        session,
        {
            row.patient_id
            for row in booked
            if regimens[row.regimen_code].observation.reads_reactions(row.sequence)
        },
    )
    premedications = {code: _premedications(regimen) for code, regimen in regimens.items()}
    tz = ZoneInfo(zone)
    items = []
    for row in booked:
        regimen = regimens[row.regimen_code]
        planned = _planned(row)
        items.append(
            {
                **_subject(row),
                "appointment_at": row.appointment_at,
                "local_time": row.appointment_at.astimezone(tz).strftime("%H:%M"),
                "location": row.location,
                "premedications": premedications[row.regimen_code],
                "screening": _screening(checklists.get(row.plan_id)),
                "expected_chair_minutes": expected_chair_minutes(
                    regimen,
                    planned,
                    option=row.infusion_option,
                    had_reaction=reacted_before_or_in(
                        reactions.get(row.patient_id, ()), row.dose_id, row.administered_at
                    ),
                ),
                "expected_infusion_minutes": expected_infusion_minutes(
                    regimen, planned, option=row.infusion_option
                ),
                "infusion_option": row.infusion_option,
                "needs_review": row.needs_review,
            }
        )
    unbooked_items = [
        {
            **_subject(row),
            "screening": _screening(checklists.get(row.plan_id)),
            "needs_review": row.needs_review,
        }
        for row in unbooked
    ]
    return {"date": day, "time_zone": zone, "items": items, "unbooked_due": unbooked_items}


# --- the worklist -----------------------------------------------------------------------------


def staff_worklist(
    session: Session,
    actor: Actor,
    *,
    limit: int = DEFAULT_WORKLIST_LIMIT,
    now: datetime | None = None,
) -> dict[str, Any]:
    """What is blocked or late at the clinic, each section most urgent first.

    - checklists: plans not yet treating whose checklist is not cleared (and not overridden)
      and whose first open dose is due within 14 days or already past; soonest first.
    - overdue_doses: open doses whose day (appointment day if booked, else due date) is before
      today; oldest first.
    - overdue_tasks: monitoring tasks overdue, or still due with a due date before today; oldest
      first.
    - alerts: unresolved staff alerts (e.g. lab_low), oldest first.
    - not_made_ready: plans whose checklist passes but that are still not `ready`, with the
      first dose within 14 days (or past): nobody can confirm or give it until someone does.
    - readiness_open: open doses due today or in the next 2 days whose own readiness is not
      complete, with the open items; soonest first.
    - observation_missing: doses given in the last 30 days without the observation time the
      catalog requires for that drug and dose number (or with less); oldest first.
    Each section holds at most `limit` entries; `counts` gives the full numbers. Each entry has
    `links` to the objects it is about.
    """
    clinic = get_clinic(session, actor)
    zone = clinic.time_zone
    today = local_today(zone, now)
    today_start, _ = day_bounds(today, zone)
    checklists = _blocked_checklists(session, clinic.id, today)
    overdue_doses, dose_count = _overdue_doses(
        session, clinic.id, ZoneInfo(zone), today, today_start, limit
    )
    overdue_tasks, task_count = _overdue_tasks(session, clinic.id, today, limit)
    alerts, alert_count = _open_alerts(session, clinic.id, limit)
    not_ready = _cleared_not_ready(session, clinic.id, today)
    readiness_open = _readiness_open(session, clinic.id, ZoneInfo(zone), today)
    observation = _observation_missing(session, clinic.id, ZoneInfo(zone), today)
    return {
        "date": today,
        "time_zone": zone,
        "checklists": checklists[:limit],
        "overdue_doses": overdue_doses,
        "overdue_tasks": overdue_tasks,
        "alerts": alerts,
        "not_made_ready": not_ready[:limit],
        "readiness_open": readiness_open[:limit],
        "observation_missing": observation[:limit],
        "counts": {
            "checklists": len(checklists),
            "overdue_doses": dose_count,
            "overdue_tasks": task_count,
            "alerts": alert_count,
            "not_made_ready": len(not_ready),
            "readiness_open": len(readiness_open),
            "observation_missing": len(observation),
        },
    }


def _blocked_checklists(session: Session, clinic_id: int, today: date) -> list[dict[str, Any]]:
    horizon = today + timedelta(days=CHECKLIST_HORIZON_DAYS)
    # The stored gate picks the candidates by index; the checklist itself decides.
    rows = session.execute(
        select(TreatmentPlan, Dose)
        .join(Dose, _first_open_dose())
        .where(
            TreatmentPlan.clinic_id == clinic_id,
            _literal_in(TreatmentPlan.status, CHECKLIST_PLAN_STATUSES),
            TreatmentPlan.gate_open.is_not(True),
            Dose.due_date <= horizon,
        )
        .options(*_checklist_loads())
    ).all()
    entries: list[dict[str, Any]] = []
    for plan, dose in rows:
        checklist = plan.checklist
        if checklist.passes_gate:
            continue
        entries.append(
            {
                "patient": _patient_summary(plan.patient),
                "plan": _plan_summary(plan),
                "first_dose": _dose_summary(dose),
                "first_dose_date": dose.due_date,
                "days_until_first_dose": (dose.due_date - today).days,
                "outcome": checklist.outcome,
                "blocking_items": checklist.blocking_items,
                "links": _links(plan, dose),
            }
        )
    entries.sort(
        key=lambda e: (e["first_dose_date"], OUTCOME_URGENCY[e["outcome"]], e["plan"]["id"])
    )
    return entries


def _cleared_not_ready(session: Session, clinic_id: int, today: date) -> list[dict[str, Any]]:
    horizon = today + timedelta(days=READY_HORIZON_DAYS)
    rows = session.execute(
        select(TreatmentPlan, Dose)
        .join(Dose, _first_open_dose())
        .where(
            TreatmentPlan.clinic_id == clinic_id,
            _literal_in(TreatmentPlan.status, values(PlanStatus.DRAFT, PlanStatus.SCREENING)),
            TreatmentPlan.gate_open.is_not(False),
            Dose.due_date <= horizon,
        )
        .options(*_checklist_loads())
    ).all()
    entries: list[dict[str, Any]] = [
        {
            "patient": _patient_summary(plan.patient),
            "plan": _plan_summary(plan),
            "first_dose": _dose_summary(dose),
            "first_dose_date": dose.due_date,
            "days_until_first_dose": (dose.due_date - today).days,
            "outcome": plan.checklist.outcome,
            "blocking_items": [],
            "links": _links(plan, dose),
        }
        for plan, dose in rows
        if plan.checklist.passes_gate
    ]
    entries.sort(key=lambda e: (e["first_dose_date"], e["plan"]["id"]))
    return entries


def _readiness_open(
    session: Session, clinic_id: int, zone: ZoneInfo, today: date
) -> list[dict[str, Any]]:
    horizon = today + timedelta(days=READINESS_HORIZON_DAYS)
    start, _ = day_bounds(today, str(zone))
    _, end = day_bounds(horizon, str(zone))
    soon = or_(
        and_(Dose.appointment_at.is_(None), Dose.due_date >= today, Dose.due_date <= horizon),
        and_(Dose.appointment_at >= start, Dose.appointment_at < end),
    )
    doses = session.scalars(
        select(Dose)
        .join(TreatmentPlan, TreatmentPlan.id == Dose.plan_id)
        .where(
            TreatmentPlan.clinic_id == clinic_id,
            TreatmentPlan.status.in_(OPEN_PLAN_STATUSES),
            # The stored readiness picks the candidates by index; readiness itself decides.
            _literal_in(Dose.status, OPEN_DOSE_STATUSES),
            Dose.ready.is_not(True),
            soon,
        )
        .options(
            selectinload(Dose.plan).selectinload(TreatmentPlan.patient),
            selectinload(Dose.plan).selectinload(TreatmentPlan.screening_items),
            selectinload(Dose.plan).selectinload(TreatmentPlan.overrides),
            selectinload(Dose.plan).selectinload(TreatmentPlan.monitoring_tasks),
            selectinload(Dose.plan).selectinload(TreatmentPlan.doses),
            selectinload(Dose.checks),
            selectinload(Dose.readiness_overrides),
            selectinload(Dose.administration),
        )
        .order_by(Dose.due_date, Dose.id)
    ).all()
    entries: list[dict[str, Any]] = []
    for dose in doses:
        readiness = dose.readiness
        if readiness.ready:
            continue
        entry = _dose_entry(dose, zone)
        entries.append(
            {
                **entry,
                "days_until": (entry["date"] - today).days,
                "open_items": readiness.blocking_items,
            }
        )
    entries.sort(key=lambda e: (e["date"], e["dose"]["id"]))
    return entries


def _observation_missing(
    session: Session, clinic_id: int, zone: ZoneInfo, today: date
) -> list[dict[str, Any]]:
    since = today - timedelta(days=OBSERVATION_LOOKBACK_DAYS)
    doses = session.scalars(
        select(Dose)
        .join(TreatmentPlan, TreatmentPlan.id == Dose.plan_id)
        .where(
            TreatmentPlan.clinic_id == clinic_id,
            TreatmentPlan.status.in_(OPEN_PLAN_STATUSES),
            _literal_in(Dose.status, values(DoseStatus.ADMINISTERED)),
            Dose.observation_short.is_not(False),
            Dose.due_date >= since,
        )
        .options(
            selectinload(Dose.plan).selectinload(TreatmentPlan.patient),
            selectinload(Dose.administration),
            *_history_loads(),
        )
        .order_by(Dose.due_date, Dose.id)
    ).all()
    entries: list[dict[str, Any]] = []
    for dose in doses:
        required = dose.required_observation_minutes
        administration = dose.administration
        if required is None or administration is None:
            continue
        recorded = administration.observation_minutes
        if recorded is not None and recorded >= required:
            continue
        entries.append(
            {
                **_dose_subject(dose),
                "administered_at": administration.administered_at,
                "required_minutes": required,
                "recorded_minutes": recorded,
            }
        )
    return entries


def _overdue_doses(
    session: Session, clinic_id: int, zone: ZoneInfo, today: date, today_start: datetime, limit: int
) -> tuple[list[dict[str, Any]], int]:
    # Each half through its own partial index of open doses (an OR of the two lets the planner
    # walk every plan of the clinic instead).
    is_open = _literal_in(Dose.status, OPEN_DOSE_STATUSES)
    late = union_all(
        select(Dose.id).where(is_open, Dose.appointment_at.is_(None), Dose.due_date < today),
        select(Dose.id).where(is_open, Dose.appointment_at < today_start),
    )
    base = (
        select(Dose)
        .join(TreatmentPlan, TreatmentPlan.id == Dose.plan_id)
        .where(
            Dose.id.in_(late),
            TreatmentPlan.clinic_id == clinic_id,
            TreatmentPlan.status.in_(OPEN_PLAN_STATUSES),
        )
    )
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    doses = session.scalars(
        base.options(selectinload(Dose.plan).selectinload(TreatmentPlan.patient))
        .order_by(Dose.due_date, Dose.id)
        .limit(limit)
    ).all()
    entries: list[dict[str, Any]] = []
    for dose in doses:
        entry = _dose_entry(dose, zone)
        entries.append({**entry, "days_overdue": (today - entry["date"]).days})
    entries.sort(key=lambda e: (e["date"], e["dose"]["id"]))
    return entries, total


def _overdue_tasks(
    session: Session, clinic_id: int, today: date, limit: int
) -> tuple[list[dict[str, Any]], int]:
    # The late tasks first, through the (status, due_date) index; then their plans by key
    # (joining first lets the planner read every plan of the clinic).
    late = union_all(
        select(MonitoringTask.id).where(
            MonitoringTask.status == literal(TaskStatus.OVERDUE.value, literal_execute=True)
        ),
        select(MonitoringTask.id).where(
            MonitoringTask.status == literal(TaskStatus.DUE.value, literal_execute=True),
            MonitoringTask.due_date < today,
        ),
    )
    base = (
        select(MonitoringTask)
        .join(TreatmentPlan, TreatmentPlan.id == MonitoringTask.plan_id)
        .outerjoin(MonitoringFollowUp, MonitoringFollowUp.id == MonitoringTask.follow_up_id)
        .where(
            MonitoringTask.id.in_(late),
            TreatmentPlan.clinic_id == clinic_id,
            # Open plans, and monitoring that continues after a plan ended.
            or_(
                TreatmentPlan.status.in_(OPEN_PLAN_STATUSES),
                and_(MonitoringFollowUp.id.is_not(None), MonitoringFollowUp.ended_at.is_(None)),
            ),
        )
    )
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    tasks = session.scalars(
        base.options(selectinload(MonitoringTask.plan).selectinload(TreatmentPlan.patient))
        .order_by(MonitoringTask.due_date, MonitoringTask.id)
        .limit(limit)
    ).all()
    return [
        {
            "patient": _patient_summary(task.plan.patient),
            "plan": _plan_summary(task.plan),
            "task": {
                "id": task.id,
                "kind": task.kind,
                "due_date": task.due_date,
                "status": task.status,
                "dose_id": task.dose_id,
                "after_treatment": task.follow_up_id is not None,
            },
            "days_overdue": (today - task.due_date).days,
        }
        for task in tasks
    ], total


def _open_alerts(session: Session, clinic_id: int, limit: int) -> tuple[list[StaffAlert], int]:
    base = select(StaffAlert).where(
        StaffAlert.clinic_id == clinic_id, StaffAlert.resolved_at.is_(None)
    )
    total = session.scalar(select(func.count()).select_from(base.subquery())) or 0
    alerts = session.scalars(
        base.options(selectinload(StaffAlert.patient))
        .order_by(StaffAlert.created_at, StaffAlert.id)
        .limit(limit)
    ).all()
    return list(alerts), total


# --- alerts -----------------------------------------------------------------------------------


def resolve_alert(session: Session, actor: Actor, alert_id: int) -> StaffAlert:
    """Mark an alert resolved; resolving it again changes nothing."""
    actor.require_staff()
    alert = session.get(StaffAlert, alert_id)
    if alert is None or alert.clinic_id != actor.clinic_id:
        raise NotFound("Alert not found")
    if alert.resolved_at is None:
        alert.resolved_at = utcnow()
        alert.resolved_by_id = actor.user_id
        session.flush()
    return alert

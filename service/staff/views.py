"""Use cases behind the staff views: the day's chair list, the worklist, resolving alerts.

Every date here is a calendar date in the clinic's own time zone: an appointment at 23:30 UTC
on the 3rd belongs to the 4th in Berlin and still to the 3rd in Los Angeles.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Integer,
    Row,
    Select,
    String,
    and_,
    bindparam,
    exists,
    func,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.orm import Session, joinedload, selectinload

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
from service.protocols import (
    PlannedDose,
    Regimen,
    expected_chair_minutes,
    expected_infusion_minutes,
    get_regimen,
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

if TYPE_CHECKING:
    from typing import TypeAlias

    # A row of one of the column selects below, read by label.
    _Row: TypeAlias = Row[*tuple[Any, ...]]
    _Select: TypeAlias = Select[*tuple[Any, ...]]

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
NOT_READY_PLAN_STATUSES = values(PlanStatus.DRAFT, PlanStatus.SCREENING)
OUTCOME_URGENCY = {outcome.value: rank for rank, outcome in enumerate(reversed(ScreeningOutcome))}
DEFAULT_WORKLIST_LIMIT = 100


def _sql_string(value: str) -> Any:
    return literal_column("'" + value.replace("'", "''") + "'", String)


def _literal_in(column: Any, choices: tuple[str, ...]) -> Any:
    """`column IN (...)` with the values written into the SQL, so PostgreSQL can match it to
    the partial indexes whose predicates list the same values (service.models.dose). Written
    as constants, not as parameters rendered at each execution: the statement's SQL is then
    compiled once and cached."""
    return column.in_([_sql_string(choice) for choice in choices])


def _first_open_dose() -> Any:
    """The plan's first open dose, found per plan through the (plan_id, sequence) key, so only
    the plans already selected are looked at (not every dose of the clinic)."""
    first_sequence = (
        select(func.min(Dose.sequence))
        .where(Dose.plan_id == TreatmentPlan.id, _literal_in(Dose.status, OPEN_DOSE_STATUSES))
        .correlate(TreatmentPlan)
        .scalar_subquery()
    )
    return and_(Dose.plan_id == TreatmentPlan.id, Dose.sequence == first_sequence)


# What an entry about a dose names, read as columns: building every plan, patient and dose
# on a list as objects cost more than the rest of the view.
_PATIENT_COLUMNS = (
    Patient.id.label("patient_id"),
    Patient.mrn,
    Patient.given_name,
    Patient.family_name,
)
_PLAN_COLUMNS = (
    TreatmentPlan.id.label("plan_id"),
    TreatmentPlan.regimen_code,
    TreatmentPlan.variant,
    TreatmentPlan.status.label("plan_status"),
)
_SUBJECT_COLUMNS = (
    *_PATIENT_COLUMNS,
    *_PLAN_COLUMNS,
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
# Whether the plan's checklist is to be shown from more than the gate (_checklist_unsettled),
# and what every write stored of it (_stored_checklist).
_GATE_COLUMNS = (
    TreatmentPlan.gate_open,
    exists()
    .where(ScreeningOverride.plan_id == TreatmentPlan.id)
    .correlate(TreatmentPlan)
    .label("has_override"),
    TreatmentPlan.checklist_outcome,
    TreatmentPlan.checklist_blocking,
    TreatmentPlan.checklist_overridden,
)
# What the schedule adds: where, and what the catalog's infusion and chair times read.
_SCHEDULE_COLUMNS = (
    Dose.location,
    Dose.infusion_option,
    Dose.rule_key,
    Dose.earliest_date,
)


# The views' statements are built once, with parameters for what changes per request: building
# and keying a statement of this size cost more per request than running it.


def _doses_with_subject(*columns: Any) -> _Select:
    """Doses with their plan and patient (_SUBJECT_COLUMNS), then `columns`: what every dose
    entry of the two views starts from."""
    return (
        select(*_SUBJECT_COLUMNS, *columns)
        .select_from(Dose)
        .join(TreatmentPlan, TreatmentPlan.id == Dose.plan_id)
        .join(Patient, Patient.id == TreatmentPlan.patient_id)
    )


def _patient(row: _Row) -> dict[str, Any]:
    return {"id": row.patient_id, "mrn": row.mrn, "name": f"{row.given_name} {row.family_name}"}


def _plan(row: _Row) -> dict[str, Any]:
    return {
        "id": row.plan_id,
        "regimen": row.regimen_code,
        "variant": row.variant,
        "status": row.plan_status,
    }


def _dose(row: _Row) -> dict[str, Any]:
    return {
        "id": row.dose_id,
        "sequence": row.sequence,
        "course": row.course,
        "kind": row.kind,
        "amount_mg": row.amount_mg,
        "due_date": row.due_date,
        "booking": row.booking,
        "status": row.dose_status,
    }


def _subject(row: _Row) -> dict[str, Any]:
    """The patient, plan and dose of an entry read with _SUBJECT_COLUMNS."""
    return {"patient": _patient(row), "plan": _plan(row), "dose": _dose(row)}


def _links(plan_id: int, patient_id: int, dose_id: int | None = None) -> dict[str, str]:
    """Where the entry's objects are read and changed."""
    links = {"plan": f"{API}/plans/{plan_id}", "patient": f"{API}/patients/{patient_id}"}
    if dose_id is not None:
        links["dose"] = f"{API}/doses/{dose_id}"
        links["readiness"] = f"{API}/doses/{dose_id}/readiness"
    return links


def _dose_entry(row: _Row, zone: ZoneInfo) -> dict[str, Any]:
    """A worklist entry about a dose, with its day on the clinic's wall clock."""
    when = row.appointment_at
    return {
        **_subject(row),
        "links": _links(row.plan_id, row.patient_id, row.dose_id),
        "appointment_at": when,
        "date": when.astimezone(zone).date() if when else row.due_date,
    }


def _planned(row: _Row) -> PlannedDose:
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


def _checklist_unsettled(row: _Row) -> bool:
    """Whether the stored gate leaves the plan's checklist to be worked out: it is not open, or
    an override may be what opens it."""
    return row.gate_open is not True or bool(row.has_override)


@dataclass(frozen=True)
class _ShownChecklist:
    """What the staff views show of a plan's checklist: read from the plan's row, or worked out
    from its items where the row does not hold it."""

    outcome: str
    blocking_items: list[dict[str, str]]
    overridden: bool

    @property
    def passes_gate(self) -> bool:
        return Checklist.gate_passes(self.outcome, override_in_effect=self.overridden)

    @classmethod
    def of(cls, checklist: Checklist) -> _ShownChecklist:
        return cls(checklist.outcome, checklist.blocking_items, checklist.override_in_effect)


def _stored_checklist(row: _Row) -> _ShownChecklist | None:
    """The checklist as the last write stored it beside the gate; None where it is not stored
    (rows from before the columns) or may be out of date (writes leave ended plans as they are)."""
    if (
        row.plan_status not in OPEN_PLAN_STATUSES
        or row.checklist_outcome is None
        or row.checklist_blocking is None
        or row.checklist_overridden is None
    ):
        return None
    return _ShownChecklist(row.checklist_outcome, row.checklist_blocking, row.checklist_overridden)


def _unstored(rows: Collection[_Row]) -> set[int]:
    """The plans whose checklists are to be worked out from their items (_plans)."""
    return {
        row.plan_id for row in rows if _checklist_unsettled(row) and _stored_checklist(row) is None
    }


def _shown_checklists(
    rows: Collection[_Row], plans: dict[int, TreatmentPlan]
) -> dict[int, _ShownChecklist]:
    """The checklist of each unsettled row's plan: stored, or worked out from `plans`, which
    holds every plan of _unstored(rows)."""
    shown = {}
    for row in rows:
        if not _checklist_unsettled(row):
            continue
        stored = _stored_checklist(row)
        shown[row.plan_id] = stored or _ShownChecklist.of(plans[row.plan_id].checklist)
    return shown


def _plans(
    session: Session, plan_ids: Collection[int], *, readiness: bool = False
) -> dict[int, TreatmentPlan]:
    """These plans with what their checklists read (items, overrides, the doses' days); with
    `readiness`, also what their doses' readiness reads. Rows that are few per parent (an
    override, a dose's record, checks) are joined to their parents' statement: each statement
    costs more than the rows."""
    if not plan_ids:
        return {}
    doses = selectinload(TreatmentPlan.doses)
    loads = [
        joinedload(TreatmentPlan.overrides),
        selectinload(TreatmentPlan.screening_items),
        doses.joinedload(Dose.administration),
    ]
    if readiness:
        loads += [
            joinedload(TreatmentPlan.patient),
            doses.joinedload(Dose.checks),
            doses.joinedload(Dose.readiness_overrides),
            selectinload(TreatmentPlan.monitoring_tasks).joinedload(MonitoringTask.lab_result),
        ]
    plans = (
        session.scalars(
            select(TreatmentPlan).where(TreatmentPlan.id.in_(sorted(plan_ids))).options(*loads)
        )
        .unique()
        .all()
    )
    return {plan.id: plan for plan in plans}


def _screening(checklist: _ShownChecklist | None) -> dict[str, Any]:
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
        "overridden": checklist.overridden,
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
    rows = session.execute(
        _schedule_statement(), {"clinic_id": clinic.id, "start": start, "end": end, "day": day}
    ).all()
    booked = [row for row in rows if row.appointment_at is not None]
    unbooked = [row for row in rows if row.appointment_at is None]
    checklists = _shown_checklists(rows, _plans(session, _unstored(rows)))
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


@cache
def _schedule_statement() -> _Select:
    """The doses booked on a day (`start` to `end`) and those still due on it (`day`) without
    an appointment, told apart by the appointment: one statement for both lists."""
    return (
        _doses_with_subject(*_GATE_COLUMNS, *_SCHEDULE_COLUMNS, DoseAdministration.administered_at)
        .outerjoin(DoseAdministration, DoseAdministration.dose_id == Dose.id)
        .where(
            TreatmentPlan.clinic_id == bindparam("clinic_id"),
            or_(
                and_(
                    Dose.appointment_at >= bindparam("start"),
                    Dose.appointment_at < bindparam("end"),
                    Dose.status != _sql_string(DoseStatus.CANCELLED.value),
                ),
                and_(
                    _literal_in(TreatmentPlan.status, OPEN_PLAN_STATUSES),
                    Dose.status == _sql_string(DoseStatus.PLANNED.value),
                    Dose.appointment_at.is_(None),
                    Dose.due_date == bindparam("day"),
                ),
            ),
        )
        .order_by(Dose.appointment_at, Dose.id)
    )


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
    zone = ZoneInfo(clinic.time_zone)
    today = local_today(clinic.time_zone, now)
    today_start, _ = day_bounds(today, clinic.time_zone)
    blocked, cleared = _first_dose_rows(session, clinic.id, today)
    readiness_rows = _readiness_candidates(session, clinic.id, zone, today)
    first_doses = [*blocked, *cleared]
    unstored_readiness = {row.plan_id for row in readiness_rows if _stored_blocking(row) is None}
    # One load for every plan whose checklist or readiness is worked out (where not stored).
    plans = _plans(
        session,
        {*_unstored(first_doses), *unstored_readiness},
        readiness=bool(unstored_readiness),
    )
    checklists = _shown_checklists(first_doses, plans)
    checklist_entries = _blocked_checklists(blocked, checklists, today)
    not_ready = _cleared_not_ready(cleared, checklists, today)
    readiness_open = _readiness_open(readiness_rows, plans, zone, today)
    overdue_doses, dose_count = _overdue_doses(session, clinic.id, zone, today, today_start, limit)
    overdue_tasks, task_count = _overdue_tasks(session, clinic.id, today, limit)
    alerts, alert_count = _open_alerts(session, clinic.id, limit)
    observation = _observation_missing(session, clinic.id, today)
    return {
        "date": today,
        "time_zone": clinic.time_zone,
        "checklists": checklist_entries[:limit],
        "overdue_doses": overdue_doses,
        "overdue_tasks": overdue_tasks,
        "alerts": alerts,
        "not_made_ready": not_ready[:limit],
        "readiness_open": readiness_open[:limit],
        "observation_missing": observation[:limit],
        "counts": {
            "checklists": len(checklist_entries),
            "overdue_doses": dose_count,
            "overdue_tasks": task_count,
            "alerts": alert_count,
            "not_made_ready": len(not_ready),
            "readiness_open": len(readiness_open),
            "observation_missing": len(observation),
        },
    }


def _first_dose_rows(
    session: Session, clinic_id: int, today: date
) -> tuple[list[_Row], list[_Row]]:
    """Plans before treatment with their first open dose, for the two checklist sections, in
    one statement: those whose stored gate is not open and the dose due within
    CHECKLIST_HORIZON_DAYS; those in draft or screening whose gate is not closed and the dose
    due within READY_HORIZON_DAYS. Each kind is selected by its partial index; the checklist
    itself then decides."""
    checklist_horizon = today + timedelta(days=CHECKLIST_HORIZON_DAYS)
    ready_horizon = today + timedelta(days=READY_HORIZON_DAYS)
    rows = session.execute(
        _first_dose_statement(),
        {"clinic_id": clinic_id, "until": max(checklist_horizon, ready_horizon)},
    ).all()
    return (
        [row for row in rows if row.blocked and row.due_date <= checklist_horizon],
        [row for row in rows if row.cleared and row.due_date <= ready_horizon],
    )


@cache
def _first_dose_statement() -> _Select:
    blocked = and_(
        _literal_in(TreatmentPlan.status, CHECKLIST_PLAN_STATUSES),
        TreatmentPlan.gate_open.is_not(True),
    )
    cleared = and_(
        _literal_in(TreatmentPlan.status, NOT_READY_PLAN_STATUSES),
        TreatmentPlan.gate_open.is_not(False),
    )
    return (
        select(
            *_SUBJECT_COLUMNS,
            *_GATE_COLUMNS,
            blocked.label("blocked"),
            cleared.label("cleared"),
        )
        .select_from(TreatmentPlan)
        .join(Dose, _first_open_dose())
        .join(Patient, Patient.id == TreatmentPlan.patient_id)
        .where(
            TreatmentPlan.clinic_id == bindparam("clinic_id"),
            or_(blocked, cleared),
            Dose.due_date <= bindparam("until"),
        )
    )


def _first_dose_entry(
    row: _Row, today: date, outcome: str, blocking: list[dict[str, str]]
) -> dict[str, Any]:
    return {
        "patient": _patient(row),
        "plan": _plan(row),
        "first_dose": _dose(row),
        "first_dose_date": row.due_date,
        "days_until_first_dose": (row.due_date - today).days,
        "outcome": outcome,
        "blocking_items": blocking,
        "links": _links(row.plan_id, row.patient_id, row.dose_id),
    }


def _blocked_checklists(
    rows: list[_Row], checklists: dict[int, _ShownChecklist], today: date
) -> list[dict[str, Any]]:
    entries = []
    for row in rows:
        checklist = checklists[row.plan_id]
        if checklist.passes_gate:
            continue
        entries.append(_first_dose_entry(row, today, checklist.outcome, checklist.blocking_items))
    entries.sort(
        key=lambda e: (e["first_dose_date"], OUTCOME_URGENCY[e["outcome"]], e["plan"]["id"])
    )
    return entries


def _cleared_not_ready(
    rows: list[_Row], checklists: dict[int, _ShownChecklist], today: date
) -> list[dict[str, Any]]:
    entries = []
    for row in rows:
        # Not worked out: the stored gate is open and no override opens it (_screening).
        checklist = checklists.get(row.plan_id)
        if checklist is not None and not checklist.passes_gate:
            continue
        outcome = checklist.outcome if checklist is not None else ScreeningOutcome.CLEARED.value
        entries.append(_first_dose_entry(row, today, outcome, []))
    entries.sort(key=lambda e: (e["first_dose_date"], e["plan"]["id"]))
    return entries


def _readiness_candidates(
    session: Session, clinic_id: int, zone: ZoneInfo, today: date
) -> Sequence[_Row]:
    """The open doses of the next days whose stored readiness is not complete, found by
    index, with what their entries show and the blocking items every write stored."""
    horizon = today + timedelta(days=READINESS_HORIZON_DAYS)
    start, _ = day_bounds(today, str(zone))
    _, end = day_bounds(horizon, str(zone))
    return session.execute(
        _readiness_statement(),
        {"clinic_id": clinic_id, "today": today, "horizon": horizon, "start": start, "end": end},
    ).all()


@cache
def _readiness_statement() -> _Select:
    # The doses of the next days first, each half through its own partial index, then their
    # plans by key: an OR of the two in the join let the planner hash every plan of the clinic
    # to reach a handful of doses.
    is_open = _literal_in(Dose.status, OPEN_DOSE_STATUSES)
    soon = union_all(
        select(Dose.id).where(
            Dose.appointment_at.is_(None),
            is_open,
            Dose.due_date >= bindparam("today"),
            Dose.due_date <= bindparam("horizon"),
        ),
        select(Dose.id).where(
            Dose.ready.is_not(True),
            is_open,
            Dose.appointment_at >= bindparam("start"),
            Dose.appointment_at < bindparam("end"),
        ),
    )
    return _doses_with_subject(Dose.ready, Dose.readiness_blocking).where(
        Dose.id.in_(soon),
        TreatmentPlan.clinic_id == bindparam("clinic_id"),
        _literal_in(TreatmentPlan.status, OPEN_PLAN_STATUSES),
        is_open,
        Dose.ready.is_not(True),
    )


def _stored_blocking(row: _Row) -> list[dict[str, str]] | None:
    """The dose's blocking items as the last write stored them beside `ready`; None where
    they are not stored (rows from before the column), so they are worked out from the plan."""
    if row.ready is None or row.readiness_blocking is None:
        return None
    return list(row.readiness_blocking)


def _readiness_open(
    rows: Sequence[_Row], plans: dict[int, TreatmentPlan], zone: ZoneInfo, today: date
) -> list[dict[str, Any]]:
    """An entry for each candidate whose readiness is not ready: as stored, or worked out
    from `plans`, which holds the plan of every row whose readiness is not stored."""
    doses = {dose.id: dose for plan in plans.values() for dose in plan.doses}
    entries: list[dict[str, Any]] = []
    for row in rows:
        blocking = _stored_blocking(row)
        if blocking is None:
            readiness = doses[row.dose_id].readiness
            if readiness.ready:
                continue
            blocking = readiness.blocking_items
        elif row.ready:
            continue
        entry = _dose_entry(row, zone)
        entry["days_until"] = (entry["date"] - today).days
        entry["open_items"] = blocking
        entries.append(entry)
    entries.sort(key=lambda e: (e["date"], e["dose"]["id"]))
    return entries


def _observation_missing(session: Session, clinic_id: int, today: date) -> list[dict[str, Any]]:
    since = today - timedelta(days=OBSERVATION_LOOKBACK_DAYS)
    rows = session.execute(_observation_statement(), {"clinic_id": clinic_id, "since": since}).all()
    observations = {row.regimen_code: get_regimen(row.regimen_code).observation for row in rows}
    reactions = _reactions(
        session,
        {
            row.patient_id
            for row in rows
            if observations[row.regimen_code].reads_reactions(row.sequence)
        },
    )
    entries: list[dict[str, Any]] = []
    for row in rows:
        required = observations[row.regimen_code].minutes_after(
            row.sequence,
            had_reaction=reacted_before_or_in(
                reactions.get(row.patient_id, ()), row.dose_id, row.administered_at
            ),
        )
        if required is None:
            continue
        recorded = row.observation_minutes
        if recorded is not None and recorded >= required:
            continue
        entries.append(
            {
                **_subject(row),
                "links": _links(row.plan_id, row.patient_id, row.dose_id),
                "administered_at": row.administered_at,
                "required_minutes": required,
                "recorded_minutes": recorded,
            }
        )
    return entries


@cache
def _observation_statement() -> _Select:
    return (
        _doses_with_subject(
            DoseAdministration.administered_at, DoseAdministration.observation_minutes
        )
        .join(DoseAdministration, DoseAdministration.dose_id == Dose.id)
        .where(
            TreatmentPlan.clinic_id == bindparam("clinic_id"),
            _literal_in(TreatmentPlan.status, OPEN_PLAN_STATUSES),
            _literal_in(Dose.status, values(DoseStatus.ADMINISTERED)),
            Dose.observation_short.is_not(False),
            Dose.due_date >= bindparam("since"),
        )
        .order_by(Dose.due_date, Dose.id)
    )


def _overdue_doses(
    session: Session, clinic_id: int, zone: ZoneInfo, today: date, today_start: datetime, limit: int
) -> tuple[list[dict[str, Any]], int]:
    rows = session.execute(
        _overdue_doses_statement(),
        {"clinic_id": clinic_id, "today": today, "today_start": today_start, "limit": limit},
    ).all()
    entries = []
    for row in rows:
        entry = _dose_entry(row, zone)
        entries.append({**entry, "days_overdue": (today - entry["date"]).days})
    entries.sort(key=lambda e: (e["date"], e["dose"]["id"]))
    return entries, rows[0].total if rows else 0


@cache
def _overdue_doses_statement() -> _Select:
    # Each half through its own partial index of open doses (an OR of the two lets the planner
    # walk every plan of the clinic instead).
    is_open = _literal_in(Dose.status, OPEN_DOSE_STATUSES)
    late = union_all(
        select(Dose.id).where(
            is_open, Dose.appointment_at.is_(None), Dose.due_date < bindparam("today")
        ),
        select(Dose.id).where(is_open, Dose.appointment_at < bindparam("today_start")),
    )
    return (
        _doses_with_subject(func.count().over().label("total"))
        .where(
            Dose.id.in_(late),
            TreatmentPlan.clinic_id == bindparam("clinic_id"),
            _literal_in(TreatmentPlan.status, OPEN_PLAN_STATUSES),
        )
        .order_by(Dose.due_date, Dose.id)
        .limit(bindparam("limit", type_=Integer))
    )


def _overdue_tasks(
    session: Session, clinic_id: int, today: date, limit: int
) -> tuple[list[dict[str, Any]], int]:
    rows = session.execute(
        _overdue_tasks_statement(), {"clinic_id": clinic_id, "today": today, "limit": limit}
    ).all()
    return [
        {
            "patient": _patient(row),
            "plan": _plan(row),
            "task": {
                "id": row.id,
                "kind": row.kind,
                "due_date": row.due_date,
                "status": row.status,
                "dose_id": row.dose_id,
                "after_treatment": row.follow_up_id is not None,
            },
            "days_overdue": (today - row.due_date).days,
        }
        for row in rows
    ], rows[0].total if rows else 0


@cache
def _overdue_tasks_statement() -> _Select:
    # The late tasks first, through the (status, due_date) index; then their plans by key
    # (joining first lets the planner read every plan of the clinic).
    late = union_all(
        select(MonitoringTask.id).where(
            MonitoringTask.status == _sql_string(TaskStatus.OVERDUE.value)
        ),
        select(MonitoringTask.id).where(
            MonitoringTask.status == _sql_string(TaskStatus.DUE.value),
            MonitoringTask.due_date < bindparam("today"),
        ),
    )
    return (
        select(
            *_PATIENT_COLUMNS,
            *_PLAN_COLUMNS,
            MonitoringTask.id,
            MonitoringTask.kind,
            MonitoringTask.due_date,
            MonitoringTask.status,
            MonitoringTask.dose_id,
            MonitoringTask.follow_up_id,
            func.count().over().label("total"),
        )
        .select_from(MonitoringTask)
        .join(TreatmentPlan, TreatmentPlan.id == MonitoringTask.plan_id)
        .join(Patient, Patient.id == TreatmentPlan.patient_id)
        .outerjoin(MonitoringFollowUp, MonitoringFollowUp.id == MonitoringTask.follow_up_id)
        .where(
            MonitoringTask.id.in_(late),
            TreatmentPlan.clinic_id == bindparam("clinic_id"),
            # Open plans, and monitoring that continues after a plan ended.
            or_(
                _literal_in(TreatmentPlan.status, OPEN_PLAN_STATUSES),
                and_(MonitoringFollowUp.id.is_not(None), MonitoringFollowUp.ended_at.is_(None)),
            ),
        )
        .order_by(MonitoringTask.due_date, MonitoringTask.id)
        .limit(bindparam("limit", type_=Integer))
    )


def _open_alerts(session: Session, clinic_id: int, limit: int) -> tuple[list[StaffAlert], int]:
    rows = session.execute(_alerts_statement(), {"clinic_id": clinic_id, "limit": limit}).all()
    return [alert for alert, _ in rows], rows[0][1] if rows else 0


@cache
def _alerts_statement() -> _Select:
    return (
        select(StaffAlert, func.count().over())
        .where(StaffAlert.clinic_id == bindparam("clinic_id"), StaffAlert.resolved_at.is_(None))
        .options(joinedload(StaffAlert.patient))
        .order_by(StaffAlert.created_at, StaffAlert.id)
        .limit(bindparam("limit", type_=Integer))
    )


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

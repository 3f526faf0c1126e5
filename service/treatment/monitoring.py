"""Use cases for monitoring tasks: derive them from the catalog, list, read, complete, waive,
and mark the ones whose day has passed as overdue."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, and_, or_, select, update
from sqlalchemy.orm import Session, selectinload

from service.core.access import Actor
from service.core.paging import Page, paginate
from service.core.wall_clock import clinic_zone, local_today
from service.db import utcnow
from service.errors import Forbidden, InvalidTransition, NotFound, ValidationFailed
from service.models import (
    Clinic,
    Dose,
    LabResult,
    MonitoringFollowUp,
    MonitoringTask,
    TreatmentPlan,
)
from service.protocols.catalog import Interval, Regimen, all_regimens, get_regimen
from service.protocols.schedule import hbv_monitoring_dates, monitoring_due_dates
from service.reminders.derive import sync_plan_reminders
from service.vocabulary import (
    OPEN_PLAN_STATUSES,
    SKIPPED_DOSE_STATUSES,
    ConsultDecision,
    DoseKind,
    DoseStatus,
    FollowUpEnd,
    Role,
    TaskStatus,
)

# The tests of the hepatitis B pathway (catalog rules with condition hbv_pathway).
HBV_PATHWAY_KINDS = tuple(
    sorted(
        {
            rule.kind
            for r in all_regimens()
            for rule in r.monitoring
            if rule.condition == "hbv_pathway"
        }
    )
)
MIN_REASON = 10

# --- derivation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Wanted:
    kind: str
    rule_date: date
    dose_id: int | None
    ordinal: int  # n-th occurrence of a periodic kind; -1 for dose-tied tasks

    @property
    def key(self) -> tuple[str, int | None, int]:
        return (self.kind, self.dose_id, self.ordinal)


def derive_monitoring_tasks(session: Session, plan: TreatmentPlan) -> None:
    """Create, move or remove the plan's open monitoring tasks so they match the catalog rules.

    Doses count at their due date while open and at their administration date (clinic time zone)
    once given; cancelled and missed doses anchor nothing. Done and waived tasks are history and
    are never touched. A task whose rule date is unchanged keeps its due date, so a date staff
    moved by hand survives re-derivation; when the rule date moves (a dose was rescheduled), the
    task moves with it. Open tasks no rule asks for any more (anti-HBc no longer positive, a
    cancelled dose) are removed.
    """
    session.flush()  # doses need their ids
    regimen = get_regimen(plan.regimen_code)
    zone = clinic_zone(session, plan.clinic_id)
    # A plan that ended asks only for the monitoring that continues after it: the hepatitis B
    # pathway's tests up to their planned stop, and the follow-ups (derive_follow_up_tasks).
    wanted = _wanted_tasks(regimen, plan, zone) if plan.is_open else _after_plan_hbv(regimen, plan)

    existing = [t for t in plan.monitoring_tasks if t.follow_up_id is None]
    before_course = _dose_tied_kinds(regimen)
    by_key: dict[tuple[str, int | None, int], MonitoringTask] = {}
    leftovers: list[MonitoringTask] = []
    periodic: dict[str, list[MonitoringTask]] = defaultdict(list)
    for task in sorted(existing, key=lambda t: (t.rule_date, t.id)):
        if task.kind in before_course:
            key = (task.kind, task.dose_id, -1)
            if task.dose_id is None or key in by_key:
                leftovers.append(task)
            else:
                by_key[key] = task
        else:
            periodic[task.kind].append(task)
    for kind, tasks in periodic.items():
        for ordinal, task in enumerate(tasks):
            by_key[(kind, None, ordinal)] = task

    wanted_keys = {w.key for w in wanted}
    for w in wanted:
        found = by_key.get(w.key)
        if found is None:
            plan.monitoring_tasks.append(
                MonitoringTask(
                    kind=w.kind,
                    due_date=w.rule_date,
                    rule_date=w.rule_date,
                    dose_id=w.dose_id,
                    status=TaskStatus.DUE,
                )
            )
        elif found.is_open and found.rule_date != w.rule_date:
            found.rule_date = w.rule_date
            found.due_date = w.rule_date
            # mark_overdue decides again from the new date.
            found.status = TaskStatus.DUE
    stale = leftovers + [t for k, t in by_key.items() if k not in wanted_keys]
    for task in stale:
        if task.is_open:
            plan.monitoring_tasks.remove(task)
            session.delete(task)
    session.flush()
    derive_follow_up_tasks(session, plan)


# --- monitoring after the plan ends -----------------------------------------------------------


def start_follow_ups(session: Session, plan: TreatmentPlan, *, ended_on: date) -> None:
    """When a plan ends: the monitoring its catalog rules continue after the last dose.

    Only after a dose was given (no dose, no B-cell depletion to follow). Each follow-up asks
    for one task at a time, every N months counted from the last dose given, the first one no
    earlier than the day the plan ended.
    """
    zone = clinic_zone(session, plan.clinic_id)
    given = [
        d.as_planned(given_day_in=zone).due_date
        for d in plan.doses
        if d.status == DoseStatus.ADMINISTERED
    ]
    if not given:
        return
    regimen = get_regimen(plan.regimen_code)
    anti_hbc_positive = _anti_hbc_positive(plan)
    existing = {f.kind for f in plan.follow_ups}
    for rule in regimen.monitoring:
        months = regimen.after_stop_months(rule, plan.settings)
        if rule.after_stop is None or months is None or rule.kind in existing:
            continue
        if rule.condition == "anti_hbc_positive" and not anti_hbc_positive:
            continue
        if rule.condition == "hbv_pathway":
            continue  # its own schedule runs to the planned stop (_hbv_tasks)
        plan.follow_ups.append(
            MonitoringFollowUp(
                kind=rule.kind,
                reason=rule.after_stop.reason,
                every_months=months,
                anchor_date=max(given),
                started_on=ended_on,
                until=None,
            )
        )
    session.flush()


def follow_up_dates(follow_up: MonitoringFollowUp, count: int) -> list[date]:
    """The first `count` due dates of a follow-up (never before the day it started), up to its
    end date when it has one."""
    every = Interval(months=follow_up.every_months)
    dates: list[date] = []
    n = 1
    while len(dates) < count:
        when = max(every.times(n).add_to(follow_up.anchor_date), follow_up.started_on)
        n += 1
        if follow_up.until is not None and when > follow_up.until:
            break
        if dates and when <= dates[-1]:
            continue
        dates.append(when)
    return dates


def derive_follow_up_tasks(session: Session, plan: TreatmentPlan) -> None:
    """Keep one open task ahead for each active follow-up: the next one appears when the last
    is done or waived. An ended follow-up (or one past its end date) keeps only its history."""
    with session.no_autoflush:
        for follow_up in plan.follow_ups:
            _derive_follow_up(session, plan, follow_up)
    session.flush()


def _derive_follow_up(session: Session, plan: TreatmentPlan, follow_up: MonitoringFollowUp) -> None:
    tasks = sorted(follow_up.tasks, key=lambda t: (t.rule_date, t.id or 0))
    closed = [t for t in tasks if not t.is_open]
    open_tasks = [t for t in tasks if t.is_open]
    wanted = follow_up_dates(follow_up, len(closed) + 1) if follow_up.is_active else []
    next_date = wanted[len(closed)] if len(wanted) > len(closed) else None
    keep = open_tasks[0] if open_tasks and next_date is not None else None
    for task in open_tasks:
        if task is not keep:
            follow_up.tasks.remove(task)
            plan.monitoring_tasks.remove(task)
            session.delete(task)
    if next_date is None:
        return
    if keep is None:
        task = MonitoringTask(
            kind=follow_up.kind, due_date=next_date, rule_date=next_date, status=TaskStatus.DUE
        )
        plan.monitoring_tasks.append(task)
        follow_up.tasks.append(task)
    elif keep.rule_date != next_date:
        keep.rule_date = keep.due_date = next_date
        keep.status = TaskStatus.DUE


def _anti_hbc_positive(plan: TreatmentPlan) -> bool:
    return any(
        item.code == "anti_hbc" and item.result == "positive" for item in plan.screening_items
    )


def end_follow_up(
    session: Session,
    actor: Actor,
    plan_id: int,
    kind: str,
    *,
    reason: str,
    notes: str | None = None,
) -> MonitoringFollowUp:
    """A clinician ends monitoring that continued after the plan: B-cell repletion recorded,
    or another reason in words. Its open task goes; done ones stay as history."""
    if actor.role != Role.CLINICIAN:
        raise Forbidden("Only a clinician may end monitoring after treatment.")
    plan = _plan(session, actor, plan_id)
    follow_up = next((f for f in plan.follow_ups if f.kind == kind), None)
    if follow_up is None:
        raise NotFound(f"No monitoring of '{kind}' continues after this plan")
    if not follow_up.is_active:
        raise InvalidTransition("This monitoring has already ended", allowed=[])
    text = (notes or "").strip() or None
    if reason == FollowUpEnd.OTHER and (text is None or len(text) < MIN_REASON):
        raise ValidationFailed(
            errors={"notes": [f"Say why it ends, in at least {MIN_REASON} characters."]}
        )
    follow_up.ended_at = utcnow()
    follow_up.end_reason = reason
    follow_up.end_notes = text
    follow_up.ended_by_id = actor.user_id
    plan.updated_at = utcnow()
    session.flush()
    derive_follow_up_tasks(session, plan)
    sync_plan_reminders(session, plan)
    return follow_up


def set_follow_up_until(
    session: Session, plan: TreatmentPlan, kind: str, until: date | None
) -> MonitoringFollowUp | None:
    """Give an after-stop monitoring its end date (e.g. a hepatology consult's planned stop of
    HBV DNA monitoring); None when the plan has no such follow-up. The caller syncs reminders
    (or calls this before a change that does)."""
    follow_up = next((f for f in plan.follow_ups if f.kind == kind), None)
    if follow_up is None:
        return None
    follow_up.until = until
    session.flush()
    derive_follow_up_tasks(session, plan)
    return follow_up


def _wanted_tasks(regimen: Regimen, plan: TreatmentPlan, zone: str) -> list[_Wanted]:
    settings = regimen.resolve_settings(plan.settings)
    doses = [d for d in plan.doses if d.status not in SKIPPED_DOSE_STATUSES]
    planned = [d.as_planned(given_day_in=zone) for d in doses]
    anti_hbc_positive = _anti_hbc_positive(plan)
    horizon = Interval(months=regimen.horizon_months(settings)).add_to(plan.start_date)
    until = max([horizon, *(p.due_date for p in planned)])
    due = monitoring_due_dates(
        regimen,
        planned,
        plan.start_date,
        settings=settings,
        anti_hbc_positive=anti_hbc_positive,
        until=until,
    )
    due = sorted(due + _hbv_tasks(regimen, plan, until), key=lambda item: (item[1], item[0]))
    # monitoring_due_dates gives one date per course-starting maintenance dose, in dose order:
    # pair them back up so the task knows its dose and moves with it.
    dates = {p.sequence: p.due_date for p in planned}
    course_doses = sorted(
        _course_starting_maintenance(doses), key=lambda d: (dates[d.sequence], d.sequence)
    )
    before_course = _dose_tied_kinds(regimen)
    tied: dict[str, Iterator[Dose]] = {kind: iter(course_doses) for kind in before_course}
    ordinals: dict[str, int] = defaultdict(int)
    wanted: list[_Wanted] = []
    for kind, when in due:
        if kind in before_course:
            dose = next(tied[kind], None)
            wanted.append(_Wanted(kind, when, dose.id if dose is not None else None, -1))
        else:
            wanted.append(_Wanted(kind, when, None, ordinals[kind]))
            ordinals[kind] += 1
    return wanted


def _after_plan_hbv(regimen: Regimen, plan: TreatmentPlan) -> list[_Wanted]:
    ordinals: dict[str, int] = defaultdict(int)
    wanted: list[_Wanted] = []
    for kind, when in _hbv_tasks(regimen, plan, plan.start_date):
        wanted.append(_Wanted(kind, when, None, ordinals[kind]))
        ordinals[kind] += 1
    return wanted


def _hbv_tasks(regimen: Regimen, plan: TreatmentPlan, until: date) -> list[tuple[str, date]]:
    """HBV DNA and ALT on the hepatitis B pathway: at the consult's cadence (default: the
    regimen's hbv_dna_interval) from the baseline HBV DNA (the plan's start until it is
    recorded), up to the planned stop (the consult's, else the last anti-CD20 dose plus
    hbv_prophylaxis_after_last_dose) even beyond the plan's horizon or its end."""
    pathway = plan.hbv_pathway
    if not pathway.active or pathway.decision == ConsultDecision.NOT_ELIGIBLE:
        return []
    if pathway.planned_stop is None and not plan.is_open:
        return []  # ended before any anti-CD20 dose was given: nothing to follow up
    assert pathway.monitoring_every is not None
    return hbv_monitoring_dates(
        regimen,
        baseline=pathway.baseline_date or plan.start_date,
        every=pathway.monitoring_every,
        until=pathway.planned_stop or until,
    )


def _dose_tied_kinds(regimen: Regimen) -> set[str]:
    return {r.kind for r in regimen.monitoring if r.schedule == "before_maintenance_course"}


def _course_starting_maintenance(doses: list[Dose]) -> list[Dose]:
    ordered = sorted(doses, key=lambda d: d.sequence)
    result = []
    previous: Dose | None = None
    for dose in ordered:
        if (
            previous is None or previous.course != dose.course
        ) and dose.kind == DoseKind.MAINTENANCE:
            result.append(dose)
        previous = dose
    return result


# --- reading ----------------------------------------------------------------------------------


def _plan(session: Session, actor: Actor, plan_id: int) -> TreatmentPlan:
    plan = session.get(TreatmentPlan, plan_id)
    if plan is None:
        raise NotFound("Plan not found")
    actor.ensure_can_see(clinic_id=plan.clinic_id, patient_id=plan.patient_id, what="Plan")
    return plan


def list_tasks(
    session: Session,
    actor: Actor,
    plan_id: int,
    *,
    page: int,
    page_size: int,
    status: str | None = None,
) -> Page[MonitoringTask]:
    _plan(session, actor, plan_id)
    stmt = (
        select(MonitoringTask)
        .where(MonitoringTask.plan_id == plan_id)
        .options(selectinload(MonitoringTask.plan))
        .order_by(MonitoringTask.due_date, MonitoringTask.id)
    )
    if status:
        stmt = stmt.where(MonitoringTask.status == status)
    return paginate(session, stmt, page=page, page_size=page_size)


def get_task(session: Session, actor: Actor, task_id: int) -> MonitoringTask:
    task = session.get(MonitoringTask, task_id)
    if task is None:
        raise NotFound("Monitoring task not found")
    plan = task.plan
    actor.ensure_can_see(
        clinic_id=plan.clinic_id, patient_id=plan.patient_id, what="Monitoring task"
    )
    return task


# --- changing ---------------------------------------------------------------------------------


def update_task(
    session: Session, actor: Actor, task: MonitoringTask, changes: dict[str, Any]
) -> MonitoringTask:
    """Staff complete (done), waive (with a reason in notes), reopen (due) or re-date a task.

    Reopening a task whose due date has passed in the clinic's time zone makes it overdue at
    once rather than waiting for the nightly run.
    """
    actor.require_staff()
    status = changes.get("status")
    notes = changes.get("notes", task.notes)
    problems: dict[str, list[str]] = {}
    if status == TaskStatus.WAIVED and not (notes or "").strip():
        problems["notes"] = ["Give the reason for waiving the task."]
    lab_result = None
    if changes.get("lab_result_id") is not None:
        lab_result = session.get(LabResult, changes["lab_result_id"])
        if lab_result is None or lab_result.patient_id != task.plan.patient_id:
            problems["lab_result_id"] = ["No such lab result for this patient."]
        elif status not in (None, TaskStatus.DONE):
            problems["lab_result_id"] = ["A linked lab result completes the task (status done)."]
        else:
            taken = session.scalar(
                select(MonitoringTask.id).where(
                    MonitoringTask.lab_result_id == lab_result.id, MonitoringTask.id != task.id
                )
            )
            if taken is not None:
                problems["lab_result_id"] = ["Already completes another task."]
    if "due_date" in changes and not task.is_open and status != TaskStatus.DUE:
        problems["due_date"] = [f"A {task.status} task keeps its date; reopen it first."]
    if problems:
        raise ValidationFailed(errors=problems)
    completes = status == TaskStatus.DONE or (status is None and lab_result is not None)
    if (completes or status == TaskStatus.WAIVED) and not task.is_open:
        raise InvalidTransition(f"The task is already {task.status}")

    if "notes" in changes:
        task.notes = changes["notes"]
    if "due_date" in changes:
        task.due_date = changes["due_date"]
    if completes:
        complete_task(session, actor, task, lab_result=lab_result)
    elif status == TaskStatus.WAIVED:
        task.status = TaskStatus.WAIVED
        task.done_at = utcnow()
        task.completed_by_id = actor.user_id
    elif status == TaskStatus.DUE:
        task.done_at = None
        task.completed_by_id = None
        task.lab_result_id = None
        task.status = TaskStatus.DUE
    if task.is_open:
        today = local_today(clinic_zone(session, task.plan.clinic_id))
        task.status = TaskStatus.OVERDUE if task.due_date < today else TaskStatus.DUE
    session.flush()
    if task.follow_up_id is not None:
        derive_follow_up_tasks(session, task.plan)
    sync_plan_reminders(session, task.plan)
    return task


def complete_task(
    session: Session, actor: Actor, task: MonitoringTask, *, lab_result: LabResult | None
) -> MonitoringTask:
    task.status = TaskStatus.DONE
    task.done_at = utcnow()
    task.completed_by_id = actor.user_id
    if lab_result is not None:
        task.lab_result_id = lab_result.id
    session.flush()
    return task


def _active_follow_ups(clinic_ids: list[int]) -> Any:
    return (
        select(MonitoringFollowUp.id)
        .join(TreatmentPlan, TreatmentPlan.id == MonitoringFollowUp.plan_id)
        .where(TreatmentPlan.clinic_id.in_(clinic_ids), MonitoringFollowUp.ended_at.is_(None))
    )


# --- the nightly run --------------------------------------------------------------------------


def mark_overdue(
    session: Session, *, now: datetime | None = None, today: date | None = None
) -> dict[str, int]:
    """Tasks still `due` whose due date is before today become `overdue`.

    "Today" is each clinic's own calendar date at `now` (default: the current instant), so a
    task due on the 3rd turns overdue at midnight in Auckland and in Los Angeles alike. Pass
    `today` to use one date for every clinic instead (a fixed date in tests or a manual run).
    Only plans that are still open count, and monitoring that continues after a plan ended.
    Returns {"overdue": n, "clinics": clinics checked}.
    """
    if today is not None and now is not None:
        raise ValueError("pass now or today, not both")
    clinics = session.execute(select(Clinic.id, Clinic.time_zone)).all()
    by_day: dict[date, list[int]] = defaultdict(list)
    for clinic_id, zone in clinics:
        by_day[today or local_today(zone, now)].append(clinic_id)
    marked = 0
    for day, clinic_ids in by_day.items():
        open_plans = select(TreatmentPlan.id).where(
            TreatmentPlan.clinic_id.in_(clinic_ids),
            TreatmentPlan.status.in_(OPEN_PLAN_STATUSES),
        )
        result = session.execute(
            update(MonitoringTask)
            .where(
                MonitoringTask.status == TaskStatus.DUE,
                MonitoringTask.due_date < day,
                or_(
                    MonitoringTask.plan_id.in_(open_plans),
                    MonitoringTask.follow_up_id.in_(_active_follow_ups(clinic_ids)),
                    # The hepatitis B pathway's tests after the plan (up to their planned stop).
                    and_(
                        MonitoringTask.follow_up_id.is_(None),
                        MonitoringTask.kind.in_(HBV_PATHWAY_KINDS),
                    ),
                ),
            )
            .values(
                status=TaskStatus.OVERDUE,
                version=MonitoringTask.version + 1,
                updated_at=utcnow(),
            )
            .execution_options(synchronize_session="fetch")
        )
        marked += cast("CursorResult[Any]", result).rowcount or 0
    session.flush()
    return {"overdue": marked, "clinics": len(clinics)}

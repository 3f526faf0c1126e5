"""Reminder derivation: the reminders a plan's schedule calls for, kept in step with it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.core.wall_clock import to_utc
from service.db import utcnow
from service.models import (
    Clinic,
    Dose,
    MonitoringFollowUp,
    MonitoringTask,
    Patient,
    Reminder,
    TreatmentPlan,
)
from service.protocols import get_regimen
from service.reminders.timing import QuietHours, patient_fire_time, push_out_of_quiet_hours
from service.vocabulary import (
    ACTIVE_REMINDER_STATUSES,
    OPEN_PLAN_STATUSES,
    DoseKind,
    DoseStatus,
    PlanStatus,
    ReminderStatus,
    TaskStatus,
)

DEFAULT_DOSE_LEAD_DAYS = (7, 1)
CHECKLIST_ALERT_DAYS = (14, 7)
# The reminders that follow the checklist alone (no date of the schedule moves them).
CHECKLIST_KINDS = ("checklist_not_cleared",)
# The labels: infusion reactions can still occur up to 24 h after an infusion.
SYMPTOM_CHECKIN_AFTER = timedelta(hours=24)
SYMPTOM_CHECKIN_RELEVANT_FOR = timedelta(hours=48)
# Instructions should reach the patient this long before the appointment at the latest.
MORNING_OF_BEFORE_APPOINTMENT = timedelta(minutes=90)
SELF_INJECTION_RELEVANT_DAYS = 7
LAB_TASK_KINDS = ("ig_quant", "hbv_dna", "alt", "lft", "cbc", "neutrophils")
# Reminders the runner may still be working on: re-derivation may change or cancel them.
# Monitoring rules of the hepatitis B pathway: they run to their planned stop, plan or not.
HBV_PATHWAY = "hbv_pathway"


@dataclass(frozen=True)
class ReminderSpec:
    key: str
    kind: str
    audience: str
    subject_type: str
    subject_id: int
    local_date: date
    local_time: time
    time_zone: str
    fire_at: datetime
    expires_at: datetime | None
    channels: tuple[str, ...]
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass
class SyncCounts:
    added: int = 0
    updated: int = 0
    cancelled: int = 0
    kept: int = 0


def _local(instant: datetime, zone: str) -> datetime:
    return instant.astimezone(ZoneInfo(zone))


class _Context:
    """What derivation needs about one plan's patient and clinic."""

    def __init__(self, plan: TreatmentPlan, patient: Patient, clinic: Clinic) -> None:
        self.plan = plan
        self.patient = patient
        self.clinic = clinic
        self.regimen = get_regimen(plan.regimen_code)
        defaults = clinic.reminder_defaults
        self.dose_lead_days = tuple(
            patient.dose_lead_days or defaults.dose_lead_days or DEFAULT_DOSE_LEAD_DAYS
        )
        self.infection_checkin_days = defaults.infection_checkin_days
        self.labs_lead_days = defaults.labs_lead_days
        self.staff_time = defaults.staff_time
        self.quiet = QuietHours(patient.quiet_start, patient.quiet_end)
        channels = ["inbox", *(c for c in patient.reminder_channels or [] if c != "inbox")]
        if clinic.webhook is not None:
            channels.append("webhook")
        self.patient_channels = tuple(channels)
        self.staff_channels = ("worklist",)

    def patient_spec(
        self,
        kind: str,
        subject: tuple[str, int],
        fire_at: datetime,
        expires_at: datetime | None,
        payload: dict[str, Any],
        key_detail: str,
    ) -> ReminderSpec:
        return _spec(
            kind,
            "patient",
            subject,
            fire_at,
            self.patient.time_zone,
            expires_at,
            self.patient_channels,
            payload,
            key_detail,
        )

    def at_preferred_time(self, day: date) -> datetime:
        return patient_fire_time(
            day, self.patient.reminder_time, self.patient.time_zone, self.quiet
        )


def dose_start(dose: Dose, clinic_zone: str) -> datetime:
    """When a dose happens: its appointment, or the end of its due day at the clinic."""
    if dose.appointment_at is not None:
        return dose.appointment_at
    return to_utc(dose.due_date + timedelta(days=1), time(0, 0), clinic_zone)


def dose_day(dose: Dose, clinic_zone: str) -> date:
    if dose.appointment_at is not None:
        return _local(dose.appointment_at, clinic_zone).date()
    return dose.due_date


def _dose_payload(ctx: _Context, dose: Dose) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "drug": ctx.regimen.drug,
        "dose_sequence": dose.sequence,
        "dose_kind": dose.kind,
        "amount_mg": dose.amount_mg,
        "due_date": dose.due_date.isoformat(),
    }
    if dose.appointment_at is not None:
        payload["appointment_at"] = dose.appointment_at.isoformat()
        payload["time_zone"] = ctx.clinic.time_zone
    if dose.location:
        payload["location"] = dose.location
    return payload


def _dose_specs(ctx: _Context, dose: Dose) -> Iterable[ReminderSpec]:
    zone = ctx.clinic.time_zone
    start = dose_start(dose, zone)
    day = dose_day(dose, zone)
    subject = ("dose", dose.id)
    payload = _dose_payload(ctx, dose)

    if dose.status == DoseStatus.MISSED and dose.appointment_at is None:
        # Owed, not skipped: the patient is asked to rebook (the labels: as soon as possible).
        missed_on = dose.missed_on or day
        yield ctx.patient_spec(
            "dose_missed",
            subject,
            ctx.at_preferred_time(missed_on + timedelta(days=1)),
            None,
            payload,
            str(missed_on),
        )
        return

    # Every dose, self-injections included, is preceded by the infection check-in (§11): its
    # answer is the dose's active_infection readiness item.
    checkin_day = day - timedelta(days=ctx.infection_checkin_days)
    yield ctx.patient_spec(
        "infection_checkin",
        subject,
        ctx.at_preferred_time(checkin_day),
        start,
        payload,
        str(day),
    )

    if dose.kind == DoseKind.SELF_INJECTION:
        expires = to_utc(day + timedelta(days=SELF_INJECTION_RELEVANT_DAYS + 1), time(0), zone)
        yield ctx.patient_spec(
            "self_injection_due", subject, ctx.at_preferred_time(day), expires, payload, str(day)
        )
        return

    # Each earlier "upcoming" reminder stops mattering when the next one is due.
    leads = sorted(set(ctx.dose_lead_days), reverse=True)
    fire_times = [ctx.at_preferred_time(day - timedelta(days=lead)) for lead in leads]
    for index, lead in enumerate(leads):
        expires = fire_times[index + 1] if index + 1 < len(fire_times) else start
        yield ctx.patient_spec(
            "dose_upcoming",
            subject,
            fire_times[index],
            expires,
            {**payload, "lead_days": lead},
            f"{lead}d:{day}",
        )

    if dose.appointment_at is not None:
        yield ctx.patient_spec(
            "morning_of",
            subject,
            _morning_of_time(ctx, dose.appointment_at),
            dose.appointment_at,
            {**payload, "premedications": [p.drug for p in ctx.regimen.premedications]},
            dose.appointment_at.isoformat(),
        )


def _morning_of_time(ctx: _Context, appointment_at: datetime) -> datetime:
    """The appointment day at the preferred time, early enough to act on, never in quiet hours."""
    zone = ctx.patient.time_zone
    day = _local(appointment_at, zone).date()
    candidate = min(
        to_utc(day, ctx.patient.reminder_time, zone), appointment_at - MORNING_OF_BEFORE_APPOINTMENT
    )
    if ctx.quiet.contains(_local(candidate, zone).time().replace(tzinfo=None)):
        # Too early for the morning: send it the evening before, an hour before quiet hours.
        evening = datetime.combine(day - timedelta(days=1), ctx.quiet.start)
        return to_utc(evening.date(), (evening - timedelta(hours=1)).time(), zone)
    return candidate


def _symptom_checkin(ctx: _Context, dose: Dose) -> ReminderSpec | None:
    if dose.administration is None or dose.kind == DoseKind.SELF_INJECTION:
        return None
    given = dose.administration.administered_at
    fire_at = push_out_of_quiet_hours(
        given + SYMPTOM_CHECKIN_AFTER, ctx.patient.time_zone, ctx.quiet
    )
    return ctx.patient_spec(
        "symptom_checkin",
        ("dose", dose.id),
        fire_at,
        given + SYMPTOM_CHECKIN_AFTER + SYMPTOM_CHECKIN_RELEVANT_FOR,
        _dose_payload(ctx, dose),
        given.isoformat(),
    )


def _task_specs(ctx: _Context, task: MonitoringTask) -> Iterable[ReminderSpec]:
    if task.status != TaskStatus.DUE or task.kind not in LAB_TASK_KINDS:
        return
    zone = ctx.clinic.time_zone
    expires = to_utc(task.due_date + timedelta(days=1), time(0), zone)
    fire_day = task.due_date - timedelta(days=ctx.labs_lead_days)
    yield ctx.patient_spec(
        "labs_due",
        ("monitoring_task", task.id),
        ctx.at_preferred_time(fire_day),
        expires,
        {"task_kind": task.kind, "due_date": task.due_date.isoformat()},
        str(task.due_date),
    )


def _staff_spec(
    ctx: _Context,
    kind: str,
    subject: tuple[str, int],
    day: date,
    expires_at: datetime | None,
    payload: dict[str, Any],
    key_detail: str,
) -> ReminderSpec:
    zone = ctx.clinic.time_zone
    fire_at = to_utc(day, ctx.staff_time, zone)
    return _spec(
        kind, "staff", subject, fire_at, zone, expires_at, ctx.staff_channels, payload, key_detail
    )


def _spec(
    kind: str,
    audience: str,
    subject: tuple[str, int],
    fire_at: datetime,
    zone: str,
    expires_at: datetime | None,
    channels: tuple[str, ...],
    payload: dict[str, Any],
    key_detail: str,
) -> ReminderSpec:
    """A reminder firing at `fire_at`, stored with the wall-clock time it shows in `zone`."""
    local = _local(fire_at, zone)
    return ReminderSpec(
        key=f"{kind}:{subject[0]}:{subject[1]}:{key_detail}",
        kind=kind,
        audience=audience,
        subject_type=subject[0],
        subject_id=subject[1],
        local_date=local.date(),
        local_time=local.time().replace(tzinfo=None),
        time_zone=zone,
        fire_at=fire_at,
        expires_at=expires_at,
        channels=channels,
        payload=payload,
    )


def _checklist_specs(
    ctx: _Context, first_dose: Dose | None, blocking: Sequence[str]
) -> Iterable[ReminderSpec]:
    if first_dose is None or not blocking:
        return
    zone = ctx.clinic.time_zone
    day = dose_day(first_dose, zone)
    for days in CHECKLIST_ALERT_DAYS:
        yield _staff_spec(
            ctx,
            "checklist_not_cleared",
            ("plan", ctx.plan.id),
            day - timedelta(days=days),
            dose_start(first_dose, zone),
            {"days_before": days, "first_dose_date": day.isoformat(), "blocking": list(blocking)},
            f"{days}d:{day}",
        )


def _overdue_specs(ctx: _Context, dose: Dose) -> ReminderSpec:
    """Staff hear of a dose still open the morning after its day (cancelled once it is given)."""
    day = dose_day(dose, ctx.clinic.time_zone)
    return _staff_spec(
        ctx,
        "dose_overdue",
        ("dose", dose.id),
        day + timedelta(days=1),
        None,
        {"dose_sequence": dose.sequence, "due_date": dose.due_date.isoformat()},
        str(day),
    )


def _task_overdue_spec(ctx: _Context, task: MonitoringTask) -> ReminderSpec:
    return _staff_spec(
        ctx,
        "monitoring_overdue",
        ("monitoring_task", task.id),
        task.due_date + timedelta(days=1),
        None,
        {"task_kind": task.kind, "due_date": task.due_date.isoformat()},
        str(task.due_date),
    )


def derive_plan_reminders(
    plan: TreatmentPlan, patient: Patient, clinic: Clinic, *, blocking_items: Sequence[str]
) -> list[ReminderSpec]:
    """Every reminder the plan calls for now, sent or not (pure: no database).

    A plan on hold keeps its monitoring reminders but none for doses; a plan that ended keeps
    those of the monitoring that continues after it (follow-ups, and the hepatitis B pathway's
    tests up to their planned stop), and nothing else.
    """
    if plan.status not in OPEN_PLAN_STATUSES:
        return list(_monitoring_specs(plan, patient, clinic, after_stop_only=True))
    if plan.status == PlanStatus.ON_HOLD:
        return list(_monitoring_specs(plan, patient, clinic, after_stop_only=False))
    ctx = _Context(plan, patient, clinic)
    specs: list[ReminderSpec] = []
    for dose in plan.doses:
        if dose.is_open:
            specs.extend(_dose_specs(ctx, dose))
            specs.append(_overdue_specs(ctx, dose))
        elif dose.status == DoseStatus.ADMINISTERED:
            checkin = _symptom_checkin(ctx, dose)
            if checkin is not None:
                specs.append(checkin)
    for task in plan.monitoring_tasks:
        specs.extend(_task_specs(ctx, task))
        if task.status in ("due", "overdue"):
            specs.append(_task_overdue_spec(ctx, task))
    first_open = next((d for d in plan.doses if d.sequence == 1 and d.is_open), None)
    specs.extend(_checklist_specs(ctx, first_open, blocking_items))
    return specs


def _monitoring_specs(
    plan: TreatmentPlan, patient: Patient, clinic: Clinic, *, after_stop_only: bool
) -> Iterable[ReminderSpec]:
    ctx = _Context(plan, patient, clinic)
    hbv_kinds = {r.kind for r in ctx.regimen.monitoring if r.condition == HBV_PATHWAY}
    for task in plan.monitoring_tasks:
        continues = (
            task.follow_up.is_active if task.follow_up is not None else task.kind in hbv_kinds
        )
        if after_stop_only and not continues:
            continue
        yield from _task_specs(ctx, task)
        if task.status in ("due", "overdue"):
            yield _task_overdue_spec(ctx, task)


def sync_plan_reminders(
    session: Session, plan: TreatmentPlan, *, now: datetime | None = None
) -> SyncCounts:
    """Bring the plan's stored reminders in line with its schedule (same transaction)."""
    now = now or utcnow()
    patient = plan.patient
    clinic = session.get(Clinic, plan.clinic_id)
    assert clinic is not None
    session.flush()
    specs = derive_plan_reminders(
        plan, patient, clinic, blocking_items=plan.checklist.blocking_codes
    )
    return _store_reminders(session, plan, specs, now=now)


def sync_checklist_reminders(
    session: Session, plan: TreatmentPlan, *, now: datetime | None = None
) -> SyncCounts:
    """After a checklist change that moves no date (a screening result, an override): only the
    staff's checklist reminders follow it; the plan's other reminders are not read."""
    now = now or utcnow()
    clinic = session.get(Clinic, plan.clinic_id)
    assert clinic is not None
    session.flush()
    specs: list[ReminderSpec] = []
    if plan.status in OPEN_PLAN_STATUSES and plan.status != PlanStatus.ON_HOLD:
        ctx = _Context(plan, plan.patient, clinic)
        first_open = next((d for d in plan.doses if d.sequence == 1 and d.is_open), None)
        specs.extend(_checklist_specs(ctx, first_open, plan.checklist.blocking_codes))
    return _store_reminders(session, plan, specs, now=now, kinds=CHECKLIST_KINDS)


def _store_reminders(
    session: Session,
    plan: TreatmentPlan,
    specs: Iterable[ReminderSpec],
    *,
    now: datetime,
    kinds: Sequence[str] | None = None,
) -> SyncCounts:
    """Make the plan's stored reminders (of `kinds`, default all) match `specs`."""
    wanted = {spec.key: spec for spec in specs if spec.expires_at is None or spec.expires_at > now}
    # Locked so a runner mid-delivery finishes first and we see what it sent.
    stored_rows = select(Reminder).where(Reminder.plan_id == plan.id).order_by(Reminder.id)
    if kinds is not None:
        stored_rows = stored_rows.where(Reminder.kind.in_(kinds))
    if session.get_bind().dialect.name == "postgresql":
        stored_rows = stored_rows.with_for_update()
    stored = {r.idempotency_key: r for r in session.scalars(stored_rows)}
    counts = SyncCounts()
    for key, reminder in stored.items():
        if (
            reminder.status not in ACTIVE_REMINDER_STATUSES
            and reminder.status != ReminderStatus.CANCELLED
        ):
            counts.kept += 1
            continue
        spec = wanted.get(key)
        if spec is None:
            if reminder.status != ReminderStatus.CANCELLED:
                reminder.status = ReminderStatus.CANCELLED
                reminder.lease_owner = None
                counts.cancelled += 1
            continue
        if _apply(reminder, spec):
            counts.updated += 1
    for key, spec in wanted.items():
        if key not in stored:
            session.add(_new_reminder(plan, spec))
            counts.added += 1
    session.flush()
    return counts


def _apply(reminder: Reminder, spec: ReminderSpec) -> bool:
    """Update a not-yet-sent reminder to the spec; True if anything changed."""
    changes = {
        "local_date": spec.local_date,
        "local_time": spec.local_time,
        "time_zone": spec.time_zone,
        "fire_at": spec.fire_at,
        "expires_at": spec.expires_at,
        "channels": list(spec.channels),
        "payload": spec.payload,
    }
    changed = reminder.status == ReminderStatus.CANCELLED or any(
        getattr(reminder, name) != value for name, value in changes.items()
    )
    if not changed:
        return False
    for name, value in changes.items():
        setattr(reminder, name, value)
    reminder.status = ReminderStatus.PENDING
    reminder.due_at = spec.fire_at
    reminder.lease_owner = None
    reminder.lease_expires_at = None
    return True


def _new_reminder(plan: TreatmentPlan, spec: ReminderSpec) -> Reminder:
    return Reminder(
        clinic_id=plan.clinic_id,
        patient_id=plan.patient_id,
        plan_id=plan.id,
        audience=spec.audience,
        kind=spec.kind,
        subject_type=spec.subject_type,
        subject_id=spec.subject_id,
        idempotency_key=spec.key,
        local_date=spec.local_date,
        local_time=spec.local_time,
        time_zone=spec.time_zone,
        fire_at=spec.fire_at,
        expires_at=spec.expires_at,
        channels=list(spec.channels),
        status=ReminderStatus.PENDING,
        due_at=spec.fire_at,
        payload=spec.payload,
    )


def sync_patient_reminders(
    session: Session, patient: Patient, *, now: datetime | None = None
) -> SyncCounts:
    """After a change of time zone, preferred time or quiet hours: recompute future reminders
    (of open plans, and of ended ones whose monitoring continues)."""
    total = SyncCounts()
    plans = session.scalars(
        select(TreatmentPlan).where(
            TreatmentPlan.patient_id == patient.id,
            or_(
                TreatmentPlan.status.in_(OPEN_PLAN_STATUSES),
                TreatmentPlan.follow_ups.any(MonitoringFollowUp.ended_at.is_(None)),
            ),
        )
    )
    for plan in plans:
        counts = sync_plan_reminders(session, plan, now=now)
        total.added += counts.added
        total.updated += counts.updated
        total.cancelled += counts.cancelled
        total.kept += counts.kept
    return total

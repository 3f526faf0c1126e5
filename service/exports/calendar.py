"""Calendar documents (RFC 5545, built with `icalendar`): a patient's doses and monitoring tasks,
and a clinic's chair schedule.

What a subscribed calendar needs to update instead of duplicating:
- one UID per dose and per task, for the life of the row ("dose-17@cd20-monitor");
- SEQUENCE from the row's version (it rises with every change, e.g. a reschedule), and
  LAST-MODIFIED / DTSTAMP from the row's updated_at, so the document is the same bytes until
  something changes (its SHA-256 is the ETag);
- a dose that will not happen stays in the feed as STATUS:CANCELLED.

A booked dose is a timed event in the clinic's zone (TZID with its VTIMEZONE) lasting the
expected chair time (minimum infusion time plus observation, from the catalog). A planned dose
not yet booked, a self-injection and a monitoring task are all-day events on their due date.
Alarms mirror the patient's reminder lead times (patient.dose_lead_days, else the clinic's).

The patient's feed holds what the patient needs and nothing more: drug, dose number, amount,
place and time. No MRN, no diagnosis, no name.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Event
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service.core.access import Actor
from service.core.wall_clock import day_bounds, local_today
from service.errors import Forbidden, NotFound, ValidationFailed
from service.models import Clinic, Dose, MonitoringTask, Patient, TreatmentPlan
from service.protocols import Regimen, expected_chair_minutes, get_regimen
from service.reminders.derive import DEFAULT_DOSE_LEAD_DAYS, LAB_TASK_KINDS
from service.vocabulary import DoseKind, DoseStatus, Role, TaskStatus

UID_DOMAIN = "cd20-monitor"
PRODID = "-//cd20-monitor//calendar feed 1.0//EN"
MEDIA_TYPE = "text/calendar"
# Calendar apps that honour it poll this often (RFC 7986 REFRESH-INTERVAL, Outlook's TTL).
REFRESH = timedelta(hours=6)
# A booked dose whose regimen states no infusion or observation time still needs an end.
DEFAULT_CHAIR_MINUTES = 60
# The chair schedule's default window, and the widest one a request may ask for.
CHAIR_DAYS_BEFORE = 7
CHAIR_DAYS_AFTER = 56
MAX_CHAIR_DAYS = 366


@dataclass(frozen=True)
class CalendarDocument:
    body: bytes
    etag: str


def patient_calendar(session: Session, actor: Actor) -> CalendarDocument:
    """The patient's own calendar: every dose and monitoring task of every plan."""
    if actor.role != Role.PATIENT or actor.patient_id is None:
        raise Forbidden("The calendar feed is the patient's own; staff use the chair schedule")
    patient = session.get(Patient, actor.patient_id)
    if patient is None:
        raise NotFound("Patient not found")
    actor.ensure_can_see(clinic_id=patient.clinic_id, patient_id=patient.id, what="Patient")
    clinic = patient.clinic
    plans = session.scalars(
        select(TreatmentPlan)
        .where(TreatmentPlan.patient_id == patient.id)
        .options(
            selectinload(TreatmentPlan.doses).selectinload(Dose.administration),
            selectinload(TreatmentPlan.monitoring_tasks),
        )
        .order_by(TreatmentPlan.id)
    ).all()
    calendar = _calendar("My treatment")
    lead_days = _lead_days(patient, clinic)
    labs_lead = clinic.reminder_defaults.labs_lead_days
    for plan in plans:
        regimen = get_regimen(plan.regimen_code)
        for dose in plan.doses:
            calendar.add_component(_dose_event(dose, regimen, clinic, lead_days))
        for task in plan.monitoring_tasks:
            calendar.add_component(_task_event(task, regimen, labs_lead))
    return _document(calendar)


def chair_calendar(
    session: Session,
    actor: Actor,
    *,
    start: date | None = None,
    end: date | None = None,
    with_names: bool = True,
) -> CalendarDocument:
    """The clinic's booked chairs from `start` up to (not including) `end`, clinic dates.

    Without `with_names` an event names the patient by record number only: a feed URL handed to
    a hosted calendar sends its content to that calendar's provider."""
    actor.require_staff()
    clinic = session.get(Clinic, actor.clinic_id)
    if clinic is None:
        raise NotFound("Clinic not found")
    today = local_today(clinic.time_zone)
    start = start or today - timedelta(days=CHAIR_DAYS_BEFORE)
    end = end or start + timedelta(days=CHAIR_DAYS_BEFORE + CHAIR_DAYS_AFTER)
    if end <= start:
        raise ValidationFailed(errors={"to": ["Must be after 'from'."]})
    if (end - start).days > MAX_CHAIR_DAYS:
        raise ValidationFailed(errors={"to": [f"At most {MAX_CHAIR_DAYS} days after 'from'."]})
    first, _ = day_bounds(start, clinic.time_zone)
    last, _ = day_bounds(end, clinic.time_zone)
    doses = session.scalars(
        select(Dose)
        .join(TreatmentPlan, TreatmentPlan.id == Dose.plan_id)
        .where(
            TreatmentPlan.clinic_id == clinic.id,
            Dose.appointment_at >= first,
            Dose.appointment_at < last,
        )
        .options(selectinload(Dose.plan).selectinload(TreatmentPlan.patient))
        .order_by(Dose.appointment_at, Dose.id)
    ).all()
    calendar = _calendar(f"{clinic.name}: chair schedule")
    for dose in doses:
        calendar.add_component(_chair_event(dose, clinic, with_names=with_names))
    return _document(calendar)


# --- events -----------------------------------------------------------------------------------


def dose_uid(dose: Dose) -> str:
    return f"dose-{dose.id}@{UID_DOMAIN}"


def task_uid(task: MonitoringTask) -> str:
    return f"task-{task.id}@{UID_DOMAIN}"


def chair_uid(dose: Dose) -> str:
    return f"chair-dose-{dose.id}@{UID_DOMAIN}"


def _calendar(name: str) -> Calendar:
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", "PUBLISH")
    calendar.add("name", name)
    calendar.add("x-wr-calname", name)
    calendar.add("refresh-interval", REFRESH, parameters={"VALUE": "DURATION"})
    calendar.add("x-published-ttl", REFRESH)
    return calendar


def _document(calendar: Calendar) -> CalendarDocument:
    calendar.add_missing_timezones()
    body = calendar.to_ical()
    return CalendarDocument(body=body, etag=hashlib.sha256(body).hexdigest()[:32])


def _stamp(event: Event, uid: str, version: int, updated_at: datetime) -> None:
    event.add("uid", uid)
    # SEQUENCE starts at 0 (RFC 5545 3.8.7.4); our versions start at 1.
    event.add("sequence", max(version - 1, 0))
    event.add("dtstamp", updated_at)
    event.add("last-modified", updated_at)


def _lead_days(patient: Patient, clinic: Clinic) -> tuple[int, ...]:
    defaults = clinic.reminder_defaults
    lead = patient.dose_lead_days or defaults.dose_lead_days or DEFAULT_DOSE_LEAD_DAYS
    return tuple(sorted(set(lead), reverse=True))


def _what(regimen: Regimen, dose: Dose) -> str:
    given = "infusion" if regimen.route.upper() == "IV" else "injection"
    return f"{regimen.drug.capitalize()} {given}, dose {dose.sequence}"


def _place(dose: Dose, clinic: Clinic) -> str:
    return f"{dose.location}, {clinic.name}" if dose.location else clinic.name


def _chair_minutes(regimen: Regimen, dose: Dose) -> int:
    return expected_chair_minutes(regimen, dose.as_planned()) or DEFAULT_CHAIR_MINUTES


def _when(dose: Dose) -> datetime | None:
    if dose.appointment_at is not None:
        return dose.appointment_at
    if dose.administration is not None:
        return dose.administration.administered_at
    return None


def _dose_event(dose: Dose, regimen: Regimen, clinic: Clinic, lead_days: Iterable[int]) -> Event:
    event = Event()
    _stamp(event, dose_uid(dose), dose.version, dose.updated_at)
    zone = ZoneInfo(clinic.time_zone)
    start = _when(dose)
    description = [f"{dose.amount_mg} mg."]
    if start is not None and dose.kind != DoseKind.SELF_INJECTION:
        event.add("dtstart", start.astimezone(zone))
        event.add("duration", timedelta(minutes=_chair_minutes(regimen, dose)))
        event.add("location", _place(dose, clinic))
        event.add("summary", _what(regimen, dose))
    else:
        event.add("dtstart", dose.due_date)
        event.add("dtend", dose.due_date + timedelta(days=1))
        event.add("transp", "TRANSPARENT")
        if dose.kind == DoseKind.SELF_INJECTION:
            event.add("summary", _what(regimen, dose))
        else:
            event.add("summary", f"Due: {_what(regimen, dose)}")
            description.append("Not booked yet: the clinic will give you a time.")
    if dose.status in (DoseStatus.CANCELLED, DoseStatus.MISSED):
        event.add("status", "CANCELLED")
    else:
        event.add("status", "CONFIRMED" if dose.status != DoseStatus.PLANNED else "TENTATIVE")
    if dose.status == DoseStatus.ADMINISTERED:
        description.append("Given.")
    event.add("description", " ".join(description))
    if dose.is_open:
        for lead in lead_days:
            event.add_component(_alarm(lead, str(event["summary"])))
    return event


def _task_event(task: MonitoringTask, regimen: Regimen, labs_lead_days: int) -> Event:
    event = Event()
    _stamp(event, task_uid(task), task.version, task.updated_at)
    label = next((rule.label for rule in regimen.monitoring if rule.kind == task.kind), task.kind)
    event.add("dtstart", task.due_date)
    event.add("dtend", task.due_date + timedelta(days=1))
    event.add("transp", "TRANSPARENT")
    event.add("summary", f"Due: {label}")
    if task.status == TaskStatus.WAIVED:
        event.add("status", "CANCELLED")
    else:
        event.add("status", "CONFIRMED")
    if task.status == TaskStatus.DONE:
        event.add("description", "Done.")
    if task.is_open and task.kind in LAB_TASK_KINDS:
        event.add_component(_alarm(labs_lead_days, str(event["summary"])))
    return event


def _alarm(lead_days: int, summary: str) -> Alarm:
    alarm = Alarm()
    alarm.add("action", "DISPLAY")
    alarm.add("description", summary)
    alarm.add("trigger", -timedelta(days=lead_days))
    return alarm


def _chair_event(dose: Dose, clinic: Clinic, *, with_names: bool) -> Event:
    plan = dose.plan
    regimen = get_regimen(plan.regimen_code)
    patient = plan.patient
    event = Event()
    _stamp(event, chair_uid(dose), dose.version, dose.updated_at)
    assert dose.appointment_at is not None  # the query selects booked doses only
    event.add("dtstart", dose.appointment_at.astimezone(ZoneInfo(clinic.time_zone)))
    event.add("duration", timedelta(minutes=_chair_minutes(regimen, dose)))
    who = f"{patient.given_name} {patient.family_name}" if with_names else f"Patient #{patient.id}"
    event.add("summary", f"{who}: {_what(regimen, dose)}")
    event.add("location", dose.location or clinic.name)
    event.add("description", f"{dose.amount_mg} mg. Status: {dose.status}.")
    event.add("status", "CANCELLED" if dose.status == DoseStatus.CANCELLED else "CONFIRMED")
    return event

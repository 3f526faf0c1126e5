"""Reminders as patients and staff see them: upcoming, acknowledged, reported symptoms."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service.core.access import Actor
from service.core.paging import Page, paginate
from service.db import utcnow
from service.errors import Conflict, NotFound, ValidationFailed
from service.models import Dose, Reminder
from service.patients.records import get_patient
from service.staff.alerts import raise_alert
from service.treatment.readiness import record_checkin_answer
from service.vocabulary import ACTIVE_REMINDER_STATUSES

CHECKIN_KINDS = ("infection_checkin", "symptom_checkin")
UPCOMING_LIMIT = 50


def _own_reminder(session: Session, actor: Actor, reminder_id: int) -> Reminder:
    reminder = session.get(Reminder, reminder_id)
    if reminder is None or reminder.audience != "patient":
        raise NotFound("Reminder not found")
    actor.ensure_can_see(
        clinic_id=reminder.clinic_id, patient_id=reminder.patient_id, what="Reminder"
    )
    if actor.is_staff:
        raise NotFound("Reminder not found")
    return reminder


def upcoming_reminders(
    session: Session, actor: Actor, *, now: datetime | None = None, limit: int = UPCOMING_LIMIT
) -> list[Reminder]:
    """The patient's next reminders, so the app can also schedule local notifications."""
    actor.require_role("patient")
    return list(
        session.scalars(
            select(Reminder)
            .where(
                Reminder.patient_id == actor.patient_id,
                Reminder.audience == "patient",
                Reminder.status.in_(ACTIVE_REMINDER_STATUSES),
                Reminder.fire_at >= (now or utcnow()),
            )
            .order_by(Reminder.fire_at, Reminder.id)
            .limit(limit)
        )
    )


def acknowledge(
    session: Session,
    actor: Actor,
    reminder_id: int,
    *,
    response: dict[str, Any] | None,
    now: datetime | None = None,
) -> Reminder:
    """Record the patient's answer; a reported symptom reaches staff at once and flags the dose;
    an infection check-in answers the dose's active_infection readiness item."""
    actor.require_role("patient")
    now = now or utcnow()
    reminder = _own_reminder(session, actor, reminder_id)
    if reminder.acked_at is not None:
        if (reminder.ack_response or None) != (response or None):
            raise Conflict("This reminder was already answered; contact your clinic to change it.")
        return reminder
    if response is not None and reminder.kind not in CHECKIN_KINDS:
        raise ValidationFailed(
            "Only check-ins take an answer",
            errors={"response": [f"Only {', '.join(CHECKIN_KINDS)} reminders take a response."]},
        )
    reminder.acked_at = now
    reminder.ack_response = response
    if response is not None and reminder.kind == "infection_checkin":
        # The answer is the dose's active_infection readiness item: symptoms block the dose
        # until a clinician reviews; "no symptoms" clears a self-injection.
        record_checkin_answer(session, reminder, response, now)
    if response is not None and response.get("status") == "symptoms":
        _report_to_staff(session, reminder, response, now)
    session.flush()
    return reminder


def _report_to_staff(
    session: Session, reminder: Reminder, response: dict[str, Any], now: datetime
) -> None:
    flagged_dose = None
    if reminder.kind == "infection_checkin" and reminder.subject_type == "dose":
        dose = session.get(Dose, reminder.subject_id)
        if dose is not None and dose.is_open:
            dose.needs_review = True
            flagged_dose = dose.id
    # Codes only: the patient's own words stay on the reminder, behind staff access.
    raise_alert(
        session,
        clinic_id=reminder.clinic_id,
        patient_id=reminder.patient_id,
        kind="patient_reported",
        subject=("reminder", reminder.id),
        details={
            "reminder_kind": reminder.kind,
            "symptoms": list(response.get("symptoms") or []),
            "dose_flagged_for_review": flagged_dose,
        },
        now=now,
    )


def list_patient_reminders(
    session: Session, actor: Actor, patient_id: int, *, page: int, page_size: int
) -> Page[Reminder]:
    actor.require_staff()
    patient = get_patient(session, actor, patient_id)
    stmt = (
        select(Reminder)
        .where(Reminder.patient_id == patient.id)
        .options(selectinload(Reminder.deliveries))
        .order_by(Reminder.fire_at.desc(), Reminder.id.desc())
    )
    return paginate(session, stmt, page=page, page_size=page_size)

"""Use cases for patients: enrol, list, read, update."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from service.core.access import Actor
from service.core.paging import Page, paginate
from service.errors import AlreadyExists, Forbidden, NotFound, ValidationFailed
from service.models import Dose, Patient, TreatmentPlan
from service.reminders.derive import sync_patient_reminders

# A change to any of these moves the patient's future reminders.
REMINDER_PREFERENCES = frozenset(
    {
        "time_zone",
        "reminder_time",
        "quiet_start",
        "quiet_end",
        "reminder_channels",
        "dose_lead_days",
    }
)


def patient_loader_options() -> list[Any]:
    """What the patient body dumps (from its plans: follow-ups, given doses, the monitoring and
    checklist that say what continues after a plan), loaded up front."""
    plans = selectinload(Patient.plans)
    # A plan's few follow-ups and a dose's one record ride in their parent's statement.
    return [
        plans.joinedload(TreatmentPlan.follow_ups),
        plans.selectinload(TreatmentPlan.monitoring_tasks),
        plans.selectinload(TreatmentPlan.screening_items),
        plans.selectinload(TreatmentPlan.doses).joinedload(Dose.administration),
    ]


def enrol_patient(session: Session, actor: Actor, *, mrn: str, **fields: Any) -> Patient:
    actor.require_staff()
    if session.scalar(
        select(Patient.id).where(Patient.clinic_id == actor.clinic_id, Patient.mrn == mrn)
    ):
        raise AlreadyExists(
            "A patient with this MRN is already enrolled at the clinic",
            errors={"mrn": ["Already used at this clinic."]},
        )
    patient = Patient(clinic_id=actor.clinic_id, mrn=mrn, **fields)
    session.add(patient)
    session.flush()
    return patient


def get_patient(session: Session, actor: Actor, patient_id: int) -> Patient:
    return visible_patient(session, actor, patient_id, options=patient_loader_options())


def visible_patient(
    session: Session, actor: Actor, patient_id: int, *, options: list[Any] | None = None
) -> Patient:
    """The patient if the actor may see them; without `options`, none of what the patient's
    own body dumps is loaded (for a check before reading something else of theirs)."""
    patient = session.get(Patient, patient_id, options=options)
    if patient is None:
        raise NotFound("Patient not found")
    actor.ensure_can_see(clinic_id=patient.clinic_id, patient_id=patient.id, what="Patient")
    return patient


def list_patients(
    session: Session, actor: Actor, *, page: int, page_size: int, q: str | None = None
) -> Page[Patient]:
    actor.require_staff()
    stmt = (
        select(Patient)
        .where(Patient.clinic_id == actor.clinic_id)
        .options(*patient_loader_options())
    )
    if q:
        pattern = f"%{q.lower()}%"
        stmt = stmt.where(
            or_(
                Patient.mrn.ilike(pattern),
                Patient.family_name.ilike(pattern),
                Patient.given_name.ilike(pattern),
            )
        )
    stmt = stmt.order_by(Patient.family_name, Patient.given_name, Patient.id)
    return paginate(session, stmt, page=page, page_size=page_size)


def update_patient(
    session: Session, actor: Actor, patient: Patient, changes: dict[str, Any]
) -> Patient:
    actor.require_staff()
    if "mrn" in changes and changes["mrn"] != patient.mrn:
        clash = session.scalar(
            select(Patient.id).where(
                Patient.clinic_id == patient.clinic_id, Patient.mrn == changes["mrn"]
            )
        )
        if clash:
            raise AlreadyExists(errors={"mrn": ["Already used at this clinic."]})
    for name, value in changes.items():
        setattr(patient, name, value)
    session.flush()
    if REMINDER_PREFERENCES & changes.keys():
        sync_patient_reminders(session, patient)
    return patient


def update_my_preferences(session: Session, actor: Actor, changes: dict[str, Any]) -> Patient:
    """A patient changes their own time zone and reminder preferences (nothing else of their
    record); their reminders still to come move to the new local time in the new zone."""
    if actor.is_staff or actor.patient_id is None:
        raise Forbidden("Only a patient's account has reminder preferences")
    read_only = sorted(changes.keys() - REMINDER_PREFERENCES)
    if read_only:
        raise ValidationFailed(
            errors={name: ["Only the clinic can change this."] for name in read_only}
        )
    patient = get_patient(session, actor, actor.patient_id)
    changed = {name for name, value in changes.items() if getattr(patient, name) != value}
    for name in changed:
        setattr(patient, name, changes[name])
    session.flush()
    if changed:
        sync_patient_reminders(session, patient)
    return patient

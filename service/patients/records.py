"""Use cases for patients: enrol, list, read, update."""

from __future__ import annotations

from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from service.core.access import Actor
from service.core.paging import Page, paginate
from service.errors import AlreadyExists, NotFound
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
    return [
        plans.selectinload(TreatmentPlan.follow_ups),
        plans.selectinload(TreatmentPlan.monitoring_tasks),
        plans.selectinload(TreatmentPlan.screening_items),
        plans.selectinload(TreatmentPlan.doses).selectinload(Dose.administration),
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
    patient = session.get(Patient, patient_id, options=patient_loader_options())
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

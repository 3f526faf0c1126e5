"""A patient's record as a FHIR R4B Bundle (type collection), every resource validated by
constructing it with `fhir.resources`.

Patient; per plan a CarePlan (status mapped) and per course a MedicationRequest (the drug coded
from the code table); per booked dose an Appointment; per given dose a MedicationAdministration,
with an infusion reaction as an Observation linked to it (partOf); per lab result and per
recorded screening result an Observation (LOINC and UCUM where the code table has them); per
monitoring task a Task. Every resource carries meta.source naming this service and the clinic.

References inside the Bundle are urn:uuid: URIs derived from the row (uuid5), so an export is
stable: the same row has the same fullUrl in every export.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.careplan import CarePlan
from fhir.resources.R4B.medicationadministration import MedicationAdministration
from fhir.resources.R4B.medicationrequest import MedicationRequest
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.patient import Patient as FhirPatient
from fhir.resources.R4B.resource import Resource
from fhir.resources.R4B.task import Task
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service.core.access import Actor
from service.db import utcnow
from service.errors import Forbidden, NotFound
from service.exports.codes import Coding, code_table
from service.models import Dose, LabResult, Patient, ScreeningItem, TreatmentPlan
from service.models.monitoring import MonitoringTask
from service.protocols import Regimen, expected_chair_minutes, get_regimen
from service.treatment.labs import LAB_CODES
from service.vocabulary import DoseStatus, PlanStatus, Role, TaskStatus

MEDIA_TYPE = "application/fhir+json"
SOURCE = "urn:cd20-monitor"
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:cd20-monitor")
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
# Identifiers of what this service exports: an importer keys its idempotency on them.
LAB_IDENTIFIER = "urn:cd20-monitor:lab-result"
SCREENING_IDENTIFIER = "urn:cd20-monitor:screening-item"
DEFAULT_CHAIR_MINUTES = 60

CAREPLAN_STATUS = {
    PlanStatus.DRAFT: "draft",
    PlanStatus.SCREENING: "draft",
    PlanStatus.READY: "active",
    PlanStatus.ACTIVE: "active",
    PlanStatus.ON_HOLD: "on-hold",
    PlanStatus.COMPLETED: "completed",
    PlanStatus.DISCONTINUED: "revoked",
}
APPOINTMENT_STATUS = {
    DoseStatus.PLANNED: "proposed",
    DoseStatus.BOOKED: "booked",
    DoseStatus.ADMINISTERED: "fulfilled",
    DoseStatus.MISSED: "noshow",
    DoseStatus.CANCELLED: "cancelled",
}
TASK_STATUS = {
    TaskStatus.DUE: "requested",
    TaskStatus.OVERDUE: "requested",
    TaskStatus.DONE: "completed",
    TaskStatus.WAIVED: "cancelled",
}
FLAG_INTERPRETATION = {"low": ("L", "Low"), "normal": ("N", "Normal"), "high": ("H", "High")}
GENDER = {"female": "female", "male": "male", "other": "other"}


def patient_bundle(session: Session, actor: Actor, patient_id: int) -> dict[str, Any]:
    """The patient's Bundle as JSON-ready data (staff of the clinic, or the patient)."""
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("Patient not found")
    actor.ensure_can_see(clinic_id=patient.clinic_id, patient_id=patient.id, what="Patient")
    return _Export(session, patient).bundle()


def my_bundle(session: Session, actor: Actor) -> dict[str, Any]:
    if actor.role != Role.PATIENT or actor.patient_id is None:
        raise Forbidden("This is the patient's own record; staff use /patients/{id}/fhir")
    return patient_bundle(session, actor, actor.patient_id)


def urn(kind: str, row_id: int | str) -> str:
    return f"urn:uuid:{uuid.uuid5(NAMESPACE, f'{kind}/{row_id}')}"


def _ref(kind: str, row_id: int | str) -> dict[str, str]:
    return {"reference": urn(kind, row_id)}


def _instant(value: datetime) -> str:
    return value.isoformat()


class _Export:
    def __init__(self, session: Session, patient: Patient) -> None:
        self.session = session
        self.patient = patient
        self.codes = code_table()
        self.meta = {"source": f"{SOURCE}:clinic:{patient.clinic_id}"}
        self.entries: list[tuple[str, Resource]] = []

    def add(
        self, kind: str, row_id: int | str, model: type[Resource], data: dict[str, Any]
    ) -> None:
        data = {"resourceType": model.get_resource_type(), "id": str(row_id), **data}
        data.setdefault("meta", self.meta)
        self.entries.append((urn(kind, row_id), model.model_validate(data)))

    def bundle(self) -> dict[str, Any]:
        self._patient()
        plans = self.session.scalars(
            select(TreatmentPlan)
            .where(TreatmentPlan.patient_id == self.patient.id)
            .options(
                selectinload(TreatmentPlan.doses).selectinload(Dose.administration),
                selectinload(TreatmentPlan.monitoring_tasks),
                selectinload(TreatmentPlan.screening_items),
            )
            .order_by(TreatmentPlan.id)
        ).all()
        for plan in plans:
            self._plan(plan)
        labs = self.session.scalars(
            select(LabResult)
            .where(LabResult.patient_id == self.patient.id)
            .order_by(LabResult.taken_at, LabResult.id)
        ).all()
        for lab in labs:
            self._lab(lab)
        bundle = Bundle.model_validate(
            {
                "resourceType": "Bundle",
                "id": str(uuid.uuid4()),
                "meta": {**self.meta, "lastUpdated": _instant(utcnow())},
                "type": "collection",
                "timestamp": _instant(utcnow()),
                "entry": [
                    {"fullUrl": full_url, "resource": resource.model_dump(mode="json")}
                    for full_url, resource in self.entries
                ],
            }
        )
        data: dict[str, Any] = bundle.model_dump(mode="json", exclude_none=True)
        return data

    # --- resources ----------------------------------------------------------------------------

    def _patient(self) -> None:
        patient = self.patient
        telecom = []
        if patient.email:
            telecom.append({"system": "email", "value": patient.email})
        if patient.phone:
            telecom.append({"system": "phone", "value": patient.phone})
        data: dict[str, Any] = {
            "identifier": [
                {
                    "use": "usual",
                    "type": {"text": "Medical record number"},
                    "system": f"{SOURCE}:clinic:{patient.clinic_id}:mrn",
                    "value": patient.mrn,
                }
            ],
            "name": [{"family": patient.family_name, "given": [patient.given_name]}],
            "birthDate": patient.birth_date.isoformat(),
            "gender": GENDER.get((patient.sex or "").lower(), "unknown"),
        }
        if telecom:
            data["telecom"] = telecom
        self.add("Patient", patient.id, FhirPatient, data)

    def _drug(self, regimen: Regimen) -> dict[str, Any]:
        codings = self.codes.drugs.get(regimen.drug, ())
        concept: dict[str, Any] = {"text": f"{regimen.drug} ({regimen.brand}), {regimen.route}"}
        if codings:
            concept["coding"] = [c.as_fhir() for c in codings]
        return concept

    def _plan(self, plan: TreatmentPlan) -> None:
        regimen = get_regimen(plan.regimen_code)
        subject = _ref("Patient", self.patient.id)
        courses: dict[int, list[Dose]] = defaultdict(list)
        for dose in plan.doses:
            courses[dose.course].append(dose)
        activities = [{"reference": _ref("MedicationRequest", f"{plan.id}-{c}")} for c in courses]
        activities += [{"reference": _ref("Task", t.id)} for t in plan.monitoring_tasks]
        careplan: dict[str, Any] = {
            "status": CAREPLAN_STATUS.get(PlanStatus(plan.status), "unknown"),
            "intent": "plan",
            "title": f"{regimen.drug} ({plan.regimen_code}, {plan.variant})",
            "subject": subject,
            "period": {"start": plan.start_date.isoformat()},
            "created": _instant(plan.created_at),
        }
        if activities:
            careplan["activity"] = activities
        self.add("CarePlan", plan.id, CarePlan, careplan)

        for course, doses in courses.items():
            self._course(plan, regimen, course, doses)
        for dose in plan.doses:
            if dose.appointment_at is not None:
                self._appointment(dose, regimen)
            if dose.administration is not None:
                self._administration(plan, dose, regimen)
        for item in plan.screening_items:
            if item.result is not None:
                self._screening(item)
        for task in plan.monitoring_tasks:
            self._task(plan, task, regimen)

    def _course(
        self, plan: TreatmentPlan, regimen: Regimen, course: int, doses: list[Dose]
    ) -> None:
        statuses = {dose.status for dose in doses}
        if statuses <= {DoseStatus.CANCELLED, DoseStatus.MISSED}:
            status = "cancelled"
        elif not statuses & {DoseStatus.PLANNED, DoseStatus.BOOKED}:
            status = "completed"
        elif plan.status == PlanStatus.ON_HOLD:
            status = "on-hold"
        elif plan.status in (PlanStatus.DRAFT, PlanStatus.SCREENING):
            status = "draft"
        else:
            status = "active"
        self.add(
            "MedicationRequest",
            f"{plan.id}-{course}",
            MedicationRequest,
            {
                "status": status,
                "intent": "plan",
                "medicationCodeableConcept": self._drug(regimen),
                "subject": _ref("Patient", self.patient.id),
                "basedOn": [_ref("CarePlan", plan.id)],
                "groupIdentifier": {"system": f"{SOURCE}:plan:{plan.id}", "value": str(course)},
                "dosageInstruction": [
                    {
                        "sequence": dose.sequence,
                        "text": f"Dose {dose.sequence}: {dose.amount_mg} mg {regimen.route}",
                        "timing": {"event": [dose.due_date.isoformat()]},
                        "doseAndRate": [{"doseQuantity": self._mg(dose.amount_mg)}],
                    }
                    for dose in doses
                ],
            },
        )

    def _mg(self, amount: float) -> dict[str, Any]:
        return {"value": amount, "unit": "mg", "system": self.codes.ucum, "code": "mg"}

    def _appointment(self, dose: Dose, regimen: Regimen) -> None:
        assert dose.appointment_at is not None
        minutes = expected_chair_minutes(regimen, dose.as_planned()) or DEFAULT_CHAIR_MINUTES
        data: dict[str, Any] = {
            "status": APPOINTMENT_STATUS[DoseStatus(dose.status)],
            "description": f"{regimen.drug} dose {dose.sequence}, {dose.amount_mg} mg",
            "start": _instant(dose.appointment_at),
            "end": _instant(dose.appointment_at + timedelta(minutes=minutes)),
            "minutesDuration": minutes,
            "basedOn": [_ref("MedicationRequest", f"{dose.plan_id}-{dose.course}")],
            "participant": [
                {"actor": _ref("Patient", self.patient.id), "status": "accepted"},
            ],
        }
        if dose.location:
            data["comment"] = dose.location
        self.add("Appointment", dose.id, Appointment, data)

    def _administration(self, plan: TreatmentPlan, dose: Dose, regimen: Regimen) -> None:
        given = dose.administration
        assert given is not None
        data: dict[str, Any] = {
            "status": "completed",
            "medicationCodeableConcept": self._drug(regimen),
            "subject": _ref("Patient", self.patient.id),
            "effectiveDateTime": _instant(given.administered_at),
            "request": _ref("MedicationRequest", f"{plan.id}-{dose.course}"),
            "dosage": {"route": {"text": regimen.route}, "dose": self._mg(given.amount_mg)},
        }
        self.add("MedicationAdministration", dose.id, MedicationAdministration, data)
        if given.reaction_grade and given.reaction_grade != "none":
            local = Coding(self.codes.systems["local_lab"], "infusion_reaction", None)
            reaction: dict[str, Any] = {
                "status": "final",
                "code": {"coding": [local.as_fhir()], "text": "Infusion reaction"},
                "subject": _ref("Patient", self.patient.id),
                "partOf": [_ref("MedicationAdministration", dose.id)],
                "effectiveDateTime": _instant(given.reaction_onset_at or given.administered_at),
                "valueString": given.reaction_grade,
            }
            self.add("Observation", f"reaction-{dose.id}", Observation, reaction)

    def _screening(self, item: ScreeningItem) -> None:
        codings = self.codes.screening.get(item.code, ())
        local = Coding(self.codes.systems["local_screening"], item.code, item.label)
        code: dict[str, Any] = {
            "coding": [*(c.as_fhir() for c in codings[:1]), local.as_fhir()],
            "text": item.label,
        }
        data: dict[str, Any] = {
            "status": "final",
            "identifier": [{"system": SCREENING_IDENTIFIER, "value": str(item.id)}],
            "category": [_category("laboratory" if codings else "exam")],
            "code": code,
            "subject": _ref("Patient", self.patient.id),
            "basedOn": [_ref("CarePlan", item.plan_id)],
        }
        if item.result_date is not None:
            data["effectiveDateTime"] = item.result_date.isoformat()
        coded = self.codes.results.get(item.result or "")
        if coded is not None:
            snomed, interpretation = coded
            concept: dict[str, Any] = {"text": item.result}
            if snomed is not None:
                concept["coding"] = [snomed.as_fhir()]
            data["valueCodeableConcept"] = concept
            data["interpretation"] = [{"coding": [interpretation.as_fhir()]}]
        elif item.result in FLAG_INTERPRETATION:
            data["valueString"] = item.result
            code_, display = FLAG_INTERPRETATION[item.result]
            interp = Coding(self.codes.systems["interpretation"], code_, display)
            data["interpretation"] = [{"coding": [interp.as_fhir()]}]
        else:
            data["valueString"] = item.result
        self.add("Observation", f"screening-{item.id}", Observation, data)

    def _lab(self, lab: LabResult) -> None:
        mapped = self.codes.labs.get(lab.code)
        label = LAB_CODES[lab.code].label if lab.code in LAB_CODES else lab.code
        local = Coding(self.codes.systems["local_lab"], lab.code, label)
        codings = [local.as_fhir()]
        quantity: dict[str, Any] = {"value": lab.value, "unit": lab.unit}
        if mapped is not None and lab.unit in mapped[1]:
            codings.insert(0, mapped[0].as_fhir())
            quantity.update(system=self.codes.ucum, code=mapped[1][lab.unit])
        data: dict[str, Any] = {
            "status": "final",
            "identifier": [{"system": LAB_IDENTIFIER, "value": str(lab.id)}],
            "category": [_category("laboratory")],
            "code": {"coding": codings, "text": label},
            "subject": _ref("Patient", self.patient.id),
            "effectiveDateTime": _instant(lab.taken_at),
            "valueQuantity": quantity,
        }
        if lab.ref_low is not None or lab.ref_high is not None:
            bounds = {}
            for name, bound in (("low", lab.ref_low), ("high", lab.ref_high)):
                if bound is not None:
                    bounds[name] = {k: v for k, v in quantity.items() if k != "value"}
                    bounds[name]["value"] = bound
            data["referenceRange"] = [bounds]
        if lab.flag in FLAG_INTERPRETATION:
            code_, display = FLAG_INTERPRETATION[lab.flag]
            interp = Coding(self.codes.systems["interpretation"], code_, display)
            data["interpretation"] = [{"coding": [interp.as_fhir()]}]
        self.add("Observation", f"lab-{lab.id}", Observation, data)

    def _task(self, plan: TreatmentPlan, task: MonitoringTask, regimen: Regimen) -> None:
        label = next((r.label for r in regimen.monitoring if r.kind == task.kind), task.kind)
        local = Coding(self.codes.systems["local_task"], task.kind, label)
        data: dict[str, Any] = {
            "status": TASK_STATUS[TaskStatus(task.status)],
            "intent": "plan",
            "code": {"coding": [local.as_fhir()], "text": label},
            "for": _ref("Patient", self.patient.id),
            "basedOn": [_ref("CarePlan", plan.id)],
            "restriction": {"period": {"end": task.due_date.isoformat()}},
            "lastModified": _instant(task.updated_at),
        }
        if task.lab_result_id is not None:
            data["output"] = [
                {
                    "type": {"text": "Lab result"},
                    "valueReference": _ref("Observation", f"lab-{task.lab_result_id}"),
                }
            ]
        self.add("Task", task.id, Task, data)


def _category(code: str) -> dict[str, Any]:
    return {"coding": [{"system": OBSERVATION_CATEGORY, "code": code}]}

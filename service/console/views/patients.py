"""Patients: search, enrol, invite to the app; one patient's page with its plan and doses."""

from __future__ import annotations

from typing import Any

from flask import render_template, request, url_for

from service.accounts.users import invite_patient, normalise_email
from service.clinics.settings import check_time_zone, get_clinic
from service.console.blueprint import bp
from service.console.context import actor, audit_page, db, hold_commit, settings, signed_in
from service.console.forms import Form
from service.console.views.common import attempt, done, posted
from service.errors import DomainError
from service.patients.records import enrol_patient, get_patient, list_patients, update_patient
from service.protocols.catalog import all_regimens
from service.reminders.acknowledgements import list_patient_reminders
from service.treatment.labs import LAB_CODES, list_labs
from service.treatment.monitoring import list_tasks
from service.treatment.plans import next_statuses
from service.vocabulary import ConsultDecision, DoseStatus, values

PAGE_SIZE = 50
# The unit each liver test is entered in on the screening form.
LIVER_UNITS = {"alt": "U/L", "ast": "U/L", "alp": "U/L", "bilirubin": "umol/L"}
SEXES = ("female", "male", "other", "unknown")
# What a dose's own form may close it as (missed is on Today, for the day's chairs).
DOSE_CLOSINGS = values(DoseStatus.SKIPPED, DoseStatus.CANCELLED)


@bp.get("/patients")
@signed_in
def patients() -> Any:
    return render_patients()


def render_patients(
    *, refusal: DomainError | None = None, form: dict[str, Any] | None = None
) -> Any:
    query = (request.args.get("q") or "").strip() or None
    found = list_patients(db(), actor(), page=1, page_size=PAGE_SIZE, q=query)
    audit_page("patient", None)
    clinic = get_clinic(db(), actor())
    page = render_template(
        "console/patients.html",
        found=found,
        query=query or "",
        sexes=SEXES,
        clinic_zone=clinic.time_zone,
        refusal=refusal,
        form=form or {},
    )
    return page, refusal.status if refusal else 200


def _demographics(form: Form) -> dict[str, Any]:
    """The demographics form's fields, checked as the API's patient schema checks them."""
    fields: dict[str, Any] = {
        "mrn": form.text("mrn", required=True, max_length=64),
        "given_name": form.text("given_name", required=True, max_length=100),
        "family_name": form.text("family_name", required=True, max_length=100),
        "birth_date": form.day("birth_date", required=True),
        "sex": form.choice("sex", SEXES, required=False),
        "time_zone": form.text("time_zone", required=True, max_length=64),
    }
    email = form.text("email", max_length=254)
    form.check()
    check_time_zone(fields["time_zone"])
    fields["email"] = normalise_email(email) if email else None
    return fields


@bp.post("/patients")
@signed_in
def enrol() -> Any:
    created: list[int] = []

    def change() -> None:
        fields = _demographics(Form())
        patient = enrol_patient(db(), actor(), **fields)
        created.append(patient.id)

    audit_page("patient", None)
    refusal = attempt(change)
    if refusal is not None:
        return render_patients(refusal=refusal, form=posted("enrol"))
    audit_page("patient", created[0])
    return done("Patient enrolled.", url_for("console.patient", patient_id=created[0]))


@bp.post("/patients/<int:patient_id>/invitation")
@signed_in
def invite(patient_id: int) -> Any:
    audit_page("patient", patient_id, operation="invitation")
    issued = invite_patient(db(), actor(), settings(), patient_id=patient_id)
    hold_commit()
    # The code is shown on this answer only (never stored in clear, never in a redirect).
    return render_template("console/invitation.html", issued=issued, patient_id=patient_id)


@bp.post("/patients/<int:patient_id>/details")
@signed_in
def edit_patient(patient_id: int) -> Any:
    """Demographics and time zone: PATCH /patients/{id}'s use case, with the form's version."""
    patient = get_patient(db(), actor(), patient_id)
    audit_page("patient", patient_id)

    def change() -> None:
        form = Form()
        form.check_version(patient.version)
        fields = _demographics(form)
        changed = {name: v for name, v in fields.items() if getattr(patient, name) != v}
        update_patient(db(), actor(), patient, changed)

    refusal = attempt(change)
    if refusal is not None:
        return render_patient(patient_id, refusal=refusal, form=posted("details"))
    return done("Patient details saved.", url_for("console.patient", patient_id=patient_id))


def render_patient(
    patient_id: int,
    *,
    refusal: DomainError | None = None,
    form: dict[str, Any] | None = None,
    preview: Any = None,
) -> Any:
    audit_page("patient", patient_id)
    patient = get_patient(db(), actor(), patient_id)
    plans = list(patient.plans)
    plan = next((p for p in reversed(plans) if p.is_open), plans[-1] if plans else None)
    tasks = list_tasks(db(), actor(), plan.id, page=1, page_size=PAGE_SIZE).items if plan else []
    labs = list_labs(db(), actor(), patient_id, page=1, page_size=PAGE_SIZE).items
    reminders = list_patient_reminders(db(), actor(), patient_id, page=1, page_size=PAGE_SIZE).items
    page = render_template(
        "console/patient.html",
        patient=patient,
        plan=plan,
        checklist=plan.checklist if plan else None,
        tasks=tasks,
        labs=labs,
        reminders=reminders,
        regimens=all_regimens(),
        refusal=refusal,
        form=form or {},
        preview=preview,
        liver_units=LIVER_UNITS,
        lab_codes=LAB_CODES,
        next_statuses=next_statuses(plan) if plan else [],
        dose_closings=DOSE_CLOSINGS,
        sexes=SEXES,
        consult_decisions=values(ConsultDecision),
    )
    return page, refusal.status if refusal else 200


@bp.get("/patients/<int:patient_id>")
@signed_in
def patient(patient_id: int) -> Any:
    return render_patient(patient_id)

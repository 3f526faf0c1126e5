"""A patient's plan: preview and start it, the screening checklist, override, make ready, and
booking or moving its doses."""

from __future__ import annotations

from typing import Any

from flask import url_for
from marshmallow import ValidationError

from schemas.screening import ConsultSchema
from service.console.blueprint import bp
from service.console.context import actor, audit_page, db, signed_in, zone
from service.console.forms import Form
from service.console.views.common import attempt, done, posted
from service.console.views.patients import DOSE_CLOSINGS, LIVER_UNITS, render_patient
from service.errors import DomainError
from service.treatment.doses import get_dose, update_dose
from service.treatment.plans import (
    PlanRequest,
    create_plan,
    get_plan,
    preview_plan,
    update_plan,
)
from service.treatment.screening import (
    LIVER_TESTS,
    get_screening_item,
    override_screening,
    record_screening_result,
)
from service.vocabulary import PlanStatus, values

# Items whose result follows from their structured record (the liver tests, the consult).
STRUCTURED = ("lft", "hepatology_consult")


def _plan_request(form: Form) -> PlanRequest:
    regimen = form.text("regimen", required=True)
    start = form.day("start_date", required=True)
    notes = form.text("notes")
    form.check()
    assert regimen is not None
    assert start is not None
    return PlanRequest(regimen=regimen, start_date=start, notes=notes)


def _patient_page(plan_id: int) -> str:
    plan = get_plan(db(), actor(), plan_id)
    return url_for("console.patient", patient_id=plan.patient_id)


@bp.post("/patients/<int:patient_id>/plan-preview")
@signed_in
def preview(patient_id: int) -> Any:
    """The schedule the plan would have, shown for a second look before it is saved."""
    try:
        draft = preview_plan(db(), actor(), patient_id, _plan_request(Form()))
    except DomainError as refusal:
        db().rollback()
        return render_patient(patient_id, refusal=refusal, form=posted("plan"))
    db().rollback()  # a preview stores nothing
    return render_patient(patient_id, preview=draft, form=posted("plan"))


@bp.post("/patients/<int:patient_id>/plans")
@signed_in
def start_plan(patient_id: int) -> Any:
    audit_page("patient", patient_id)
    refusal = attempt(lambda: create_plan(db(), actor(), patient_id, _plan_request(Form())))
    if refusal is not None:
        return render_patient(patient_id, refusal=refusal, form=posted("plan"))
    return done("Plan started.", url_for("console.patient", patient_id=patient_id))


def _liver_values(form: Form) -> list[dict[str, Any]]:
    values = []
    for code in LIVER_TESTS:
        value = form.text(f"{code}_value", required=True)
        low = form.text(f"{code}_ref_low")
        high = form.text(f"{code}_ref_high")
        try:
            values.append(
                {
                    "code": code,
                    "value": float(value) if value else 0.0,
                    "unit": form.text(f"{code}_unit") or LIVER_UNITS[code],
                    "ref_low": float(low) if low else None,
                    "ref_high": float(high) if high else None,
                }
            )
        except ValueError:
            form.problems.setdefault(f"{code}_value", []).append("Not a valid number.")
    return values


def _consult(form: Form) -> dict[str, Any] | None:
    """The hepatology consult's fields, read as the API reads its `consult` (ConsultSchema)."""
    raw: dict[str, Any] = {}
    for name in ("consultant", "decision", "monitoring_interval_months"):
        text = form.text(name, max_length=200)
        if text is not None:
            raw[name] = text
    drug = form.text("prophylaxis_drug", max_length=200)
    start = form.text("prophylaxis_start_date")
    stop = form.text("prophylaxis_planned_stop")
    given = {"drug": drug, "start_date": start, "planned_stop": stop}
    if any(given.values()):
        raw["prophylaxis"] = {name: value for name, value in given.items() if value}
    try:
        consult: dict[str, Any] = ConsultSchema().load(raw)
    except ValidationError as error:
        for name, messages in _flat(error.messages):
            form.problems.setdefault(name, []).extend(messages)
        return None
    return consult


def _flat(messages: Any, prefix: str = "consult") -> list[tuple[str, list[str]]]:
    """Marshmallow's nested messages as the API's dotted field names (consult.prophylaxis.drug)."""
    if isinstance(messages, dict):
        return [
            pair
            for name, inner in messages.items()
            for pair in _flat(inner, f"{prefix}.{name}" if name != "_schema" else prefix)
        ]
    return [(prefix, [str(m) for m in messages] if isinstance(messages, list) else [messages])]


@bp.post("/plans/<int:plan_id>/screening/<item_code>")
@signed_in
def record_screening(plan_id: int, item_code: str) -> Any:
    plan = get_plan(db(), actor(), plan_id)
    audit_page("plan", plan_id, subjects=(("plan", plan_id),))

    def change() -> None:
        form = Form()
        form.check_version(plan.version)
        item = get_screening_item(db(), actor(), plan_id, item_code)
        values = _liver_values(form) if item_code == "lft" else None
        consult = _consult(form) if item_code == "hepatology_consult" else None
        result_date = form.day("result_date", required=True)
        form.check()
        assert result_date is not None
        record_screening_result(
            db(),
            actor(),
            item,
            result_date=result_date,
            result=None if item_code in STRUCTURED else form.text("result"),
            value=form.text("value", max_length=64),
            unit=form.text("unit", max_length=32),
            notes=form.text("notes"),
            values=values,
            consult=consult,
        )

    refusal = attempt(change)
    if refusal is not None:
        return render_patient(
            plan.patient_id, refusal=refusal, form=posted(f"screening-{item_code}")
        )
    return done(f"Screening result for {item_code} recorded.", _patient_page(plan_id))


@bp.post("/plans/<int:plan_id>/override")
@signed_in
def override(plan_id: int) -> Any:
    plan = get_plan(db(), actor(), plan_id)
    audit_page("plan", plan_id, operation="override")

    def change() -> None:
        form = Form()
        form.check_version(plan.version)
        override_screening(db(), actor(), plan_id, reason=form.text("reason") or "")

    refusal = attempt(change)
    if refusal is not None:
        return render_patient(plan.patient_id, refusal=refusal, form=posted("override"))
    return done("Override recorded: treatment may go ahead.", _patient_page(plan_id))


@bp.post("/plans/<int:plan_id>/ready")
@signed_in
def make_ready(plan_id: int) -> Any:
    plan = get_plan(db(), actor(), plan_id)
    audit_page("plan", plan_id)

    def change() -> None:
        Form().check_version(plan.version)
        update_plan(db(), actor(), plan, {"status": PlanStatus.READY})

    refusal = attempt(change)
    if refusal is not None:
        return render_patient(plan.patient_id, refusal=refusal, form=posted("ready"))
    return done("The plan is ready: its doses can be confirmed and given.", _patient_page(plan_id))


@bp.post("/doses/<int:dose_id>/booking")
@signed_in
def book(dose_id: int) -> Any:
    dose = get_dose(db(), actor(), dose_id)
    patient_id = dose.plan.patient_id
    audit_page("dose", dose_id)
    moved: list[str] = []

    def change() -> None:
        form = Form()
        form.check_version(dose.version)
        appointment = form.local_moment("appointment_at", zone(), required=True)
        location = form.text("location", max_length=200)
        confirmed = form.flag("confirmed")
        form.check()
        before = {d.id: d.due_date for d in dose.plan.doses}
        changes: dict[str, Any] = {
            "appointment_at": appointment,
            "cascade": form.flag("cascade"),
            "booking": "confirmed" if confirmed else "tentative",
        }
        if location is not None:
            changes["location"] = location
        update_dose(db(), actor(), dose, changes)
        moved.extend(
            f"dose {d.sequence} to {d.due_date.isoformat()}"
            for d in dose.plan.doses
            if d.id != dose.id and before.get(d.id) != d.due_date
        )

    refusal = attempt(change)
    if refusal is not None:
        return render_patient(patient_id, refusal=refusal, form=posted(f"book-{dose_id}"))
    also = f" Later doses moved: {', '.join(moved)}." if moved else ""
    return done(
        f"Dose {dose.sequence} booked.{also}",
        url_for("console.patient", patient_id=patient_id),
    )


@bp.post("/plans/<int:plan_id>/status")
@signed_in
def change_plan_status(plan_id: int) -> Any:
    """Hold, resume or discontinue: PATCH /plans/{id}'s transitions and refusals."""
    plan = get_plan(db(), actor(), plan_id)
    audit_page("plan", plan_id)
    before = plan.status

    def change() -> None:
        form = Form()
        form.check_version(plan.version)
        target = form.choice("status", values(PlanStatus))
        hold_reason = form.text("hold_reason", max_length=200)
        form.check()
        changes: dict[str, Any] = {"status": target}
        if hold_reason is not None:
            changes["hold_reason"] = hold_reason
        update_plan(db(), actor(), plan, changes)

    refusal = attempt(change)
    if refusal is not None:
        return render_patient(plan.patient_id, refusal=refusal, form=posted("plan-status"))
    return done(f"The plan is now {plan.status} (was {before}).", _patient_page(plan_id))


@bp.post("/doses/<int:dose_id>/status")
@signed_in
def close_dose(dose_id: int) -> Any:
    """Skip (a clinician, with a reason) or cancel a dose: PATCH /doses/{id}'s rules."""
    dose = get_dose(db(), actor(), dose_id)
    patient_id = dose.plan.patient_id
    audit_page("dose", dose_id)

    def change() -> None:
        form = Form()
        form.check_version(dose.version)
        status = form.choice("status", DOSE_CLOSINGS)
        reason = form.text("reason", max_length=1000)
        form.check()
        changes: dict[str, Any] = {"status": status}
        if reason is not None:
            changes["reason"] = reason
        update_dose(db(), actor(), dose, changes)

    refusal = attempt(change)
    if refusal is not None:
        return render_patient(patient_id, refusal=refusal, form=posted(f"close-{dose_id}"))
    return done(
        f"Dose {dose.sequence} {dose.status}.", url_for("console.patient", patient_id=patient_id)
    )

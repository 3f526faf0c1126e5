"""Monitoring and labs on a patient's page: record a lab result, complete or waive a task."""

from __future__ import annotations

from typing import Any

from flask import url_for

from service.console.blueprint import bp
from service.console.context import actor, audit_page, db, signed_in, zone
from service.console.forms import Form
from service.console.views.common import attempt, done, posted
from service.console.views.patients import render_patient
from service.treatment.labs import LAB_CODES, record_lab
from service.treatment.monitoring import get_task, update_task
from service.vocabulary import TaskStatus

TASK_OUTCOMES = (TaskStatus.DONE.value, TaskStatus.WAIVED.value)


def _number(form: Form, name: str, *, required: bool = False) -> float | None:
    text = form.text(name, required=required)
    if text is None:
        return None
    try:
        return float(text)
    except ValueError:
        form.problems.setdefault(name, []).append("Not a valid number.")
        return None


@bp.post("/patients/<int:patient_id>/labs")
@signed_in
def record_lab_result(patient_id: int) -> Any:
    audit_page("patient", patient_id)

    def change() -> None:
        form = Form()
        code = form.choice("code", tuple(LAB_CODES))
        value = _number(form, "value", required=True)
        unit = form.text("unit", required=True, max_length=32)
        taken_at = form.local_moment("taken_at", zone(), required=True)
        ref_low, ref_high = _number(form, "ref_low"), _number(form, "ref_high")
        task_id = form.integer("task_id")
        form.check()
        assert code is not None
        assert value is not None
        assert unit is not None
        assert taken_at is not None
        record_lab(
            db(),
            actor(),
            patient_id,
            code=code,
            value=value,
            unit=unit,
            taken_at=taken_at,
            ref_low=ref_low,
            ref_high=ref_high,
            notes=form.text("notes"),
            task_id=task_id,
        )

    refusal = attempt(change)
    if refusal is not None:
        return render_patient(patient_id, refusal=refusal, form=posted("lab"))
    return done("Lab result recorded.", url_for("console.patient", patient_id=patient_id))


@bp.post("/monitoring/<int:task_id>")
@signed_in
def close_task(task_id: int) -> Any:
    task = get_task(db(), actor(), task_id)
    patient_id = task.plan.patient_id
    audit_page("monitoring_task", task_id)

    def change() -> None:
        form = Form()
        form.check_version(task.version)
        status = form.choice("status", TASK_OUTCOMES)
        notes = form.text("notes")
        form.check()
        changes: dict[str, Any] = {"status": status}
        if notes is not None:
            changes["notes"] = notes
        update_task(db(), actor(), task, changes)

    refusal = attempt(change)
    if refusal is not None:
        return render_patient(patient_id, refusal=refusal, form=posted(f"task-{task_id}"))
    return done(
        f"Monitoring task {task.kind} marked {task.status}.",
        url_for("console.patient", patient_id=patient_id),
    )

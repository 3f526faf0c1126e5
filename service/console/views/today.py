"""Today: the day's chairs, each dose's readiness, and the chair's actions (given, missed)."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from flask import redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from service.console.blueprint import bp
from service.console.context import actor, audit_page, db, signed_in, zone
from service.console.forms import Form
from service.console.views.common import attempt, done, posted
from service.errors import DomainError, ValidationFailed
from service.staff.views import staff_schedule
from service.treatment.doses import get_dose, record_administration, update_dose
from service.treatment.readiness import (
    get_readiness,
    override_readiness,
    record_readiness_answer,
)
from service.vocabulary import DoseStatus, ReactionGrade

GRADES = tuple(grade.value for grade in ReactionGrade)


@bp.get("/")
@signed_in
def home() -> Response:
    return redirect(url_for("console.today"))


def _day() -> date | None:
    wanted = request.values.get("date")
    if not wanted:
        return None
    try:
        return date.fromisoformat(wanted)
    except ValueError as exc:
        raise ValidationFailed(errors={"date": ["Not a valid date (YYYY-MM-DD)."]}) from exc


def render_today(
    day: date | None, *, refusal: DomainError | None = None, form: dict[str, Any] | None = None
) -> Any:
    schedule = staff_schedule(db(), actor(), day=day)
    shown = schedule["date"]
    readiness = {
        item["dose"]["id"]: get_readiness(db(), actor(), item["dose"]["id"])
        for item in [*schedule["items"], *schedule["unbooked_due"]]
    }
    # The chair list names patients: it is patient data, audited as the API's schedule is.
    audit_page("staff_view", None)
    page = render_template(
        "console/today.html",
        schedule=schedule,
        readiness=readiness,
        day=shown,
        previous_day=shown - timedelta(days=1),
        next_day=shown + timedelta(days=1),
        grades=GRADES,
        refusal=refusal,
        form=form or {},
    )
    return page, refusal.status if refusal else 200


@bp.get("/today")
@signed_in
def today() -> Any:
    return render_today(_day())


def _back(day: date | None) -> str:
    return url_for("console.today", date=day.isoformat() if day else None)


@bp.post("/doses/<int:dose_id>/administration")
@signed_in
def record_given(dose_id: int) -> Any:
    day = _day()
    dose = get_dose(db(), actor(), dose_id)
    audit_page("dose", dose_id, operation="administration")
    premedications = dose.plan.regimen.premedications

    def change() -> None:
        form = Form()
        given_at = form.local_moment("administered_at", zone(), required=True)
        amount = form.integer("amount_mg", required=True)
        grade = form.choice("reaction_grade", GRADES)
        given = []
        for index, premedication in enumerate(premedications):
            if not form.flag(f"premed_{index}_given"):
                continue
            at = form.local_moment(f"premed_{index}_at", zone(), required=True)
            if at is not None:
                given.append({"drug": premedication.drug, "given_at": at})
        reaction: dict[str, Any] = {"grade": grade or "none"}
        if grade and grade != ReactionGrade.NONE:
            reaction["action"] = form.text("reaction_action", required=True, max_length=64)
            reaction["onset_at"] = form.local_moment("reaction_onset_at", zone())
        form.check_version(dose.version)
        form.check()
        assert given_at is not None
        assert amount is not None
        record_administration(
            db(),
            actor(),
            dose_id,
            administered_at=given_at,
            amount_mg=amount,
            premedications=given,
            reaction=reaction,
            notes=form.text("notes"),
            premedication_exception_reason=form.text("premedication_exception_reason"),
        )

    refusal = attempt(change)
    if refusal is not None:
        return render_today(day, refusal=refusal, form=posted(f"given-{dose_id}"))
    return done(f"Dose {dose.sequence} recorded as given.", _back(day))


@bp.post("/doses/<int:dose_id>/missed")
@signed_in
def mark_missed(dose_id: int) -> Any:
    day = _day()
    dose = get_dose(db(), actor(), dose_id)
    audit_page("dose", dose_id)

    def change() -> None:
        form = Form()
        form.check_version(dose.version)
        update_dose(db(), actor(), dose, {"status": DoseStatus.MISSED})

    refusal = attempt(change)
    if refusal is not None:
        return render_today(day, refusal=refusal, form=posted(f"missed-{dose_id}"))
    return done(f"Dose {dose.sequence} marked missed.", _back(day))


@bp.post("/doses/<int:dose_id>/readiness/<code>")
@signed_in
def answer_readiness(dose_id: int, code: str) -> Any:
    day = _day()
    dose = get_dose(db(), actor(), dose_id)
    audit_page("dose", dose_id, operation="readiness")
    back = request.form.get("back") or ""

    def change() -> None:
        form = Form()
        result = form.text("result", required=True)
        result_date = form.day("result_date", required=True)
        form.check()
        assert result is not None
        assert result_date is not None
        record_readiness_answer(
            db(), actor(), dose_id, code, result=result, result_date=result_date
        )

    refusal = attempt(change)
    if refusal is not None:
        return render_today(day, refusal=refusal, form=posted(f"ready-{dose_id}-{code}"))
    target = back if back.startswith("/console/") else _back(day)
    return done(f"Dose {dose.sequence}: {code} recorded.", target)


@bp.post("/doses/<int:dose_id>/readiness-override")
@signed_in
def override_dose_readiness(dose_id: int) -> Any:
    """A clinician gives the dose although items are open (the API's rules, its refusals)."""
    day = _day()
    audit_page("dose", dose_id, operation="override")
    reason = Form().text("reason") or ""
    refusal = attempt(lambda: override_readiness(db(), actor(), dose_id, reason=reason))
    if refusal is not None:
        return render_today(day, refusal=refusal, form=posted(f"override-{dose_id}"))
    return done("Readiness override recorded.", _back(day))

"""The worklist: every entry of the staff worklist, grouped, linked, with resolve actions."""

from __future__ import annotations

from typing import Any

from flask import render_template, url_for

from service.console.blueprint import bp
from service.console.context import actor, audit_page, db, signed_in
from service.console.views.common import attempt, done
from service.staff.views import resolve_alert, staff_worklist

# Section -> heading, in the order the page shows them.
SECTIONS = {
    "alerts": "Alerts",
    "checklists": "Screening checklists blocking a dose soon",
    "not_made_ready": "Cleared but not made ready",
    "readiness_open": "Doses in the next days with readiness open",
    "overdue_doses": "Overdue doses",
    "overdue_tasks": "Overdue monitoring",
    "observation_missing": "Observation time missing",
}


@bp.get("/worklist")
@signed_in
def worklist() -> Any:
    return render_worklist()


def render_worklist(refusal: Any = None) -> Any:
    entries = staff_worklist(db(), actor())
    audit_page("staff_view", None)
    page = render_template(
        "console/worklist.html", worklist=entries, sections=SECTIONS, refusal=refusal
    )
    return page, refusal.status if refusal else 200


@bp.post("/alerts/<int:alert_id>/resolve")
@signed_in
def resolve(alert_id: int) -> Any:
    audit_page("staff_alert", alert_id, operation="resolve")
    refusal = attempt(lambda: resolve_alert(db(), actor(), alert_id))
    if refusal is not None:
        return render_worklist(refusal)
    return done("Alert resolved.", url_for("console.worklist"))

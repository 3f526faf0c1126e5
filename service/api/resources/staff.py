"""Staff views: the day's chair list, the worklist, and resolving alerts."""

from __future__ import annotations

from typing import Any

from flask import jsonify
from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.staff import (
    ScheduleArgsSchema,
    ScheduleSchema,
    StaffAlertSchema,
    WorklistArgsSchema,
    WorklistSchema,
    schedule_body,
    worklist_body,
)
from service.api.context import actor, db, login_required
from service.api.contract import STAFF, operation
from service.staff import views

blp = Blueprint("staff", __name__, url_prefix="/staff", description="Staff views")


@blp.route("/schedule")
class Schedule(MethodView):
    decorators = [login_required]

    @operation("getStaffSchedule", STAFF)
    @blp.arguments(ScheduleArgsSchema(), location="query")
    @blp.response(200, ScheduleSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """List the day's doses with checklist state, premedication and chair time."""
        # Rendered without the schema's per-field dump: see schedule_body.
        return jsonify(schedule_body(views.staff_schedule(db(), actor(), day=args.get("date"))))


@blp.route("/worklist")
class Worklist(MethodView):
    decorators = [login_required]

    @operation("getWorklist", STAFF)
    @blp.arguments(WorklistArgsSchema(), location="query")
    @blp.response(200, WorklistSchema)
    def get(self, args: dict[str, Any]) -> Any:
        """List blocked checklists, overdue doses and tasks, and open alerts."""
        return jsonify(worklist_body(views.staff_worklist(db(), actor(), **args)))


@blp.route("/alerts/<int:alert_id>/resolve")
class ResolveAlert(MethodView):
    decorators = [login_required]

    @operation("resolveAlert", STAFF)
    @blp.response(200, StaffAlertSchema)
    def post(self, alert_id: int) -> Any:
        """Resolve a staff alert."""
        alert = views.resolve_alert(db(), actor(), alert_id)
        db().commit()
        return alert

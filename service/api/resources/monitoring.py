"""Monitoring tasks of a plan: list, read, and (staff) complete, waive, reopen or move."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.common import page_of, row_version
from schemas.monitoring import (
    MonitoringQueryArgsSchema,
    MonitoringTaskSchema,
    MonitoringTaskUpdateSchema,
)
from service.api.context import actor, db, login_required
from service.api.contract import PATIENT_APP, STAFF, operation
from service.api.middleware import conditional
from service.treatment import monitoring

blp = Blueprint("monitoring", __name__, description="Monitoring tasks")


@blp.route("/plans/<int:plan_id>/monitoring")
class PlanMonitoring(MethodView):
    decorators = [login_required]

    @operation("listPlanMonitoring", STAFF, PATIENT_APP)
    @blp.arguments(MonitoringQueryArgsSchema(), location="query")
    @blp.response(200, page_of(MonitoringTaskSchema))
    def get(self, args: dict[str, Any], plan_id: int) -> Any:
        """List a plan's monitoring tasks, soonest first."""
        return monitoring.list_tasks(db(), actor(), plan_id, **args)


@blp.route("/monitoring/<int:task_id>")
class MonitoringItem(MethodView):
    decorators = [login_required]

    @operation("getMonitoringTask", STAFF, PATIENT_APP)
    @blp.etag
    @blp.response(200, MonitoringTaskSchema)
    def get(self, task_id: int) -> Any:
        """Read a monitoring task."""
        return monitoring.get_task(db(), actor(), task_id)

    @operation("updateMonitoringTask", STAFF, refusals={409: ("invalid_transition",)})
    @blp.etag
    @blp.arguments(MonitoringTaskUpdateSchema())
    @blp.response(200, MonitoringTaskSchema)
    def patch(self, changes: dict[str, Any], task_id: int) -> Any:
        """Complete, waive (notes: the reason), reopen or move a monitoring task."""
        task = monitoring.get_task(db(), actor(), task_id)
        conditional.check_if_match(
            blp, row_version("monitoring_task", task), task, MonitoringTaskSchema
        )
        monitoring.update_task(db(), actor(), task, changes)
        db().commit()
        return task

"""A patient's lab results: list (newest first) and record (staff)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.common import page_of
from schemas.labs import LabQueryArgsSchema, LabResultCreateSchema, LabResultSchema
from service.api.context import actor, db, login_required
from service.api.contract import PATIENT_APP, STAFF, operation
from service.treatment import labs

blp = Blueprint("labs", __name__, description="Lab results")


@blp.route("/patients/<int:patient_id>/labs")
class PatientLabs(MethodView):
    decorators = [login_required]

    @operation("listLabResults", STAFF, PATIENT_APP)
    @blp.arguments(LabQueryArgsSchema(), location="query")
    @blp.response(200, page_of(LabResultSchema))
    def get(self, args: dict[str, Any], patient_id: int) -> Any:
        """List a patient's lab results, newest first."""
        return labs.list_labs(db(), actor(), patient_id, **args)

    @operation("recordLabResult", STAFF, refusals={409: ("invalid_transition",)})
    @blp.arguments(LabResultCreateSchema())
    @blp.response(201, LabResultSchema)
    def post(self, data: dict[str, Any], patient_id: int) -> Any:
        """Record a lab result; out of range raises a staff alert, task_id completes a task."""
        result = labs.record_lab(db(), actor(), patient_id, **data)
        db().commit()
        return result

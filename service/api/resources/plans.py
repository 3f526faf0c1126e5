"""Treatment plans: create (or preview) for a patient, read, change status or start date."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.common import page_of, row_version
from schemas.monitoring import FollowUpEndSchema, FollowUpSchema
from schemas.plans import (
    PlanCreateSchema,
    PlanPreviewArgsSchema,
    PlanPreviewSchema,
    PlanQueryArgsSchema,
    PlanSchema,
    PlanUpdateSchema,
)
from service.api.context import actor, caller, db, login_required
from service.api.contract import PATIENT_APP, STAFF, operation
from service.api.middleware import conditional, rendered
from service.api.middleware.conditional import NOT_MODIFIED
from service.patients import freshness, records
from service.treatment import monitoring, plans

blp = Blueprint("plans", __name__, description="Treatment plans")


@blp.route("/patients/<int:patient_id>/plans")
class PatientPlans(MethodView):
    decorators = [login_required]

    @operation("listPatientPlans", STAFF, PATIENT_APP)
    @blp.arguments(PlanQueryArgsSchema(), location="query")
    @blp.response(200, page_of(PlanSchema))
    @blp.alt_response(304, description=NOT_MODIFIED)
    def get(self, args: dict[str, Any], patient_id: int) -> Any:
        """List a patient's treatment plans."""
        patient = records.visible_patient(db(), actor(), patient_id)
        cached = conditional.unchanged((freshness.patient_plans_stamp(db(), patient.id), args))
        return cached or plans.list_patient_plans(db(), actor(), patient_id, **args)

    @operation(
        "createPlan",
        STAFF,
        description="""
        Start a treatment plan from a regimen: its screening checklist, doses and monitoring.

        With `?preview=true` nothing is stored and the answer is 200 with a PlanPreview (kept
        for existing clients; new ones call previewPlan, which answers only that).
        """,
        refusals={409: ("already_exists", "contraindicated")},
    )
    @blp.arguments(PlanPreviewArgsSchema(), location="query")
    @blp.arguments(PlanCreateSchema())
    @blp.response(201, PlanSchema)
    @blp.alt_response(200, schema=PlanPreviewSchema, description="?preview=true: nothing is stored")
    def post(self, query: dict[str, Any], data: dict[str, Any], patient_id: int) -> Any:
        """Start a treatment plan from a regimen (or preview it)."""
        if query["preview"]:
            return plans.preview_plan(db(), actor(), patient_id, plans.PlanRequest(**data)), 200
        plan = plans.create_plan(db(), actor(), patient_id, plans.PlanRequest(**data))
        db().commit()
        return plan


@blp.route("/patients/<int:patient_id>/plans/preview")
class PatientPlanPreview(MethodView):
    decorators = [login_required]

    @operation(
        "previewPlan",
        STAFF,
        description="""
        The plan createPlan would store for this body (its checklist, doses and monitoring),
        computed and not stored: ids, version and timestamps are null. It does not check for
        an open plan or a contraindicating history, which only createPlan refuses.
        """,
    )
    @blp.arguments(PlanCreateSchema())
    @blp.response(200, PlanPreviewSchema)
    def post(self, data: dict[str, Any], patient_id: int) -> Any:
        """Preview a treatment plan: compute it, store nothing."""
        return plans.preview_plan(db(), actor(), patient_id, plans.PlanRequest(**data))


@blp.route("/plans/<int:plan_id>")
class PlanItem(MethodView):
    decorators = [login_required]

    @operation("getPlan", STAFF, PATIENT_APP)
    @blp.etag
    @blp.response(200, PlanSchema)
    def get(self, plan_id: int) -> Any:
        """Read a plan with its checklist, doses and monitoring."""
        stamp = freshness.visible_plan_stamp(db(), caller(), plan_id)
        validator = conditional.strong(blp, stamp)
        return rendered.kept(validator) or plans.get_plan(db(), actor(), plan_id)

    @operation("updatePlan", STAFF, refusals={409: ("invalid_transition", "screening_not_cleared")})
    @blp.etag
    @blp.arguments(PlanUpdateSchema())
    @blp.response(200, PlanSchema)
    def patch(self, changes: dict[str, Any], plan_id: int) -> Any:
        """Change a plan's status, start date, notes or hold reason."""
        plan = plans.get_plan(db(), actor(), plan_id)
        conditional.check_if_match(blp, row_version("plan", plan), freshness.plan_stamp(db(), plan))
        plans.update_plan(db(), actor(), plan, changes)
        db().commit()
        blp.set_etag(freshness.plan_stamp(db(), plan))
        return plan


@blp.route("/me/plans")
class MyPlans(MethodView):
    decorators = [login_required]

    @operation("listMyPlans", PATIENT_APP)
    @blp.arguments(PlanQueryArgsSchema(), location="query")
    @blp.response(200, page_of(PlanSchema))
    @blp.alt_response(304, description=NOT_MODIFIED)
    def get(self, args: dict[str, Any]) -> Any:
        """List the signed-in patient's own plans."""
        stamp = freshness.my_plans_stamp(db(), caller())
        cached = conditional.unchanged((stamp, args))
        return cached or plans.list_my_plans(db(), actor(), **args)


@blp.route("/plans/<int:plan_id>/follow-ups/<string:kind>/end")
class FollowUpEnd(MethodView):
    decorators = [login_required]

    @operation("endFollowUp", STAFF, refusals={409: ("invalid_transition",)})
    @blp.arguments(FollowUpEndSchema())
    @blp.response(200, FollowUpSchema)
    def post(self, data: dict[str, Any], plan_id: int, kind: str) -> Any:
        """End monitoring that continued after the plan (B-cell repletion, or another reason)."""
        follow_up = monitoring.end_follow_up(db(), actor(), plan_id, kind, **data)
        db().commit()
        return follow_up

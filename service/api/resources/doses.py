"""Doses: a plan's schedule, booking and rescheduling, recording a given dose."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.common import page_of, row_version
from schemas.doses import (
    DoseAdministrationSchema,
    DoseChangeSchema,
    DoseQueryArgsSchema,
    DoseSchema,
    DoseUpdateSchema,
    ReadinessAnswerSchema,
    ReadinessItemSchema,
    ReadinessItemStateSchema,
    ReadinessOverrideCreateSchema,
    ReadinessSchema,
)
from service.api.context import actor, db, login_required
from service.api.contract import PATIENT_APP, STAFF, operation
from service.api.middleware import conditional
from service.treatment import doses, readiness

blp = Blueprint("doses", __name__, description="Doses")


@blp.route("/plans/<int:plan_id>/doses")
class PlanDoses(MethodView):
    decorators = [login_required]

    @operation("listPlanDoses", STAFF, PATIENT_APP)
    @blp.arguments(DoseQueryArgsSchema(), location="query")
    @blp.response(200, page_of(DoseSchema))
    def get(self, args: dict[str, Any], plan_id: int) -> Any:
        """List a plan's doses in order."""
        return doses.list_plan_doses(db(), actor(), plan_id, **args)


@blp.route("/doses/<int:dose_id>")
class DoseItem(MethodView):
    decorators = [login_required]

    @operation("getDose", STAFF, PATIENT_APP)
    @blp.etag
    @blp.response(200, DoseSchema)
    def get(self, dose_id: int) -> Any:
        """Read a dose."""
        return doses.get_dose(db(), actor(), dose_id)

    @operation(
        "updateDose",
        STAFF,
        refusals={
            409: (
                "minimum_interval",
                "screening_not_cleared",
                "dose_not_ready",
                "plan_on_hold",
                "invalid_transition",
                "infusion_option_not_allowed",
            ),
        },
    )
    @blp.etag
    @blp.arguments(DoseUpdateSchema())
    @blp.response(200, DoseChangeSchema)
    def patch(self, changes: dict[str, Any], dose_id: int) -> Any:
        """Book, confirm, reschedule, place, miss or cancel a dose."""
        dose = doses.get_dose(db(), actor(), dose_id)
        conditional.check_if_match(blp, row_version("dose", dose), dose, DoseSchema)
        change = doses.update_dose(db(), actor(), dose, changes)
        db().commit()
        blp.set_etag(dose, DoseSchema)
        return change


@blp.route("/doses/<int:dose_id>/administration")
class Administration(MethodView):
    decorators = [login_required]

    @operation(
        "recordAdministration",
        STAFF,
        refusals={
            409: (
                "dose_not_ready",
                "screening_not_cleared",
                "minimum_interval",
                "plan_on_hold",
                "invalid_transition",
                "infusion_option_not_allowed",
            ),
            422: ("premedication_outside_window",),
        },
    )
    @blp.arguments(DoseAdministrationSchema())
    @blp.response(201, DoseChangeSchema)
    def post(self, data: dict[str, Any], dose_id: int) -> Any:
        """Record a dose as given: premedication, reaction, and what it does to the plan."""
        change = doses.record_administration(db(), actor(), dose_id, **data)
        db().commit()
        return change


@blp.route("/doses/<int:dose_id>/readiness")
class Readiness(MethodView):
    decorators = [login_required]

    @operation("getDoseReadiness", STAFF, PATIENT_APP)
    @blp.response(200, ReadinessSchema)
    def get(self, dose_id: int) -> Any:
        """Read the dose's own pre-dose checklist: ready, items, blocking items, override."""
        return readiness.get_readiness(db(), actor(), dose_id)


@blp.route("/doses/<int:dose_id>/readiness/<string:code>")
class ReadinessItem(MethodView):
    decorators = [login_required]

    @operation("getReadinessItem", STAFF, PATIENT_APP)
    @blp.etag
    @blp.response(200, ReadinessItemSchema)
    def get(self, dose_id: int, code: str) -> Any:
        """Read one readiness item of a dose."""
        item = readiness.get_readiness_item(db(), actor(), dose_id, code)
        blp.set_etag(item, ReadinessItemStateSchema)
        return item

    @operation(
        "answerReadinessItem",
        STAFF,
        refusals={409: ("invalid_transition", "conflict")},
    )
    @blp.etag
    @blp.arguments(ReadinessAnswerSchema())
    @blp.response(200, ReadinessItemSchema)
    def put(self, data: dict[str, Any], dose_id: int, code: str) -> Any:
        """Answer a readiness item of a dose (staff)."""
        item = readiness.get_readiness_item(db(), actor(), dose_id, code)
        # The item's `etag` in a list is the ETag GET answers: both are of its state.
        blp.check_etag(item, ReadinessItemStateSchema)
        answered = readiness.record_readiness_answer(db(), actor(), dose_id, code, **data)
        db().commit()
        blp.set_etag(answered, ReadinessItemStateSchema)
        return answered


@blp.route("/doses/<int:dose_id>/readiness/override")
class ReadinessOverride(MethodView):
    decorators = [login_required]

    @operation(
        "overrideReadiness",
        STAFF,
        refusals={409: ("contraindicated", "invalid_transition", "conflict")},
    )
    @blp.arguments(ReadinessOverrideCreateSchema())
    @blp.response(201, ReadinessSchema)
    def post(self, data: dict[str, Any], dose_id: int) -> Any:
        """Override the dose's open readiness items (clinicians, with a reason)."""
        result = readiness.override_readiness(db(), actor(), dose_id, **data)
        db().commit()
        return result

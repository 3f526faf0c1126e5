"""A plan's pre-treatment screening checklist: results and the clinician override."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.common import row_version
from schemas.screening import (
    ScreeningChecklistSchema,
    ScreeningItemSchema,
    ScreeningOverrideCreateSchema,
    ScreeningResultSchema,
)
from service.api.context import actor, db, login_required
from service.api.contract import PATIENT_APP, STAFF, operation
from service.api.middleware import conditional
from service.treatment import screening

blp = Blueprint("screening", __name__, url_prefix="/plans", description="Pre-treatment screening")


@blp.route("/<int:plan_id>/screening")
class ScreeningChecklist(MethodView):
    decorators = [login_required]

    @operation("getScreeningChecklist", STAFF, PATIENT_APP)
    @blp.response(200, ScreeningChecklistSchema)
    def get(self, plan_id: int) -> Any:
        """Read the checklist: outcome, items, blocking items, override."""
        return screening.get_checklist(db(), actor(), plan_id)


@blp.route("/<int:plan_id>/screening/<string:item_code>")
class ChecklistItem(MethodView):
    decorators = [login_required]

    @operation("getScreeningItem", STAFF, PATIENT_APP)
    @blp.etag
    @blp.response(200, ScreeningItemSchema)
    def get(self, plan_id: int, item_code: str) -> Any:
        """Read one checklist item."""
        return screening.get_screening_item(db(), actor(), plan_id, item_code)

    @operation("recordScreeningResult", STAFF, refusals={409: ("invalid_transition", "conflict")})
    @blp.etag
    @blp.arguments(ScreeningResultSchema())
    @blp.response(200, ScreeningItemSchema)
    def put(self, data: dict[str, Any], plan_id: int, item_code: str) -> Any:
        """Record an item's result.

        Most items take `result` and `result_date` (never after the first dose's day). Three
        take structured data: `hbv_dna` a `value` in IU/mL and `unit`; `lft` the `values` of
        ALT, AST, ALP and bilirubin with units and reference ranges (the result, normal or
        abnormal, follows from them); `hepatology_consult` a `consult` (consultant, decision
        prophylaxis | monitor | not_eligible, prophylaxis {drug, start_date, planned_stop},
        monitoring_interval_months 1-3), dated by `result_date`. The hepatitis B items are
        cleared only this way, never by the checklist override.
        """
        item = screening.get_screening_item(db(), actor(), plan_id, item_code)
        conditional.check_if_match(
            blp, row_version("screening_item", item), item, ScreeningItemSchema
        )
        screening.record_screening_result(db(), actor(), item, **data)
        db().commit()
        return item


@blp.route("/<int:plan_id>/screening/override")
class ScreeningOverride(MethodView):
    decorators = [login_required]

    @operation(
        "overrideScreening",
        STAFF,
        refusals={
            409: (
                "contraindicated",
                "override_not_allowed",
                "invalid_transition",
                "conflict",
            ),
        },
    )
    @blp.arguments(ScreeningOverrideCreateSchema())
    @blp.response(201, ScreeningChecklistSchema)
    def post(self, data: dict[str, Any], plan_id: int) -> Any:
        """Override a pending or needs-review checklist (clinicians, with a reason)."""
        checklist = screening.override_screening(db(), actor(), plan_id, **data)
        db().commit()
        return checklist

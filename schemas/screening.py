"""The screening checklist on the wire: items, results, outcome, override."""

from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import ValidationError, fields, validate, validates

from schemas.common import StrictSchema, text
from service.vocabulary import ScreeningOutcome, values

SCREENING_RESULTS = ["negative", "positive", "indeterminate", "done", "low", "normal"]
OUTCOMES = values(ScreeningOutcome)
MIN_OVERRIDE_REASON = 10


class ScreeningItemSchema(StrictSchema):
    code = fields.String(dump_only=True)
    label = fields.String(dump_only=True)
    required = fields.Boolean(dump_only=True)
    status = fields.String(dump_only=True, metadata={"description": "pending or done"})
    result = fields.String(dump_only=True, allow_none=True)
    value = fields.String(dump_only=True, allow_none=True)
    unit = fields.String(dump_only=True, allow_none=True)
    result_date = fields.Date(dump_only=True, allow_none=True)
    notes = fields.String(dump_only=True, allow_none=True)
    outcome = fields.String(
        dump_only=True, metadata={"description": f"One of {', '.join(OUTCOMES)}"}
    )
    recorded_at = fields.DateTime(dump_only=True, allow_none=True)
    recorded_by = fields.Integer(attribute="recorded_by_id", dump_only=True, allow_none=True)


class ScreeningResultSchema(StrictSchema):
    """PUT body: the result of one checklist item."""

    result = fields.String(required=True, validate=validate.OneOf(SCREENING_RESULTS))
    value = text(64, allow_none=True)
    unit = text(32, allow_none=True)
    result_date = fields.Date(required=True)
    notes = text(2000, allow_none=True)

    @validates("result_date")
    def _plausible(self, value: date, **_kwargs: Any) -> None:
        if value.year < 1900:
            raise ValidationError("Must be after 1900.")


class ScreeningBlockingItemSchema(StrictSchema):
    code = fields.String(dump_only=True)
    outcome = fields.String(dump_only=True)


class ScreeningOverrideSchema(StrictSchema):
    reason = fields.String(dump_only=True)
    clinician_id = fields.Integer(dump_only=True)
    created_at = fields.DateTime(dump_only=True)
    outcome_overridden = fields.String(dump_only=True)
    blocking_items = fields.List(fields.Nested(ScreeningBlockingItemSchema), dump_only=True)


class ScreeningChecklistSchema(StrictSchema):
    outcome = fields.String(
        dump_only=True, metadata={"description": f"One of {', '.join(OUTCOMES)}"}
    )
    passes_gate = fields.Boolean(
        dump_only=True,
        metadata={"description": "Cleared, or covered by a clinician's override"},
    )
    items = fields.List(fields.Nested(ScreeningItemSchema), dump_only=True)
    blocking_items = fields.List(fields.Nested(ScreeningBlockingItemSchema), dump_only=True)
    override = fields.Nested(ScreeningOverrideSchema, dump_only=True, allow_none=True)
    override_in_effect = fields.Boolean(dump_only=True)


class ScreeningOverrideCreateSchema(StrictSchema):
    reason = text(2000, required=True)

    @validates("reason")
    def _long_enough(self, value: str, **_kwargs: Any) -> None:
        if len(value.strip()) < MIN_OVERRIDE_REASON:
            raise ValidationError(f"Give the reason in at least {MIN_OVERRIDE_REASON} characters.")

"""The screening checklist on the wire: items, results, outcome, override."""

from __future__ import annotations

from datetime import date
from typing import Any

from marshmallow import ValidationError, fields, validate, validates, validates_schema

from schemas.common import Instant, StrictSchema, Vocabulary, etag_field, text
from service.vocabulary import ConsultDecision, HbvPath, ScreeningOutcome, ScreeningStatus, values

SCREENING_RESULTS = [
    "negative",
    "positive",
    "indeterminate",
    "done",
    "low",
    "normal",
    "abnormal",
    *values(ConsultDecision),
]
OUTCOMES = values(ScreeningOutcome)
MIN_OVERRIDE_REASON = 10
LIVER_TESTS = ["alt", "ast", "alp", "bilirubin"]
MAX_LAB_VALUE = 1e13


class ProphylaxisSchema(StrictSchema):
    drug = text(200, min_length=1, required=True, metadata={"example": "entecavir"})
    start_date = fields.Date(required=True)
    planned_stop = fields.Date(
        allow_none=True,
        metadata={
            "description": "Default when left out: the last anti-CD20 dose plus the regimen's "
            "hbv_prophylaxis_after_last_dose (12 months; 24 for rituximab)"
        },
    )


class ConsultSchema(StrictSchema):
    """The hepatology consult: who, the decision, and for prophylaxis the drug and dates.

    Its day is the item's result_date."""

    consultant = text(200, min_length=1, required=True, metadata={"description": "Who"})
    decision = fields.String(required=True, validate=Vocabulary(ConsultDecision))
    prophylaxis = fields.Nested(ProphylaxisSchema, allow_none=True)
    monitoring_interval_months = fields.Integer(
        allow_none=True,
        validate=validate.Range(min=1, max=3),
        metadata={
            "description": "HBV DNA and ALT every n months (guidelines: 1-3); default: the "
            "regimen's hbv_dna_interval (3 months)"
        },
    )


class LiverTestSchema(StrictSchema):
    code = fields.String(required=True, validate=validate.OneOf(LIVER_TESTS))
    value = fields.Float(
        required=True, validate=validate.Range(min=-MAX_LAB_VALUE, max=MAX_LAB_VALUE)
    )
    unit = text(32, min_length=1, required=True, metadata={"example": "U/L"})
    ref_low = fields.Float(allow_none=True)
    ref_high = fields.Float(allow_none=True)


class LiverTestResultSchema(LiverTestSchema):
    flag = fields.String(dump_only=True, metadata={"description": "low | normal | high"})


class HbvPathwaySchema(StrictSchema):
    path = fields.String(
        validate=Vocabulary(HbvPath),
        dump_only=True,
        metadata={"description": " | ".join(values(HbvPath))},
    )
    reason = fields.String(dump_only=True)
    decision = fields.String(validate=Vocabulary(ConsultDecision), dump_only=True, allow_none=True)
    consult = fields.Dict(dump_only=True, allow_none=True)
    baseline_date = fields.Date(dump_only=True, allow_none=True)
    planned_stop = fields.Date(dump_only=True, allow_none=True)
    planned_stop_source = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "consult, or the setting it was derived from"},
    )
    monitoring_interval_months = fields.Integer(dump_only=True, allow_none=True)


class ScreeningItemSchema(StrictSchema):
    code = fields.String(dump_only=True)
    label = fields.String(dump_only=True)
    required = fields.Boolean(attribute="is_required", dump_only=True)
    status = fields.String(
        validate=Vocabulary(ScreeningStatus),
        dump_only=True,
        metadata={"description": " | ".join(values(ScreeningStatus))},
    )
    result = fields.String(dump_only=True, allow_none=True)
    value = fields.String(dump_only=True, allow_none=True)
    unit = fields.String(dump_only=True, allow_none=True)
    result_date = fields.Date(dump_only=True, allow_none=True)
    notes = fields.String(dump_only=True, allow_none=True)
    outcome = fields.String(
        validate=Vocabulary(ScreeningOutcome),
        dump_only=True,
        metadata={"description": f"One of {', '.join(OUTCOMES)}"},
    )
    recorded_at = Instant(dump_only=True, allow_none=True)
    recorded_by = fields.Integer(attribute="recorded_by_id", dump_only=True, allow_none=True)
    version = fields.Integer(dump_only=True, allow_none=True)
    etag = etag_field("screening_item")
    reason = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "Why the outcome is what it is (expired, window, HBV path)"},
    )
    warning = fields.String(
        dump_only=True, allow_none=True, metadata={"description": "Advisory, never blocking"}
    )
    validity_days = fields.Integer(dump_only=True, allow_none=True)
    valid_until = fields.Date(
        dump_only=True,
        allow_none=True,
        metadata={"description": "The last first-dose day on which this result clears"},
    )
    overridable = fields.Boolean(
        dump_only=True,
        metadata={"description": "False: only its structured record clears it"},
    )
    consult = fields.Method("_consult", dump_only=True, allow_none=True)
    values = fields.Method("_values", dump_only=True, allow_none=True)

    def _consult(self, item: Any) -> Any:
        return (item.details or {}) if item.code == "hepatology_consult" and item.details else None

    def _values(self, item: Any) -> Any:
        if item.code != "lft" or not item.details:
            return None
        return LiverTestResultSchema(many=True).dump(item.details.get("values", []))


class ScreeningResultSchema(StrictSchema):
    """PUT body: the result of one checklist item.

    hepatology_consult takes `consult` (its decision is the result); lft takes `values` (ALT,
    AST, ALP, bilirubin with units and ranges; the result, normal or abnormal, follows); hbv_dna
    takes `value` (IU/mL) and `unit`. A result may not be dated after the first dose.
    """

    result = fields.String(validate=validate.OneOf(SCREENING_RESULTS))
    value = text(64, allow_none=True)
    unit = text(32, allow_none=True)
    result_date = fields.Date(required=True)
    notes = text(2000, allow_none=True)
    consult = fields.Nested(ConsultSchema)
    values = fields.List(fields.Nested(LiverTestSchema), validate=validate.Length(min=1, max=4))

    @validates_schema
    def _result_or_record(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if "result" not in data and "consult" not in data and "values" not in data:
            raise ValidationError("Missing data for required field.", "result")

    @validates("result_date")
    def _plausible(self, value: date, **_kwargs: Any) -> None:
        if value.year < 1900:
            raise ValidationError("Must be after 1900.")


class ScreeningBlockingItemSchema(StrictSchema):
    code = fields.String(dump_only=True)
    outcome = fields.String(validate=Vocabulary(ScreeningOutcome), dump_only=True)


class ScreeningOverrideSchema(StrictSchema):
    reason = fields.String(dump_only=True)
    clinician_id = fields.Integer(dump_only=True)
    created_at = Instant(dump_only=True)
    outcome_overridden = fields.String(validate=Vocabulary(ScreeningOutcome), dump_only=True)
    blocking_items = fields.List(fields.Nested(ScreeningBlockingItemSchema), dump_only=True)


class ScreeningChecklistSchema(StrictSchema):
    outcome = fields.String(
        validate=Vocabulary(ScreeningOutcome),
        dump_only=True,
        metadata={"description": f"One of {', '.join(OUTCOMES)}"},
    )
    passes_gate = fields.Boolean(
        dump_only=True,
        metadata={"description": "Cleared, or covered by a clinician's override"},
    )
    items = fields.List(fields.Nested(ScreeningItemSchema), dump_only=True)
    blocking_items = fields.List(fields.Nested(ScreeningBlockingItemSchema), dump_only=True)
    override = fields.Nested(ScreeningOverrideSchema, dump_only=True, allow_none=True)
    override_in_effect = fields.Boolean(dump_only=True)
    hbv_pathway = fields.Nested(
        HbvPathwaySchema,
        dump_only=True,
        metadata={"description": "Which hepatitis B path applies, why, and the consult"},
    )


class ScreeningOverrideCreateSchema(StrictSchema):
    reason = text(2000, required=True)

    @validates("reason")
    def _long_enough(self, value: str, **_kwargs: Any) -> None:
        if len(value.strip()) < MIN_OVERRIDE_REASON:
            raise ValidationError(f"Give the reason in at least {MIN_OVERRIDE_REASON} characters.")

"""Lab results on the wire."""

from __future__ import annotations

import math
from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from schemas.common import MAX_INT_ID, Instant, PageArgsSchema, StrictSchema, text
from service.treatment.labs import LAB_CODES, lab_code_problems
from service.vocabulary import LabFlag, RangeSource, values

MAX_NOTES = 2000


class Number(fields.Float):
    """A finite JSON number; true/false and numeric strings are refused."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError("Must be a number.")
        result = super()._deserialize(value, attr, data, **kwargs)
        if result is not None and not math.isfinite(result):
            raise ValidationError("Must be a finite number.")
        return result


class LabResultSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    patient_id = fields.Integer(dump_only=True)
    code = fields.String(dump_only=True)
    value = fields.Float(dump_only=True)
    unit = fields.String(dump_only=True)
    ref_low = fields.Float(dump_only=True, allow_none=True)
    ref_high = fields.Float(dump_only=True, allow_none=True)
    flag = fields.String(
        dump_only=True,
        metadata={
            "enum": list(values(LabFlag)),
            "description": "unknown: no reference range known",
        },
    )
    range_source = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={
            "enum": list(values(RangeSource)),
            "description": "request: the range sent with the result; default: a cited default "
            "(see range_reference); null: no range",
        },
    )
    range_reference = fields.String(dump_only=True, allow_none=True)
    taken_at = Instant(dump_only=True)
    notes = fields.String(dump_only=True, allow_none=True)
    task_id = fields.Function(
        lambda result: result.task.id if result.task is not None else None,
        dump_only=True,
        allow_none=True,
    )
    recorded_by_id = fields.Integer(dump_only=True)
    recorded_at = Instant(dump_only=True)


class LabResultCreateSchema(StrictSchema):
    code = fields.String(
        required=True,
        validate=validate.OneOf(sorted(LAB_CODES)),
        metadata={"description": "Lab code; see the enum"},
    )
    value = Number(required=True)
    unit = text(32, min_length=1, required=True, metadata={"description": "Allowed per code"})
    ref_low = Number(allow_none=True, metadata={"description": "In the unit of the value"})
    ref_high = Number(allow_none=True, metadata={"description": "In the unit of the value"})
    taken_at = Instant(
        required=True,
        metadata={"description": "ISO 8601 with a UTC offset; not in the future"},
    )
    notes = text(MAX_NOTES, allow_none=True)
    task_id = fields.Integer(
        strict=True,
        allow_none=True,
        validate=validate.Range(min=1, max=MAX_INT_ID),
        metadata={"description": "A monitoring task of the same patient that this completes"},
    )

    @validates_schema
    def _unit_and_range(self, data: dict[str, Any], **_kwargs: Any) -> None:
        problems = lab_code_problems(data["code"], data["unit"])
        if problems:
            raise ValidationError(problems)
        low, high = data.get("ref_low"), data.get("ref_high")
        if low is not None and high is not None and low > high:
            raise ValidationError("Must not be above ref_high.", "ref_low")


class LabQueryArgsSchema(PageArgsSchema):
    code = fields.String(validate=validate.OneOf(sorted(LAB_CODES)))

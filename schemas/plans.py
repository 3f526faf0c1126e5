"""Treatment plans on the wire: create or preview, read with checklist, doses and monitoring."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from marshmallow import ValidationError, fields, validate, validates

from schemas.common import Instant, PageArgsSchema, StrictSchema, Vocabulary, etag_field, text
from schemas.doses import ReadinessPreviewSchema, ReadinessSchema
from schemas.monitoring import FollowUpSchema
from schemas.screening import ScreeningChecklistSchema
from service.vocabulary import (
    Booking,
    DoseKind,
    DoseStatus,
    PlanStatus,
    ReactionGrade,
    TaskStatus,
    values,
)

PLAN_STATUSES = values(PlanStatus)
# A plan may be entered for someone already on treatment, but not for another century.
EARLIEST_START = date(2000, 1, 1)
LATEST_START_AHEAD = timedelta(days=3 * 366)


def _plausible_start(value: date) -> None:
    if value < EARLIEST_START:
        raise ValidationError(f"Must be on or after {EARLIEST_START.isoformat()}.")
    if value > date.today() + LATEST_START_AHEAD:
        raise ValidationError("Must be within three years from today.")


class PlanDoseSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    sequence = fields.Integer(dump_only=True)
    course = fields.Integer(dump_only=True)
    kind = fields.String(validate=Vocabulary(DoseKind), dump_only=True)
    amount_mg = fields.Integer(dump_only=True)
    due_date = fields.Date(dump_only=True)
    earliest_date = fields.Date(dump_only=True, allow_none=True)
    status = fields.String(validate=Vocabulary(DoseStatus), dump_only=True)
    booking = fields.String(validate=Vocabulary(Booking), dump_only=True, allow_none=True)
    appointment_at = Instant(dump_only=True, allow_none=True)
    location = fields.String(dump_only=True, allow_none=True)
    needs_review = fields.Boolean(dump_only=True)
    missed_on = fields.Date(dump_only=True, allow_none=True)
    readiness = fields.Nested(ReadinessSchema, dump_only=True)
    version = fields.Integer(dump_only=True, allow_none=True)
    etag = etag_field("dose")


class PlanMonitoringTaskSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    kind = fields.String(dump_only=True)
    due_date = fields.Date(dump_only=True)
    status = fields.String(validate=Vocabulary(TaskStatus), dump_only=True)
    after_treatment = fields.Boolean(dump_only=True)
    version = fields.Integer(dump_only=True, allow_none=True)
    etag = etag_field("monitoring_task")


class ReactionHistorySchema(StrictSchema):
    grade = fields.String(validate=Vocabulary(ReactionGrade), dump_only=True)
    drug = fields.String(dump_only=True)
    regimen = fields.String(dump_only=True)
    plan_id = fields.Integer(dump_only=True)
    dose_id = fields.Integer(dump_only=True)
    dose_sequence = fields.Integer(dump_only=True)
    administered_at = Instant(dump_only=True)


class IntervalSchema(StrictSchema):
    months = fields.Integer(dump_only=True)
    weeks = fields.Integer(dump_only=True)
    days = fields.Integer(dump_only=True)


class ContraceptionSchema(StrictSchema):
    advised_until = fields.Date(
        dump_only=True,
        allow_none=True,
        metadata={"description": "Last dose given plus the window; null before any dose"},
    )
    last_dose_date = fields.Date(dump_only=True, allow_none=True)
    window = fields.Nested(IntervalSchema, dump_only=True, allow_none=True)
    option = fields.String(dump_only=True, metadata={"description": "The clinic's option"})
    source = fields.String(dump_only=True)
    treatment_ongoing = fields.Boolean(
        dump_only=True, metadata={"description": "Further doses will move the date"}
    )


class PlanSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    patient_id = fields.Integer(dump_only=True)
    regimen = fields.String(attribute="regimen_code", dump_only=True)
    variant = fields.String(dump_only=True)
    status = fields.String(
        validate=Vocabulary(PlanStatus),
        dump_only=True,
        metadata={"description": " | ".join(PLAN_STATUSES)},
    )
    start_date = fields.Date(dump_only=True)
    settings = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        dump_only=True,
        metadata={"description": "The option chosen for each regimen setting"},
    )
    hold_reason = fields.String(dump_only=True, allow_none=True)
    notes = fields.String(dump_only=True, allow_none=True)
    prescriber_id = fields.Integer(dump_only=True, allow_none=True)
    version = fields.Integer(dump_only=True)
    etag = etag_field("plan")
    created_at = Instant(dump_only=True)
    updated_at = Instant(dump_only=True)
    screening = fields.Nested(ScreeningChecklistSchema, attribute="checklist", dump_only=True)
    doses = fields.List(fields.Nested(PlanDoseSchema), dump_only=True)
    monitoring = fields.List(
        fields.Nested(PlanMonitoringTaskSchema), attribute="monitoring_tasks", dump_only=True
    )
    ended_on = fields.Date(dump_only=True, allow_none=True)
    monitoring_after_treatment = fields.List(
        fields.Nested(FollowUpSchema),
        attribute="follow_ups",
        dump_only=True,
        metadata={"description": "Monitoring that continues after the plan ended"},
    )
    patient_history = fields.List(
        fields.Nested(ReactionHistorySchema),
        dump_only=True,
        metadata={"description": "Infusion reactions under the patient's other plans"},
    )
    contraception = fields.Nested(
        ContraceptionSchema,
        dump_only=True,
        allow_none=True,
        metadata={"description": "For a patient who can become pregnant; else null"},
    )


class PlanDosePreviewSchema(PlanDoseSchema):
    id = fields.Integer(dump_only=True, allow_none=True, metadata={"description": "Always null"})
    readiness = fields.Nested(ReadinessPreviewSchema, dump_only=True)


class PlanMonitoringTaskPreviewSchema(PlanMonitoringTaskSchema):
    id = fields.Integer(dump_only=True, allow_none=True, metadata={"description": "Always null"})


class PlanPreviewSchema(PlanSchema):
    """The plan creating would store, computed and not stored: the same fields as a plan, with
    null where only a stored plan has a value (ids, version, timestamps)."""

    id = fields.Integer(dump_only=True, allow_none=True, metadata={"description": "Always null"})
    version = fields.Integer(dump_only=True, allow_none=True)
    created_at = Instant(dump_only=True, allow_none=True)
    updated_at = Instant(dump_only=True, allow_none=True)
    doses = fields.List(fields.Nested(PlanDosePreviewSchema), dump_only=True)
    monitoring = fields.List(
        fields.Nested(PlanMonitoringTaskPreviewSchema),
        attribute="monitoring_tasks",
        dump_only=True,
    )


class PlanCreateSchema(StrictSchema):
    regimen = text(64, min_length=1, required=True, metadata={"example": "ocrelizumab-iv"})
    start_date = fields.Date(required=True)
    variant = text(64, min_length=1, allow_none=True)
    notes = text(2000, allow_none=True)
    settings = fields.Dict(
        keys=text(64, min_length=1),
        values=text(64, min_length=1),
        validate=validate.Length(max=20),
        metadata={
            "description": "Option name per regimen setting, e.g. {min_interval: five_months}"
        },
    )

    @validates("start_date")
    def _start(self, value: date, **_kwargs: Any) -> None:
        _plausible_start(value)


class PlanPreviewArgsSchema(StrictSchema):
    preview = fields.Boolean(
        load_default=False, metadata={"description": "Compute the plan, store nothing"}
    )


class PlanUpdateSchema(StrictSchema):
    status = fields.String(validate=Vocabulary(PlanStatus))
    start_date = fields.Date()
    notes = text(2000, allow_none=True)
    hold_reason = text(500, allow_none=True)

    @validates("start_date")
    def _start(self, value: date, **_kwargs: Any) -> None:
        _plausible_start(value)


class PlanQueryArgsSchema(PageArgsSchema):
    pass

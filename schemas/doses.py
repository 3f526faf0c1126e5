"""Doses on the wire: the schedule, booking and rescheduling, the record of a given dose."""

from __future__ import annotations

from typing import Any

from marshmallow import (
    ValidationError,
    fields,
    post_dump,
    validate,
    validates,
    validates_schema,
)

from schemas.common import (
    Instant,
    PageArgsSchema,
    StrictSchema,
    Vocabulary,
    digest,
    etag_field,
    text,
)
from service.vocabulary import (
    DOSE_STATUS_CHANGES,
    AnsweredBy,
    Booking,
    DoseKind,
    DoseStatus,
    PlanStatus,
    ReactionGrade,
    ReadinessCode,
    ReadinessStatus,
    ScreeningOutcome,
    values,
)

DOSE_STATUSES = values(DoseStatus)
BOOKINGS = values(Booking)
REACTION_GRADES = values(ReactionGrade)
MAX_AMOUNT_MG = 2000
MAX_OBSERVATION_MINUTES = 24 * 60
MIN_REASON = 10
READINESS_STATUSES = values(ReadinessStatus)
OUTCOMES = values(ScreeningOutcome)
ANSWER_RESULTS = ["negative", "positive", "indeterminate", "done", "low", "normal"]


class ReadinessBlockingItemSchema(StrictSchema):
    code = fields.String(validate=Vocabulary(ReadinessCode), dump_only=True)
    outcome = fields.String(validate=Vocabulary(ScreeningOutcome), dump_only=True)


class ReadinessItemStateSchema(StrictSchema):
    """What a readiness item's ETag is computed from."""

    code = fields.String(validate=Vocabulary(ReadinessCode), dump_only=True)
    label = fields.String(dump_only=True)
    status = fields.String(
        validate=Vocabulary(ReadinessStatus),
        dump_only=True,
        metadata={"description": " | ".join(READINESS_STATUSES)},
    )
    outcome = fields.String(
        validate=Vocabulary(ScreeningOutcome),
        dump_only=True,
        metadata={"description": " | ".join(OUTCOMES)},
    )
    blocks = fields.Boolean(
        dump_only=True, metadata={"description": "Keeps the dose from being given"}
    )
    source = fields.String(dump_only=True)
    note = fields.String(dump_only=True, allow_none=True)
    result = fields.String(dump_only=True, allow_none=True)
    result_date = fields.Date(dump_only=True, allow_none=True)
    answered_by = fields.String(
        validate=Vocabulary(AnsweredBy),
        dump_only=True,
        allow_none=True,
        metadata={"description": "staff | patient"},
    )
    recorded_at = Instant(dump_only=True, allow_none=True)
    recorded_by = fields.Integer(attribute="recorded_by_id", dump_only=True, allow_none=True)
    details = fields.Dict(dump_only=True)
    version = fields.Integer(
        dump_only=True,
        allow_none=True,
        metadata={"description": "The version of its recorded answer; null while none is recorded"},
    )


class ReadinessItemSchema(ReadinessItemStateSchema):
    etag = fields.Function(
        lambda _item: None,
        dump_only=True,
        metadata={"type": "string", "description": "Send as If-Match to answer this item"},
    )

    @post_dump
    def _state_etag(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        """The strong ETag that GET and PUT /doses/{id}/readiness/{code} answer: that of the
        item's state as dumped above (ReadinessItemStateSchema), worked out from the whole
        record, not a row. Hashing the dump here saves dumping every item twice."""
        data["etag"] = f'"{digest({k: v for k, v in data.items() if k != "etag"})}"'
        return data


class ReadinessItemPreviewSchema(ReadinessItemStateSchema):
    etag = fields.Function(
        lambda _item: None,
        dump_only=True,
        allow_none=True,
        metadata={"type": "string", "description": "Always null: a preview stores nothing"},
    )


class ReadinessOverrideSchema(StrictSchema):
    reason = fields.String(dump_only=True)
    clinician_id = fields.Integer(dump_only=True)
    created_at = Instant(dump_only=True)
    blocking_items = fields.List(fields.Nested(ReadinessBlockingItemSchema), dump_only=True)


class ReadinessSchema(StrictSchema):
    ready = fields.Boolean(
        dump_only=True,
        metadata={"description": "No item blocks, or a clinician's override covers them"},
    )
    items = fields.List(fields.Nested(ReadinessItemSchema), dump_only=True)
    blocking_items = fields.List(fields.Nested(ReadinessBlockingItemSchema), dump_only=True)
    override = fields.Nested(ReadinessOverrideSchema, dump_only=True, allow_none=True)
    override_in_effect = fields.Boolean(dump_only=True)

    @post_dump(pass_original=True)
    def _no_etags_in_a_preview(
        self, data: dict[str, Any], readiness: Any, **_kwargs: Any
    ) -> dict[str, Any]:
        # A previewed dose (not stored) has nothing to answer; `?preview=true` dumps it
        # through the plan's schema, so the dose decides, not the schema.
        if readiness.dose.id is None:
            for item in data.get("items", []):
                item["etag"] = None
        return data


class ReadinessPreviewSchema(ReadinessSchema):
    """A previewed dose's readiness: nothing to answer yet, so no item has an etag."""

    items = fields.List(fields.Nested(ReadinessItemPreviewSchema), dump_only=True)


class ReadinessAnswerSchema(StrictSchema):
    """PUT body: staff's answer to one readiness item of a dose."""

    result = fields.String(required=True, validate=validate.OneOf(ANSWER_RESULTS))
    result_date = fields.Date(required=True)
    notes = text(2000, allow_none=True)


class ReadinessOverrideCreateSchema(StrictSchema):
    reason = text(2000, required=True)

    @validates("reason")
    def _long_enough(self, value: str, **_kwargs: Any) -> None:
        if len(value.strip()) < MIN_REASON:
            raise ValidationError(f"Give the reason in at least {MIN_REASON} characters.")


class PremedicationGivenSchema(StrictSchema):
    drug = text(100, min_length=1, required=True)
    given_at = Instant(required=True)
    dose_mg = fields.Float(
        allow_none=True, validate=validate.Range(min=0, max=10_000, min_inclusive=False)
    )
    route = text(16, allow_none=True)
    minutes_before = fields.Integer(
        dump_only=True, metadata={"description": "Minutes before administered_at"}
    )


class InfusionReactionSchema(StrictSchema):
    grade = fields.String(required=True, validate=Vocabulary(ReactionGrade))
    onset_at = Instant(allow_none=True)
    action = text(64, allow_none=True)
    notes = text(2000, allow_none=True)


class DoseAdministrationSchema(StrictSchema):
    administered_at = Instant(required=True)
    amount_mg = fields.Integer(
        required=True, strict=True, validate=validate.Range(min=1, max=MAX_AMOUNT_MG)
    )
    premedications = fields.List(
        fields.Nested(PremedicationGivenSchema),
        load_default=list,
        validate=validate.Length(max=20),
    )
    reaction = fields.Nested(InfusionReactionSchema, allow_none=True)
    notes = text(2000, allow_none=True)
    premedication_exception_reason = text(
        2000,
        allow_none=True,
        metadata={
            "description": "A clinician's reason for premedication missing or outside its window"
        },
    )
    observation_minutes = fields.Integer(
        allow_none=True,
        strict=True,
        validate=validate.Range(min=0, max=MAX_OBSERVATION_MINUTES),
        metadata={
            "description": "Minutes the patient was observed after the dose (worked out from "
            "infusion_ended_at and observation_ended_at when both are given)"
        },
    )
    infusion_started_at = Instant(
        dump_only=True, metadata={"description": "The same instant as administered_at"}
    )
    infusion_ended_at = Instant(allow_none=True)
    observation_ended_at = Instant(allow_none=True)
    recorded_by = fields.Integer(attribute="recorded_by_id", dump_only=True)
    recorded_at = Instant(dump_only=True)


class AdministrationAmendSchema(StrictSchema):
    """What can be added to a given dose's record afterwards."""

    infusion_ended_at = Instant(allow_none=True)
    observation_ended_at = Instant(allow_none=True)
    observation_minutes = fields.Integer(
        allow_none=True,
        strict=True,
        validate=validate.Range(min=0, max=MAX_OBSERVATION_MINUTES),
    )

    @validates_schema
    def _something(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if not data:
            raise ValidationError("Nothing to change.", "_schema")


class DoseSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    plan_id = fields.Integer(dump_only=True)
    sequence = fields.Integer(dump_only=True)
    course = fields.Integer(dump_only=True)
    kind = fields.String(validate=Vocabulary(DoseKind), dump_only=True)
    rule_key = fields.String(dump_only=True)
    amount_mg = fields.Integer(dump_only=True)
    due_date = fields.Date(dump_only=True)
    earliest_date = fields.Date(
        dump_only=True,
        allow_none=True,
        metadata={"description": "Earliest allowed date (minimum interval)"},
    )
    status = fields.String(
        validate=Vocabulary(DoseStatus),
        dump_only=True,
        metadata={"description": " | ".join(DOSE_STATUSES)},
    )
    booking = fields.String(
        validate=Vocabulary(Booking),
        dump_only=True,
        allow_none=True,
        metadata={"description": " | ".join(BOOKINGS)},
    )
    appointment_at = Instant(dump_only=True, allow_none=True)
    location = fields.String(dump_only=True, allow_none=True)
    needs_review = fields.Boolean(dump_only=True)
    missed_on = fields.Date(dump_only=True, allow_none=True)
    skip_reason = fields.String(dump_only=True, allow_none=True)
    infusion_option = fields.String(
        dump_only=True,
        allow_none=True,
        metadata={"description": "A catalog infusion-rate option (e.g. short_2h); null: standard"},
    )
    infusion_minutes = fields.Integer(
        dump_only=True,
        allow_none=True,
        metadata={"description": "Infusion time from the catalog's rates (and option)"},
    )
    required_observation_minutes = fields.Integer(
        dump_only=True,
        allow_none=True,
        metadata={"description": "Observation the catalog asks for after this dose"},
    )
    chair_minutes = fields.Integer(
        dump_only=True,
        allow_none=True,
        metadata={"description": "Infusion plus observation; null when either is unknown"},
    )
    administration = fields.Nested(DoseAdministrationSchema, dump_only=True, allow_none=True)
    readiness = fields.Nested(ReadinessSchema, dump_only=True)
    version = fields.Integer(dump_only=True)
    etag = etag_field("dose")
    updated_at = Instant(dump_only=True)


class DoseWarningSchema(StrictSchema):
    code = fields.String(dump_only=True)
    detail = fields.String(dump_only=True)


class DoseChangeSchema(DoseSchema):
    """A changed dose, with the plan's status and what else the change did."""

    plan_status = fields.String(validate=Vocabulary(PlanStatus), dump_only=True)
    warnings = fields.List(fields.Nested(DoseWarningSchema), dump_only=True)


class DoseUpdateSchema(StrictSchema):
    appointment_at = Instant(
        allow_none=True, metadata={"description": "Books the dose; null drops the booking"}
    )
    due_date = fields.Date(metadata={"description": "Reschedules the dose"})
    location = text(200, allow_none=True)
    booking = fields.String(validate=Vocabulary(Booking))
    cascade = fields.Boolean(
        metadata={"description": "Move the later open doses by the same days (default true)"}
    )
    status = fields.String(
        validate=validate.OneOf(DOSE_STATUS_CHANGES),
        metadata={"description": "missed (still owed) | cancelled | skipped (clinician, reason)"},
    )
    reason = text(2000, metadata={"description": "Why the dose is skipped"})
    infusion_option = text(
        32,
        min_length=1,
        allow_none=True,
        metadata={
            "description": "A catalog infusion-rate option for this dose (e.g. short_2h); "
            "null: the standard rates"
        },
    )
    administration = fields.Nested(
        AdministrationAmendSchema,
        metadata={
            "description": "A given dose only: the infusion's end, the end of observation "
            "or the observed minutes, recorded after the fact"
        },
    )

    @validates_schema
    def _one_kind_of_change(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if "administration" in data and len(data) > 1:
            raise ValidationError(
                "Send administration alone: a given dose is not booked or moved.",
                "administration",
            )
        if "status" in data and len(set(data) - {"reason"}) > 1:
            raise ValidationError(
                "Send status alone: a missed or cancelled dose is not booked or moved.", "status"
            )
        if "reason" in data and data.get("status") != DoseStatus.SKIPPED:
            raise ValidationError("Only skipping a dose takes a reason.", "reason")
        if "cascade" in data and "due_date" not in data and "appointment_at" not in data:
            raise ValidationError("Only applies when the dose is moved.", "cascade")
        if not data:
            raise ValidationError("Nothing to change.", "_schema")
        due = data.get("due_date")
        if due is not None and due.year < 2000:
            raise ValidationError("Must be after 2000.", "due_date")


class DoseQueryArgsSchema(PageArgsSchema):
    pass

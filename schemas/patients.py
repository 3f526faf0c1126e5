"""Patients on the wire."""

from __future__ import annotations

from datetime import date

from marshmallow import ValidationError, fields, validate, validates

from schemas.common import (
    Instant,
    PageArgsSchema,
    PartialMixin,
    StrictSchema,
    TimeZoneField,
    etag_field,
    text,
)
from schemas.monitoring import FollowUpSchema, HepatitisBFollowUpSchema
from schemas.plans import ReactionHistorySchema


class PatientSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    clinic_id = fields.Integer(dump_only=True)
    mrn = text(64, min_length=1, required=True)
    given_name = text(100, min_length=1, required=True)
    family_name = text(100, min_length=1, required=True)
    birth_date = fields.Date(required=True)
    sex = fields.String(
        validate=validate.OneOf(["female", "male", "other", "unknown"]), allow_none=True
    )
    can_become_pregnant = fields.Boolean(
        allow_none=True,
        metadata={
            "description": "null = unknown: a per-dose pregnancy check (ublituximab) still asks"
        },
    )
    time_zone = TimeZoneField(required=True)
    email = fields.Email(validate=validate.Length(max=254), allow_none=True)
    phone = text(32, allow_none=True)
    reminder_time = fields.Time(format="%H:%M")
    quiet_start = fields.Time(format="%H:%M")
    quiet_end = fields.Time(format="%H:%M")
    reminder_channels = fields.List(
        fields.String(validate=validate.OneOf(["push", "email"])),
        validate=validate.Length(max=2),
        metadata={"description": "Channels besides the in-app inbox, which is always on"},
    )
    dose_lead_days = fields.List(
        fields.Integer(validate=validate.Range(min=0, max=60)),
        validate=validate.Length(min=1, max=5),
        allow_none=True,
        metadata={"description": "Days before a dose to remind; null uses the clinic's setting"},
    )
    created_at = Instant(dump_only=True)
    updated_at = Instant(dump_only=True)
    version = fields.Integer(dump_only=True, allow_none=True)
    etag = etag_field("patient")
    monitoring_after_treatment = fields.List(
        fields.Nested(FollowUpSchema),
        dump_only=True,
        metadata={"description": "What is still monitored after a plan ended, and why"},
    )
    hepatitis_b_after_treatment = fields.List(
        fields.Nested(HepatitisBFollowUpSchema),
        dump_only=True,
        metadata={"description": "Hepatitis B tests still due after a plan ended, and why"},
    )
    reaction_history = fields.List(
        fields.Nested(ReactionHistorySchema),
        dump_only=True,
        metadata={"description": "Infusion reactions under any of the patient's plans"},
    )

    @validates("birth_date")
    def _not_in_future(self, value: date, **_kwargs: object) -> None:
        if value > date.today():
            raise ValidationError("Must not be in the future.")
        if value.year < 1900:
            raise ValidationError("Must be after 1900.")


class PatientUpdateSchema(PartialMixin, PatientSchema):
    pass


class PatientQueryArgsSchema(PageArgsSchema):
    q = text(100, metadata={"description": "Search MRN or name"})

"""The caller's own account on the wire."""

from __future__ import annotations

from typing import Any

from marshmallow import fields, post_dump, post_load, validate

from schemas.auth import new_password
from schemas.common import SOMETIMES_ABSENT, StrictSchema, TimeZoneField, Vocabulary, text
from service.accounts.passwords import MAX_PASSWORD_LENGTH
from service.vocabulary import Role

# Shown to a patient and changeable by them (PATCH /me); the rest of their record is staff's.
PATIENT_ONLY = (
    "patient_id",
    "time_zone",
    "reminder_time",
    "quiet_start",
    "quiet_end",
    "reminder_channels",
    "dose_lead_days",
    "version",
)


class ReminderPreferencesMixin:
    time_zone = TimeZoneField(
        attribute="patient.time_zone",
        metadata={
            "description": "IANA region zone the reminders' wall-clock times are read in",
            **SOMETIMES_ABSENT,
        },
    )
    reminder_time = fields.Time(
        format="%H:%M",
        attribute="patient.reminder_time",
        metadata={"description": "Local time of day reminders fire at", **SOMETIMES_ABSENT},
    )
    quiet_start = fields.Time(
        format="%H:%M",
        attribute="patient.quiet_start",
        metadata={
            "description": "From this local time on, reminders wait until quiet_end",
            **SOMETIMES_ABSENT,
        },
    )
    quiet_end = fields.Time(
        format="%H:%M", attribute="patient.quiet_end", metadata={**SOMETIMES_ABSENT}
    )
    reminder_channels = fields.List(
        fields.String(validate=validate.OneOf(["push", "email"])),
        attribute="patient.reminder_channels",
        validate=validate.Length(max=2),
        metadata={
            "description": "Channels besides the in-app inbox, which is always on",
            **SOMETIMES_ABSENT,
        },
    )
    dose_lead_days = fields.List(
        fields.Integer(validate=validate.Range(min=0, max=60)),
        attribute="patient.dose_lead_days",
        validate=validate.Length(min=1, max=5),
        allow_none=True,
        metadata={
            "description": "Days before a dose to remind; null uses the clinic's setting",
            **SOMETIMES_ABSENT,
        },
    )


class MeSchema(ReminderPreferencesMixin, StrictSchema):
    user_id = fields.Integer(attribute="id", dump_only=True)
    role = fields.String(validate=Vocabulary(Role), dump_only=True)
    clinic_id = fields.Integer(dump_only=True)
    email = fields.String(dump_only=True)
    patient_id = fields.Integer(
        dump_only=True, metadata={"description": "Patients only", **SOMETIMES_ABSENT}
    )
    version = fields.Integer(
        attribute="patient.version",
        dump_only=True,
        metadata={
            "description": "Patients only: the version of the preferences",
            **SOMETIMES_ABSENT,
        },
    )

    class Meta(StrictSchema.Meta):
        # The account first, then the patient's preferences.
        fields = (
            "user_id",
            "role",
            "clinic_id",
            "email",
            *PATIENT_ONLY,
        )

    @post_dump
    def _patient_fields_for_patients_only(
        self, data: dict[str, Any], **_kwargs: Any
    ) -> dict[str, Any]:
        if data.get("patient_id") is None:
            for name in PATIENT_ONLY:
                data.pop(name, None)
        return data


class MeUpdateSchema(ReminderPreferencesMixin, StrictSchema):
    """A patient's own time zone and reminder preferences; every field optional."""

    @post_load
    def _the_patients_changes(self, data: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        # The fields name the patient's attributes ("patient.time_zone"): loaded under "patient".
        return dict(data.get("patient", {}))


class PasswordChangeSchema(StrictSchema):
    current_password = text(MAX_PASSWORD_LENGTH, min_length=1, required=True, load_only=True)
    new_password = new_password(required=True, load_only=True)

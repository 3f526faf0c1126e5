"""Reminders, delivery attempts and check-in answers on the wire."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from marshmallow import ValidationError, fields, validate, validates_schema

from schemas.common import Instant, StrictSchema, Vocabulary, rfc3339, text
from service.vocabulary import Audience, ChannelName, ReminderStatus

SYMPTOM_CODES = (
    "fever",
    "cough",
    "sore_throat",
    "urinary_symptoms",
    "rash",
    "itching",
    "headache",
    "dizziness",
    "nausea",
    "shortness_of_breath",
    "throat_swelling",
    "fatigue",
    "flushing",
    "other",
)


class SubjectSchema(StrictSchema):
    type = fields.String(attribute="subject_type")
    id = fields.Integer(attribute="subject_id")


class ReminderSchema(StrictSchema):
    id = fields.Integer(dump_only=True)
    kind = fields.String(dump_only=True)
    audience = fields.String(validate=Vocabulary(Audience), dump_only=True)
    fire_at = Instant(dump_only=True)
    local_time = fields.Method(
        "_local_time",
        dump_only=True,
        metadata={
            "type": "string",
            "format": "date-time",
            "description": "When it fires on the wall clock of `time_zone`, with that zone's "
            "UTC offset then (RFC 3339, e.g. 2027-03-08T09:00:00.000+01:00)",
        },
    )
    time_zone = fields.String(dump_only=True, metadata={"description": "IANA zone name"})
    status = fields.String(validate=Vocabulary(ReminderStatus), dump_only=True)
    channels = fields.List(fields.String(), dump_only=True)
    subject = fields.Method("_subject", dump_only=True)
    acked_at = Instant(dump_only=True, allow_none=True)

    def _local_time(self, reminder: Any) -> str:
        # The moment it fires (a time in a spring-forward gap has moved past the gap).
        return rfc3339(reminder.fire_at, ZoneInfo(reminder.time_zone))

    def _subject(self, reminder: Any) -> dict[str, Any]:
        return {"type": reminder.subject_type, "id": reminder.subject_id}


class DeliverySchema(StrictSchema):
    channel = fields.String(validate=Vocabulary(ChannelName), dump_only=True)
    attempt = fields.Integer(dump_only=True)
    outcome = fields.String(dump_only=True)
    response_code = fields.Integer(dump_only=True, allow_none=True)
    error = fields.String(dump_only=True, allow_none=True)
    created_at = Instant(dump_only=True)


class StaffReminderSchema(ReminderSchema):
    attempts = fields.Integer(dump_only=True)
    sent_at = Instant(dump_only=True, allow_none=True)
    ack_response = fields.Dict(dump_only=True, allow_none=True)
    deliveries = fields.List(fields.Nested(DeliverySchema), dump_only=True)


class CheckinResponseSchema(StrictSchema):
    status = fields.String(required=True, validate=validate.OneOf(["no_symptoms", "symptoms"]))
    symptoms = fields.List(
        fields.String(validate=validate.OneOf(SYMPTOM_CODES)),
        validate=validate.Length(max=len(SYMPTOM_CODES)),
    )
    details = text(1000)

    @validates_schema
    def _symptoms_need_a_yes(self, data: dict[str, Any], **_kwargs: Any) -> None:
        if data["status"] == "no_symptoms" and (data.get("symptoms") or data.get("details")):
            raise ValidationError("Symptoms given with status no_symptoms.", "symptoms")


class AckSchema(StrictSchema):
    response = fields.Nested(CheckinResponseSchema, allow_none=True)


class UpcomingSchema(StrictSchema):
    items = fields.List(fields.Nested(ReminderSchema))

"""The staff views on the wire: the day's schedule, the worklist, alerts."""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

import marshmallow as ma
from marshmallow import fields, pre_dump, validate

from schemas.common import Instant, StrictSchema, Vocabulary, rfc3339
from service.vocabulary import (
    Booking,
    DoseKind,
    DoseStatus,
    PlanStatus,
    ScreeningOutcome,
    TaskStatus,
    values,
)

MAX_WORKLIST_LIMIT = 500


class ScheduleArgsSchema(StrictSchema):
    date = fields.Date(
        metadata={"description": "YYYY-MM-DD in the clinic's time zone; default today there"}
    )


class WorklistArgsSchema(StrictSchema):
    limit = fields.Integer(
        load_default=100,
        validate=validate.Range(min=1, max=MAX_WORKLIST_LIMIT),
        metadata={"description": "Most entries per section; counts give the totals"},
    )


class _Out(ma.Schema):
    class Meta:
        ordered = True


class StaffPatientSchema(_Out):
    id = fields.Integer()
    mrn = fields.String()
    name = fields.String()


class StaffPlanSchema(_Out):
    id = fields.Integer()
    regimen = fields.String()
    variant = fields.String()
    status = fields.String(
        validate=Vocabulary(PlanStatus),
    )


class StaffDoseSchema(_Out):
    id = fields.Integer()
    sequence = fields.Integer()
    course = fields.Integer()
    kind = fields.String(
        validate=Vocabulary(DoseKind),
    )
    amount_mg = fields.Integer()
    due_date = fields.Date()
    booking = fields.String(validate=Vocabulary(Booking), allow_none=True)
    status = fields.String(
        validate=Vocabulary(DoseStatus),
    )


class StaffPremedicationWindowSchema(_Out):
    min = fields.Integer(allow_none=True)
    max = fields.Integer(allow_none=True)


class StaffPremedicationSchema(_Out):
    drug = fields.String()
    dose_mg = fields.Integer(allow_none=True)
    route = fields.String(allow_none=True)
    minutes_before = fields.Nested(StaffPremedicationWindowSchema, allow_none=True)
    required = fields.Boolean()
    note = fields.String(allow_none=True)


OUTCOMES = list(values(ScreeningOutcome))


class StaffBlockingItemSchema(_Out):
    code = fields.String()
    outcome = fields.String(metadata={"enum": OUTCOMES})


class StaffChecklistSchema(_Out):
    outcome = fields.String(metadata={"enum": OUTCOMES})
    blocking_items = fields.List(fields.Nested(StaffBlockingItemSchema))
    overridden = fields.Boolean(metadata={"description": "A clinician override is in force"})


class ScheduleEntrySchema(_Out):
    patient = fields.Nested(StaffPatientSchema)
    plan = fields.Nested(StaffPlanSchema)
    dose = fields.Nested(StaffDoseSchema)
    appointment_at = Instant()
    local_time = fields.String(
        metadata={
            "format": "date-time",
            "description": "The appointment on the clinic's wall clock, with its UTC offset "
            "(RFC 3339, e.g. 2027-03-08T09:00:00.000+01:00)",
        }
    )
    location = fields.String(allow_none=True)
    premedications = fields.List(fields.Nested(StaffPremedicationSchema))
    screening = fields.Nested(StaffChecklistSchema)
    expected_chair_minutes = fields.Integer(
        allow_none=True,
        metadata={
            "description": "Infusion time from the catalog's rates (the dose's chosen option) "
            "plus the observation required; null when the catalog has neither"
        },
    )
    expected_infusion_minutes = fields.Integer(allow_none=True)
    infusion_option = fields.String(
        allow_none=True, metadata={"description": "e.g. short_2h; null: the standard rates"}
    )
    needs_review = fields.Boolean()


class ScheduleUnbookedDoseSchema(_Out):
    patient = fields.Nested(StaffPatientSchema)
    plan = fields.Nested(StaffPlanSchema)
    dose = fields.Nested(StaffDoseSchema)
    screening = fields.Nested(StaffChecklistSchema)
    needs_review = fields.Boolean()


class ScheduleSchema(_Out):
    date = fields.Date()
    time_zone = fields.String(metadata={"description": "The clinic's IANA zone"})
    items = fields.List(fields.Nested(ScheduleEntrySchema))
    unbooked_due = fields.List(fields.Nested(ScheduleUnbookedDoseSchema))

    @pre_dump
    def _local_times_with_offset(self, schedule: dict[str, Any], **_kwargs: Any) -> dict[str, Any]:
        zone = ZoneInfo(schedule["time_zone"])
        items = [
            {**item, "local_time": rfc3339(item["appointment_at"], zone)}
            for item in schedule["items"]
        ]
        return {**schedule, "items": items}


class WorklistLinksSchema(_Out):
    patient = fields.String()
    plan = fields.String()
    dose = fields.String()
    readiness = fields.String()


class WorklistChecklistSchema(_Out):
    patient = fields.Nested(StaffPatientSchema)
    plan = fields.Nested(StaffPlanSchema)
    first_dose = fields.Nested(StaffDoseSchema)
    first_dose_date = fields.Date()
    days_until_first_dose = fields.Integer(metadata={"description": "Negative when past"})
    outcome = fields.String(metadata={"enum": OUTCOMES})
    blocking_items = fields.List(fields.Nested(StaffBlockingItemSchema))
    links = fields.Nested(WorklistLinksSchema)


class WorklistDoseSchema(_Out):
    patient = fields.Nested(StaffPatientSchema)
    plan = fields.Nested(StaffPlanSchema)
    dose = fields.Nested(StaffDoseSchema)
    appointment_at = Instant(allow_none=True)
    date = fields.Date(metadata={"description": "Appointment day if booked, else the due date"})
    days_overdue = fields.Integer()
    links = fields.Nested(WorklistLinksSchema)


class WorklistReadinessSchema(_Out):
    patient = fields.Nested(StaffPatientSchema)
    plan = fields.Nested(StaffPlanSchema)
    dose = fields.Nested(StaffDoseSchema)
    appointment_at = Instant(allow_none=True)
    date = fields.Date(metadata={"description": "Appointment day if booked, else the due date"})
    days_until = fields.Integer()
    open_items = fields.List(fields.Nested(StaffBlockingItemSchema))
    links = fields.Nested(WorklistLinksSchema)


class WorklistObservationSchema(_Out):
    patient = fields.Nested(StaffPatientSchema)
    plan = fields.Nested(StaffPlanSchema)
    dose = fields.Nested(StaffDoseSchema)
    administered_at = Instant()
    required_minutes = fields.Integer()
    recorded_minutes = fields.Integer(allow_none=True)
    links = fields.Nested(WorklistLinksSchema)


class StaffTaskSchema(_Out):
    id = fields.Integer()
    kind = fields.String()
    due_date = fields.Date()
    status = fields.String(
        validate=Vocabulary(TaskStatus),
    )
    dose_id = fields.Integer(allow_none=True)
    after_treatment = fields.Boolean(
        metadata={"description": "Monitoring that continues after the plan ended"}
    )


class WorklistTaskSchema(_Out):
    patient = fields.Nested(StaffPatientSchema)
    plan = fields.Nested(StaffPlanSchema)
    task = fields.Nested(StaffTaskSchema)
    days_overdue = fields.Integer()


class StaffAlertSchema(_Out):
    id = fields.Integer()
    kind = fields.String(
        metadata={"description": "e.g. lab_low, lab_high, neutropenia, login_failures"}
    )
    patient = fields.Function(
        lambda alert: (
            {
                "id": alert.patient.id,
                "mrn": alert.patient.mrn,
                "name": f"{alert.patient.given_name} {alert.patient.family_name}",
            }
            if alert.patient is not None
            else None
        ),
        allow_none=True,
        metadata={
            "description": "{id, mrn, name}; null for an alert about a staff account"
            " (kind login_failures, subject {type: user, id})"
        },
    )
    subject = fields.Function(
        lambda alert: {"type": alert.subject_type, "id": alert.subject_id},
        metadata={"description": "{type, id}"},
    )
    details = fields.Dict(metadata={"description": "Codes only, no free text"})
    created_at = Instant()
    resolved_at = Instant(allow_none=True)
    resolved_by_id = fields.Integer(allow_none=True)


class WorklistCountsSchema(_Out):
    checklists = fields.Integer()
    overdue_doses = fields.Integer()
    overdue_tasks = fields.Integer()
    alerts = fields.Integer()
    not_made_ready = fields.Integer()
    readiness_open = fields.Integer()
    observation_missing = fields.Integer()


class WorklistSchema(_Out):
    date = fields.Date()
    time_zone = fields.String()
    checklists = fields.List(fields.Nested(WorklistChecklistSchema))
    overdue_doses = fields.List(fields.Nested(WorklistDoseSchema))
    overdue_tasks = fields.List(fields.Nested(WorklistTaskSchema))
    alerts = fields.List(fields.Nested(StaffAlertSchema))
    not_made_ready = fields.List(fields.Nested(WorklistChecklistSchema))
    readiness_open = fields.List(fields.Nested(WorklistReadinessSchema))
    observation_missing = fields.List(fields.Nested(WorklistObservationSchema))
    counts = fields.Nested(WorklistCountsSchema)

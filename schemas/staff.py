"""The staff views on the wire: the day's schedule, the worklist, alerts."""

from __future__ import annotations

from datetime import date
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


# --- the two views' bodies without marshmallow's per-field work -------------------------------
# The schedule and the worklist are the heaviest staff reads: dumping their nested entries field
# by field cost about a third of a request. These build the same JSON-ready dicts as
# ScheduleSchema().dump / WorklistSchema().dump from what the use cases return, and the schemas
# above stay the OpenAPI document's contract; tests/api/test_staff_bodies.py holds the two equal
# on a case where every field has a value, a null, or several items.


def _day(value: date) -> str:
    return value.isoformat()


def _instant(value: Any) -> str | None:
    return None if value is None else rfc3339(value)


def _staff_patient(patient: dict[str, Any]) -> dict[str, Any]:
    return {"id": patient["id"], "mrn": patient["mrn"], "name": patient["name"]}


def _staff_plan(plan: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": plan["id"],
        "regimen": plan["regimen"],
        "variant": plan["variant"],
        "status": plan["status"],
    }


def _staff_dose(dose: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": dose["id"],
        "sequence": dose["sequence"],
        "course": dose["course"],
        "kind": dose["kind"],
        "amount_mg": dose["amount_mg"],
        "due_date": _day(dose["due_date"]),
        "booking": dose["booking"],
        "status": dose["status"],
    }


def _blocking(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Stored items may carry more than the wire shows.
    return [{key: item[key] for key in ("code", "outcome") if key in item} for item in items]


def _checklist(checklist: dict[str, Any]) -> dict[str, Any]:
    return {
        "outcome": checklist["outcome"],
        "blocking_items": _blocking(checklist["blocking_items"]),
        "overridden": checklist["overridden"],
    }


def _links(links: dict[str, str]) -> dict[str, str]:
    return {key: links[key] for key in ("patient", "plan", "dose", "readiness") if key in links}


def schedule_body(schedule: dict[str, Any]) -> dict[str, Any]:
    """What ScheduleSchema().dump(schedule) gives, for the body of GET /staff/schedule."""
    zone = ZoneInfo(schedule["time_zone"])
    # Every item of a regimen holds the same premedication list (service.staff.views).
    premedications: dict[int, list[dict[str, Any]]] = {}
    items = []
    for item in schedule["items"]:
        listed = item["premedications"]
        shown = premedications.get(id(listed))
        if shown is None:
            shown = premedications[id(listed)] = _PREMEDICATIONS.dump(listed)
        items.append(
            {
                "patient": _staff_patient(item["patient"]),
                "plan": _staff_plan(item["plan"]),
                "dose": _staff_dose(item["dose"]),
                "appointment_at": _instant(item["appointment_at"]),
                "local_time": rfc3339(item["appointment_at"], zone),
                "location": item["location"],
                "premedications": shown,
                "screening": _checklist(item["screening"]),
                "expected_chair_minutes": item["expected_chair_minutes"],
                "expected_infusion_minutes": item["expected_infusion_minutes"],
                "infusion_option": item["infusion_option"],
                "needs_review": item["needs_review"],
            }
        )
    return {
        "date": _day(schedule["date"]),
        "time_zone": schedule["time_zone"],
        "items": items,
        "unbooked_due": [
            {
                "patient": _staff_patient(item["patient"]),
                "plan": _staff_plan(item["plan"]),
                "dose": _staff_dose(item["dose"]),
                "screening": _checklist(item["screening"]),
                "needs_review": item["needs_review"],
            }
            for item in schedule["unbooked_due"]
        ],
    }


def _first_dose_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "patient": _staff_patient(entry["patient"]),
        "plan": _staff_plan(entry["plan"]),
        "first_dose": _staff_dose(entry["first_dose"]),
        "first_dose_date": _day(entry["first_dose_date"]),
        "days_until_first_dose": entry["days_until_first_dose"],
        "outcome": entry["outcome"],
        "blocking_items": _blocking(entry["blocking_items"]),
        "links": _links(entry["links"]),
    }


def _dose_subject(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        "patient": _staff_patient(entry["patient"]),
        "plan": _staff_plan(entry["plan"]),
        "dose": _staff_dose(entry["dose"]),
        "links": _links(entry["links"]),
    }


def _overdue_dose(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        **_dose_subject(entry),
        "appointment_at": _instant(entry["appointment_at"]),
        "date": _day(entry["date"]),
        "days_overdue": entry["days_overdue"],
    }


def _readiness_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        **_dose_subject(entry),
        "appointment_at": _instant(entry["appointment_at"]),
        "date": _day(entry["date"]),
        "days_until": entry["days_until"],
        "open_items": _blocking(entry["open_items"]),
    }


def _observation_entry(entry: dict[str, Any]) -> dict[str, Any]:
    return {
        **_dose_subject(entry),
        "administered_at": _instant(entry["administered_at"]),
        "required_minutes": entry["required_minutes"],
        "recorded_minutes": entry["recorded_minutes"],
    }


def _overdue_task(entry: dict[str, Any]) -> dict[str, Any]:
    task = entry["task"]
    return {
        "patient": _staff_patient(entry["patient"]),
        "plan": _staff_plan(entry["plan"]),
        "task": {
            "id": task["id"],
            "kind": task["kind"],
            "due_date": _day(task["due_date"]),
            "status": task["status"],
            "dose_id": task["dose_id"],
            "after_treatment": task["after_treatment"],
        },
        "days_overdue": entry["days_overdue"],
    }


def worklist_body(worklist: dict[str, Any]) -> dict[str, Any]:
    """What WorklistSchema().dump(worklist) gives, for the body of GET /staff/worklist."""
    return {
        "date": _day(worklist["date"]),
        "time_zone": worklist["time_zone"],
        "checklists": [_first_dose_entry(entry) for entry in worklist["checklists"]],
        "overdue_doses": [_overdue_dose(entry) for entry in worklist["overdue_doses"]],
        "overdue_tasks": [_overdue_task(entry) for entry in worklist["overdue_tasks"]],
        # Few, and objects: their schema dumps them.
        "alerts": _ALERTS.dump(worklist["alerts"]),
        "not_made_ready": [_first_dose_entry(entry) for entry in worklist["not_made_ready"]],
        "readiness_open": [_readiness_entry(entry) for entry in worklist["readiness_open"]],
        "observation_missing": [
            _observation_entry(entry) for entry in worklist["observation_missing"]
        ],
        "counts": dict(worklist["counts"]),
    }


_PREMEDICATIONS = StaffPremedicationSchema(many=True)
_ALERTS = StaffAlertSchema(many=True)

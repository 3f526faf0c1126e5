"""Reminders: the patient's upcoming ones and check-in answers, and staff's view per patient."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint

from schemas.common import PageArgsSchema, page_of
from schemas.reminders import AckSchema, ReminderSchema, StaffReminderSchema, UpcomingSchema
from service.api.context import actor, caller, db, login_required
from service.api.contract import PATIENT_APP, STAFF, operation
from service.api.middleware import conditional
from service.api.middleware.conditional import NOT_MODIFIED
from service.patients import freshness
from service.reminders import acknowledgements

blp = Blueprint("reminders", __name__, description="Reminders and check-ins")


@blp.route("/me/reminders/upcoming")
class UpcomingReminders(MethodView):
    decorators = [login_required]

    @operation(
        "listUpcomingReminders",
        PATIENT_APP,
        description="""
        The patient's pending reminders with their fire times, for the phone to schedule local
        notifications as a fallback to push.
        """,
    )
    @blp.response(200, UpcomingSchema)
    @blp.alt_response(304, description=NOT_MODIFIED)
    def get(self) -> Any:
        """List my next reminders (for local notifications on the phone)."""
        cached = conditional.unchanged(freshness.upcoming_stamp(db(), caller()))
        return cached or {"items": acknowledgements.upcoming_reminders(db(), actor())}


@blp.route("/me/reminders/<bigint:reminder_id>/ack")
class AcknowledgeReminder(MethodView):
    decorators = [login_required]

    @operation(
        "acknowledgeReminder",
        PATIENT_APP,
        description="""
        A check-in (infection or symptom) takes a `response`; other reminders take none.
        """,
        refusals={409: ("conflict",)},
    )
    @blp.arguments(AckSchema())
    @blp.response(200, ReminderSchema)
    def post(self, body: dict[str, Any], reminder_id: int) -> Any:
        """Acknowledge a reminder, answering a check-in if it is one."""
        reminder = acknowledgements.acknowledge(
            db(), actor(), reminder_id, response=body.get("response")
        )
        db().commit()
        return reminder


@blp.route("/patients/<int:patient_id>/reminders")
class PatientReminders(MethodView):
    decorators = [login_required]

    @operation("listPatientReminders", STAFF)
    @blp.arguments(PageArgsSchema(), location="query")
    @blp.response(200, page_of(StaffReminderSchema))
    def get(self, args: dict[str, Any], patient_id: int) -> Any:
        """List a patient's reminders with their delivery attempts."""
        return acknowledgements.list_patient_reminders(db(), actor(), patient_id, **args)

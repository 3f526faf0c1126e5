"""The in-app inbox channel: always on, exactly one message per reminder."""

from __future__ import annotations

from sqlalchemy.orm import Session

from jobs.channels.base import Outgoing, Result
from service.inbox import post_to_inbox
from service.messages import render
from service.models import Patient


class InboxChannel:
    name = "inbox"

    def deliver(self, session: Session, message: Outgoing) -> Result:
        if message.audience != "patient":
            # Staff reminders show on the staff worklist, not in a patient's inbox.
            return Result.skipped("staff reminders do not go to a patient inbox")
        patient = session.get(Patient, message.patient_id)
        if patient is None:
            return Result.skipped("the patient no longer exists")
        title, body = render(
            message.kind, message.payload, audience="patient", time_zone=patient.time_zone
        )
        post_to_inbox(
            session,
            patient_id=message.patient_id,
            reminder_id=message.reminder_id,
            kind=message.kind,
            title=title,
            body=body,
        )
        return Result.sent()

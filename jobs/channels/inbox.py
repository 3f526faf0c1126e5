"""The in-app inbox channel: always on, exactly one message per reminder."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core.bulk import among
from service.models import Patient
from service.reminders.channels import Channel, Outgoing, Result
from service.reminders.inbox import InboxPost, post_many_to_inbox, post_to_inbox
from service.reminders.messages import render

STAFF_SKIP = "staff reminders do not go to a patient inbox"
GONE_SKIP = "the patient no longer exists"


class InboxChannel(Channel):
    name = "inbox"
    # Writes only in the runner's transaction: delivered without a lease.
    in_transaction = True

    def deliver(self, session: Session, message: Outgoing) -> Result:
        if message.audience != "patient":
            # Staff reminders show on the staff worklist, not in a patient's inbox.
            return Result.skipped(STAFF_SKIP)
        patient = session.get(Patient, message.patient_id)
        if patient is None:
            return Result.skipped(GONE_SKIP)
        title, body = render(
            message.kind,
            message.payload,
            audience="patient",
            time_zone=patient.time_zone,
            now=message.now,
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

    def deliver_many(self, session: Session, messages: Sequence[Outgoing]) -> list[Result]:
        """deliver() for a whole batch in a handful of statements; results in the same order."""
        patient_ids = {m.patient_id for m in messages if m.audience == "patient"}
        zones: dict[int, str] = {}
        if patient_ids:
            zones = {
                patient_id: zone
                for patient_id, zone in session.execute(
                    select(Patient.id, Patient.time_zone).where(
                        among(session, Patient.id, sorted(patient_ids))
                    )
                )
            }
        results: list[Result] = []
        posts: list[InboxPost] = []
        sent = Result.sent()
        staff, gone = Result.skipped(STAFF_SKIP), Result.skipped(GONE_SKIP)
        for message in messages:
            if message.audience != "patient":
                results.append(staff)
                continue
            zone = zones.get(message.patient_id)
            if zone is None:
                results.append(gone)
                continue
            title, body = render(
                message.kind, message.payload, audience="patient", time_zone=zone, now=message.now
            )
            posts.append(
                InboxPost(
                    patient_id=message.patient_id,
                    reminder_id=message.reminder_id,
                    kind=message.kind,
                    title=title,
                    body=body,
                )
            )
            results.append(sent)
        post_many_to_inbox(session, posts)
        return results

"""Staff reminders land on the clinic's worklist as alerts."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.models import StaffAlert
from service.reminders.channels import Channel, Outgoing, Result


class WorklistChannel(Channel):
    name = "worklist"
    # Writes only in the runner's transaction: delivered without a lease.
    in_transaction = True

    def deliver(self, session: Session, message: Outgoing) -> Result:
        if message.audience != "staff":
            return Result.skipped("not a staff reminder")
        exists = session.scalar(
            select(StaffAlert.id).where(
                StaffAlert.kind == message.kind,
                StaffAlert.subject_type == "reminder",
                StaffAlert.subject_id == message.reminder_id,
            )
        )
        if exists is None:
            session.add(
                StaffAlert(
                    clinic_id=message.clinic_id,
                    patient_id=message.patient_id,
                    kind=message.kind,
                    subject_type="reminder",
                    subject_id=message.reminder_id,
                    details={
                        "about": {"type": message.subject_type, "id": message.subject_id},
                        **{k: v for k, v in message.payload.items() if k != "notes"},
                    },
                )
            )
        return Result.sent()

"""Staff reminders land on the clinic's worklist as alerts."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.reminders.channels import Channel, Outgoing, Result
from service.staff.alerts import raise_alert


class WorklistChannel(Channel):
    name = "worklist"
    # Writes only in the runner's transaction: delivered without a lease.
    in_transaction = True

    def deliver(self, session: Session, message: Outgoing) -> Result:
        if message.audience != "staff":
            return Result.skipped("not a staff reminder")
        raise_alert(
            session,
            clinic_id=message.clinic_id,
            patient_id=message.patient_id,
            kind=message.kind,
            subject=("reminder", message.reminder_id),
            details={
                "about": {"type": message.subject_type, "id": message.subject_id},
                **{k: v for k, v in message.payload.items() if k != "notes"},
            },
            once=True,
        )
        return Result.sent()

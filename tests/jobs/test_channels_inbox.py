"""The inbox channel: exactly one message per reminder, per-patient change numbers in order."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from jobs.channels import build_channels
from jobs.channels.inbox import InboxChannel
from service.models import Clinic, InboxCounter, InboxMessage, Patient, Reminder
from service.reminders.channels import Outgoing
from service.reminders.inbox import post_to_inbox
from tests.factories import make_clinic, make_patient, make_reminder

DOSE_PAYLOAD = {
    "dose_sequence": 3,
    "amount_mg": 600,
    "drug": "ocrelizumab",
    "due_date": "2027-01-04",
    "appointment_at": "2027-01-04T08:30:00+00:00",
    "location": "Infusion unit 2",
    "lead_days": 1,
}


def messages_of(session, patient):
    return session.scalars(
        select(InboxMessage).where(InboxMessage.patient_id == patient.id).order_by(InboxMessage.seq)
    ).all()


def test_delivering_twice_leaves_one_message(session):
    patient = make_patient(session, make_clinic(session))
    reminder = make_reminder(session, patient, payload=DOSE_PAYLOAD)
    channel = InboxChannel()

    first = channel.deliver(session, Outgoing.from_reminder(reminder))
    again = channel.deliver(session, Outgoing.from_reminder(reminder))

    assert first.outcome == again.outcome == "sent"
    (message,) = messages_of(session, patient)
    assert message.reminder_id == reminder.id
    assert message.seq == 1
    assert message.kind == "dose_upcoming"
    # The inbox is behind login: it may name the drug, and shows the patient's local time.
    assert "ocrelizumab" in message.body
    assert "tomorrow" in message.body
    assert "09:30" in message.body
    assert session.get(InboxCounter, patient.id).seq == 1


def test_change_numbers_count_up_per_patient_without_gaps(session):
    clinic = make_clinic(session)
    alice, bob = make_patient(session, clinic), make_patient(session, clinic)
    channel = InboxChannel()
    for patient in (alice, bob, alice, alice, bob):
        channel.deliver(session, Outgoing.from_reminder(make_reminder(session, patient)))

    assert [m.seq for m in messages_of(session, alice)] == [1, 2, 3]
    assert [m.seq for m in messages_of(session, bob)] == [1, 2]


def test_staff_reminders_do_not_reach_the_patient_inbox(session):
    patient = make_patient(session, make_clinic(session))
    reminder = make_reminder(session, patient, audience="staff", kind="dose_overdue")

    result = InboxChannel().deliver(session, Outgoing.from_reminder(reminder))

    assert result.outcome == "skipped"
    assert messages_of(session, patient) == []


def test_unknown_kind_gets_the_generic_text(session):
    patient = make_patient(session, make_clinic(session))
    reminder = make_reminder(session, patient, kind="something_new", payload={"x": 1})

    assert InboxChannel().deliver(session, Outgoing.from_reminder(reminder)).outcome == "sent"
    (message,) = messages_of(session, patient)
    assert message.body == "You have a new message from your clinic."


def test_inbox_and_webhook_are_always_built(settings):
    assert set(build_channels(settings)) == {"inbox", "webhook"}
    configured = settings.with_overrides(smtp_host="127.0.0.1", fcm_credentials_file="/x.json")
    assert set(build_channels(configured)) == {"inbox", "webhook", "email", "push"}


@pytest.fixture
def committed_reminders(requires_postgres):
    """A committed patient with reminders, for writers on separate connections."""
    with Session(requires_postgres) as setup:
        clinic = make_clinic(setup)
        patient = make_patient(setup, clinic)
        reminders = [make_reminder(setup, patient) for _ in range(6)]
        setup.commit()
        ids = clinic.id, patient.id, [r.id for r in reminders]
    yield ids
    with Session(requires_postgres) as cleanup:
        cleanup.execute(delete(InboxMessage).where(InboxMessage.patient_id == ids[1]))
        cleanup.execute(delete(Reminder).where(Reminder.patient_id == ids[1]))
        cleanup.execute(delete(InboxCounter).where(InboxCounter.patient_id == ids[1]))
        cleanup.execute(delete(Patient).where(Patient.id == ids[1]))
        cleanup.execute(delete(Clinic).where(Clinic.id == ids[0]))
        cleanup.commit()


def test_concurrent_writers_get_ordered_gap_free_numbers_once(
    requires_postgres, committed_reminders
):
    _, patient_id, reminder_ids = committed_reminders
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def post_all() -> None:
        # Every writer posts every reminder: each must end up in the inbox exactly once.
        try:
            start.wait(timeout=10)
            for reminder_id in reminder_ids:
                with Session(requires_postgres) as session:
                    post_to_inbox(
                        session,
                        patient_id=patient_id,
                        reminder_id=reminder_id,
                        kind="dose_upcoming",
                        title="t",
                        body="b",
                    )
                    session.commit()
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=post_all) for _ in range(4)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=60)

    assert errors == []
    with Session(requires_postgres) as check:
        rows = check.execute(
            select(InboxMessage.reminder_id, InboxMessage.seq)
            .where(InboxMessage.patient_id == patient_id)
            .order_by(InboxMessage.seq)
        ).all()
        assert sorted(r.reminder_id for r in rows) == sorted(reminder_ids)
        assert [r.seq for r in rows] == list(range(1, len(reminder_ids) + 1))
        assert check.get(InboxCounter, patient_id).seq == len(reminder_ids)

"""The runner's batch path: inbox messages posted a batch at a time, claims that skip the
patients another runner holds, and leases only for channels that leave the database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from jobs.channels import build_channels
from jobs.channels.inbox import InboxChannel
from jobs.runner import Runner
from service.models import Clinic, InboxCounter, InboxMessage, Patient, Reminder
from service.reminders.channels import Outgoing
from service.reminders.dispatch import claim_and_deliver, take_due_reminders
from service.reminders.inbox import InboxPost, post_many_to_inbox, post_to_inbox
from service.reminders.messages import render
from tests.factories import make_clinic, make_patient, make_reminder

NOW = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def post_for(reminder: Reminder, title: str = "t") -> InboxPost:
    return InboxPost(
        patient_id=reminder.patient_id,
        reminder_id=reminder.id,
        kind=reminder.kind,
        title=title,
        body="b",
    )


def numbers(session: Session, patient: Patient) -> list[tuple[int | None, int]]:
    return [
        (m.reminder_id, m.seq)
        for m in session.scalars(
            select(InboxMessage)
            .where(InboxMessage.patient_id == patient.id)
            .order_by(InboxMessage.seq)
        )
    ]


def test_a_batch_numbers_each_patients_messages_in_order_without_gaps(session):
    clinic = make_clinic(session)
    alice, bob = make_patient(session, clinic), make_patient(session, clinic)
    earlier = make_reminder(session, alice)
    post_to_inbox(session, patient_id=alice.id, reminder_id=earlier.id, kind="k", title="", body="")
    a1, b1, a2, b2 = (make_reminder(session, p) for p in (alice, bob, alice, bob))

    note = InboxPost(patient_id=alice.id, reminder_id=None, kind="note", title="t", body="b")

    # `earlier` is in the inbox already, and a1 comes twice: neither takes a number.
    posts = [post_for(r) for r in (a1, b1, earlier)] + [note] + [post_for(r) for r in (a2, a1, b2)]
    posted = post_many_to_inbox(session, posts, now=NOW)

    assert posted == 5
    assert numbers(session, alice) == [(earlier.id, 1), (a1.id, 2), (None, 3), (a2.id, 4)]
    assert numbers(session, bob) == [(b1.id, 1), (b2.id, 2)]
    session.expire_all()
    assert session.get(InboxCounter, alice.id).seq == 4
    assert session.get(InboxCounter, bob.id).seq == 2


def test_posting_a_batch_again_changes_nothing(session):
    patient = make_patient(session, make_clinic(session))
    reminders = [make_reminder(session, patient) for _ in range(3)]
    post_many_to_inbox(session, [post_for(r) for r in reminders])

    assert post_many_to_inbox(session, [post_for(r, title="again") for r in reminders]) == 0

    assert numbers(session, patient) == [(r.id, n) for n, r in enumerate(reminders, start=1)]
    session.expire_all()
    assert session.get(InboxCounter, patient.id).seq == 3


def test_the_inbox_channel_delivers_a_batch_as_it_does_one_by_one(session):
    patient = make_patient(session, make_clinic(session), time_zone="America/New_York")
    payload = {"drug": "ocrelizumab", "appointment_at": "2027-01-04T14:30:00+00:00"}
    for_patient = make_reminder(session, patient, payload=payload)
    for_staff = make_reminder(session, patient, audience="staff", kind="dose_overdue")

    results = InboxChannel().deliver_many(
        session, [Outgoing.from_reminder(for_patient), Outgoing.from_reminder(for_staff)]
    )

    assert [r.outcome for r in results] == ["sent", "skipped"]
    (message,) = session.scalars(select(InboxMessage).where(InboxMessage.patient_id == patient.id))
    title, body = render("dose_upcoming", payload, audience="patient", time_zone="America/New_York")
    assert (message.reminder_id, message.title, message.body) == (for_patient.id, title, body)
    assert "09:30" in message.body  # the patient's own time


def test_only_reminders_for_outside_channels_are_leased(session, settings):
    patient = make_patient(session, make_clinic(session))
    inbox_only = make_reminder(session, patient, fire_at=NOW - timedelta(minutes=1))
    with_webhook = make_reminder(
        session, patient, fire_at=NOW - timedelta(minutes=1), channels=["inbox", "webhook"]
    )
    channels = build_channels(settings)

    counts, leased = claim_and_deliver(
        session, channels, owner="me", now=NOW, limit=10, lease=LEASE, settings=settings
    )

    assert (counts.claimed, counts.sent) == (2, 1)
    assert [m.reminder_id for m in leased] == [with_webhook.id]
    session.refresh(inbox_only)
    session.refresh(with_webhook)
    # Delivered in the claiming transaction: never leased.
    assert (inbox_only.status, inbox_only.lease_owner) == ("sent", None)
    assert (with_webhook.status, with_webhook.lease_owner) == ("claimed", "me")
    assert with_webhook.due_at == NOW + LEASE

    runner = Runner(settings, channels, owner="me", clock=lambda: NOW, lease=LEASE)
    later = runner.deliver_leased(leased)
    assert later.sent == 1
    session.refresh(with_webhook)
    assert with_webhook.status == "sent"


@pytest.fixture
def two_patients_due(requires_postgres):
    """Committed due reminders of two patients, for claims on two separate connections."""
    with Session(requires_postgres) as setup:
        clinic = make_clinic(setup)
        patients = [make_patient(setup, clinic) for _ in range(2)]
        reminders = {
            p.id: [make_reminder(setup, p, fire_at=NOW - timedelta(minutes=5)).id for _ in range(3)]
            for p in patients
        }
        setup.commit()
        ids = clinic.id, [p.id for p in patients], reminders
    yield ids[2]
    with Session(requires_postgres) as cleanup:
        cleanup.execute(delete(Reminder).where(Reminder.patient_id.in_(ids[1])))
        cleanup.execute(delete(Patient).where(Patient.id.in_(ids[1])))
        cleanup.execute(delete(Clinic).where(Clinic.id == ids[0]))
        cleanup.commit()


def test_a_runner_skips_the_patients_another_runner_is_delivering_to(
    requires_postgres, two_patients_due
):
    first_patient, second_patient = list(two_patients_due)
    mine = {i for ids in two_patients_due.values() for i in ids}
    with Session(requires_postgres) as first, Session(requires_postgres) as second:
        # The first runner's batch holds one reminder, hence its patient, until it commits.
        (held,) = [
            m for m in take_due_reminders(first, now=NOW, limit=1) if m.reminder_id in mine
        ] or pytest.fail("the first runner found none of the reminders")
        busy = held.patient_id
        other = second_patient if busy == first_patient else first_patient

        taken = [m for m in take_due_reminders(second, now=NOW, limit=100) if m.reminder_id in mine]

        assert {m.patient_id for m in taken} == {other}
        assert sorted(m.reminder_id for m in taken) == sorted(two_patients_due[other])
        first.rollback()
        second.rollback()

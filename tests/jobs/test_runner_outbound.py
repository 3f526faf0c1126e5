"""The runner's outbound side: refused destinations, failures kept to their own reminder, and a
crash that repeats at most the one send in flight."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from jobs.channels import build_channels
from jobs.channels.webhook import WebhookChannel, WebhookSend
from jobs.runner import Runner, read_only_session
from service.models import Delivery, InboxMessage, Patient
from service.reminders.channels import Result
from service.reminders.dispatch import begin_send, claim_and_deliver, prepare_round, record_send
from tests.factories import make_clinic, make_patient, make_reminder
from tests.jobs.standins import (
    LOCAL_WEBHOOKS,
    DripServer,
    Reply,
    StandInHTTPServer,
    StandInSMTPServer,
)

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "s" * 32


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def receiver():
    server = StandInHTTPServer()
    yield server
    server.close()


def due_with_webhook(session, url, **fields):
    clinic = make_clinic(session, settings={"webhook": {"url": url, "secret": SECRET}})
    patient = make_patient(session, clinic, email="pat@example.org")
    channels = fields.pop("channels", ["inbox", "webhook"])
    return make_reminder(session, patient, fire_at=NOW, channels=channels, **fields)


def attempts(session, reminder):
    return session.execute(
        select(Delivery.channel, Delivery.outcome, Delivery.error)
        .where(Delivery.reminder_id == reminder.id)
        .order_by(Delivery.id)
    ).all()


@pytest.mark.parametrize(
    ("host", "error"),
    [
        ("localhost", "refused_address"),
        ("127.1", "refused_address"),
        ("0x7f000001", "refused_address"),
        ("2130706433", "refused_address"),
        ("[::1]", "refused_address"),
        ("[::ffff:127.0.0.1]", "refused_address"),
        ("0.0.0.0", "refused_address"),
        ("169.254.169.254", "refused_address"),
        ("10.1.2.3", "refused_address"),
        ("127.0.0.1", "refused_address"),
    ],
)
def test_a_stored_local_url_is_refused_at_send_time(session, settings, receiver, host, error):
    # Stored before the rules existed (straight into the row): the runner checks again.
    port = receiver.url.rsplit(":", 1)[1]
    reminder = due_with_webhook(session, f"http://{host}:{port}/hook")
    development = settings.with_overrides(environment="development")
    runner = Runner(development, build_channels(development), clock=Clock(NOW))

    runner.tick()

    assert receiver.received() == []
    assert attempts(session, reminder) == [
        ("inbox", "sent", None),
        ("webhook", "failed", error),
    ]


def test_a_stored_http_url_is_refused_outside_development(session, settings, receiver):
    reminder = due_with_webhook(session, f"{receiver.url}/hook")
    production_like = settings.with_overrides(webhook_allowed_hosts=("127.0.0.1",))
    Runner(production_like, build_channels(production_like), clock=Clock(NOW)).tick()
    assert receiver.received() == []
    assert attempts(session, reminder)[-1] == ("webhook", "failed", "insecure_url")


class ExplodingWebhook(WebhookChannel):
    """The real webhook channel, except that one clinic's sends raise (a bug, a bad row)."""

    def __init__(self, explode_for: set[int], **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(**kwargs)
        self.explode_for = explode_for

    def prepare(self, session, message):  # type: ignore[no-untyped-def]
        if message.clinic_id in self.explode_for and message.kind == "labs_due":
            raise KeyError("clinic settings unreadable")
        return super().prepare(session, message)

    def send(self, prepared: WebhookSend) -> Result:
        if prepared.message.clinic_id in self.explode_for:
            raise RuntimeError("boom")
        return super().send(prepared)


def test_one_clinics_failing_webhook_leaves_another_clinics_reminders_alone(
    session, settings, receiver
):
    good = due_with_webhook(session, f"{receiver.url}/hook")
    good_too = make_reminder(
        session,
        session.get(Patient, good.patient_id),
        fire_at=NOW,
        channels=["inbox", "webhook"],
    )
    exploding = due_with_webhook(session, f"{receiver.url}/other")
    exploding_early = make_reminder(
        session,
        session.get(Patient, exploding.patient_id),
        kind="labs_due",
        fire_at=NOW,
        channels=["inbox", "webhook"],
    )
    malformed = due_with_webhook(session, "http://[::1")
    long_label = due_with_webhook(session, f"https://{'a' * 64}.example.org/hook")
    local = settings.with_overrides(**LOCAL_WEBHOOKS)
    channels = {
        **build_channels(local),
        "webhook": ExplodingWebhook(
            {exploding.clinic_id}, timeout_s=5, policy=build_channels(local)["webhook"].policy
        ),
    }
    runner = Runner(local, channels, clock=Clock(NOW))

    counts = runner.tick()

    assert counts.claimed == 6
    # The good clinic's reminders: delivered once, at once.
    keys = sorted(r.header("Idempotency-Key") for r in receiver.received("/hook"))
    assert keys == sorted([good.idempotency_key, good_too.idempotency_key])
    assert receiver.received("/other") == []
    for reminder in (good, good_too):
        session.refresh(reminder)
        assert (reminder.status, reminder.sent_at) == ("sent", NOW)
    # Each failure is recorded on its own reminder, in words staff may read.
    assert attempts(session, exploding)[-1] == ("webhook", "failed", "channel_error")
    assert attempts(session, exploding_early)[-1] == ("webhook", "failed", "channel_error")
    assert attempts(session, malformed)[-1] == ("webhook", "failed", "malformed_url")
    assert attempts(session, long_label)[-1] == ("webhook", "failed", "malformed_url")
    for reminder in (exploding, exploding_early):
        session.refresh(reminder)
        assert (reminder.status, reminder.attempts) == ("failed", 1)
    # Every patient has the inbox message, once.
    inbox = session.scalar(
        select(func.count())
        .select_from(InboxMessage)
        .where(
            InboxMessage.reminder_id.in_(
                [good.id, good_too.id, exploding.id, exploding_early.id, malformed.id]
            )
        )
    )
    assert inbox == 5


def test_a_crash_mid_batch_repeats_only_the_send_in_flight(session, settings, receiver):
    mail = StandInSMTPServer()
    try:
        reminder = due_with_webhook(
            session, f"{receiver.url}/hook", channels=["inbox", "webhook", "email"]
        )
        local = settings.with_overrides(
            smtp_host=mail.host, smtp_port=mail.port, smtp_starttls=False, **LOCAL_WEBHOOKS
        )
        channels = build_channels(local)
        lease = timedelta(seconds=30)
        # The first runner: claims, sends the webhook and records it, marks the e-mail as in
        # flight, and dies before sending it.
        _counts, leased = claim_and_deliver(
            session, channels, owner="dies", now=NOW, limit=10, lease=lease, settings=local
        )
        assert [item.reminder_id for item in leased] == [reminder.id]
        with read_only_session() as read:
            (this,) = prepare_round(read, leased, channels)
        (webhook_name, webhook, prepared), (email_name, _email, _) = this.sends
        webhook_attempt = begin_send(
            session, leased[0], webhook_name, owner="dies", now=NOW, lease=lease
        )
        record_send(session, webhook_attempt, webhook, prepared, webhook.send(prepared))
        begin_send(session, leased[0], email_name, owner="dies", now=NOW, lease=lease)
        assert attempts(session, reminder) == [
            ("inbox", "sent", None),
            ("webhook", "sent", None),
            ("email", "in_flight", None),
        ]

        # Another runner, once the lease has run out: only the e-mail again.
        survivor = Runner(local, channels, owner="survives", clock=Clock(NOW + lease * 2))
        survivor.close()
        assert survivor.tick().sent == 1

        assert len(receiver.received("/hook")) == 1
        assert len(mail.handler.messages) == 1
        assert attempts(session, reminder) == [
            ("inbox", "sent", None),
            ("webhook", "sent", None),
            ("email", "interrupted", None),
            ("email", "sent", None),
        ]
        session.refresh(reminder)
        assert (reminder.status, reminder.attempts) == ("sent", 2)
    finally:
        mail.close()


def test_a_slow_clinic_does_not_delay_another_clinics_reminders(session, settings, receiver):
    drip = DripServer(every_s=0.2, for_s=60)
    try:
        slow = [due_with_webhook(session, f"{drip.url}/hook") for _ in range(3)]
        fast = [due_with_webhook(session, f"{receiver.url}/hook") for _ in range(3)]
        local = settings.with_overrides(webhook_timeout_s=1.5, **LOCAL_WEBHOOKS)
        runner = Runner(local, build_channels(local), clock=Clock(NOW))
        arrived: list[float] = []
        started = time.monotonic()
        receiver.answer(lambda request: arrived.append(time.monotonic() - started) or Reply())

        counts = runner.tick()
        took = time.monotonic() - started

        assert (counts.sent, counts.failed) == (3, 3)
        # The slow clinic's sends ran out their deadline side by side, not one after another,
        # and the other clinic's were not queued behind them.
        assert took < 3 * 1.5
        assert len(arrived) == 3
        assert max(arrived) < 1.0
        for reminder in slow:
            assert attempts(session, reminder)[-1] == ("webhook", "failed", "timeout")
        for reminder in fast:
            session.refresh(reminder)
            assert reminder.status == "sent"
    finally:
        drip.close()

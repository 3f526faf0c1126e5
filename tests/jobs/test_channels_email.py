"""The e-mail channel against a real local SMTP server: generic text only, retry classes."""

from __future__ import annotations

from email import message_from_bytes, policy

import pytest

from jobs.channels.email import EmailChannel
from service.reminders.channels import Outgoing
from tests.factories import make_clinic, make_patient, make_reminder
from tests.jobs.standins import StandInSMTPServer, free_port

PAYLOAD = {
    "dose_sequence": 3,
    "amount_mg": 600,
    "drug": "ocrelizumab",
    "due_date": "2027-01-04",
    "appointment_at": "2027-01-04T08:30:00+00:00",
    "location": "Infusion unit 2",
    "lead_days": 1,
}


@pytest.fixture
def mail_server():
    server = StandInSMTPServer()
    yield server
    server.close()


def email_channel(settings, port, **overrides):
    values = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_starttls": False,
        "smtp_from": "Clinic <reminders@clinic.example>",
        "smtp_timeout_s": 5.0,
    }
    return EmailChannel(settings.with_overrides(**{**values, **overrides}))


def outgoing(session, *, email="maria@example.org", **fields):
    patient = make_patient(session, make_clinic(session), email=email)
    return Outgoing.from_reminder(make_reminder(session, patient, payload=PAYLOAD, **fields))


def test_mail_says_only_that_a_message_waits(session, settings, mail_server):
    message = outgoing(session)

    result = email_channel(settings, mail_server.port).deliver(session, message)

    assert (result.outcome, result.response_code) == ("sent", 250)
    (mail,) = mail_server.handler.messages
    assert mail.mail_from == "reminders@clinic.example"
    assert mail.rcpt_tos == ["maria@example.org"]
    parsed = message_from_bytes(mail.content, policy=policy.default)
    assert parsed["Subject"] == "A message from your clinic"
    assert parsed["To"] == "maria@example.org"
    body = parsed.get_content()
    assert body.startswith("You have a new message from your clinic.")
    assert "app" in body
    # No drug, dose, date, time or place leaves the app by e-mail.
    for detail in ("ocrelizumab", "600", "2027", "January", "09:30", "08:30", "Infusion", "dose"):
        assert detail not in body
    for word in ("ocrelizumab", "Infusion", "dose", message.idempotency_key):
        assert word not in mail.content.decode()


def test_login_with_configured_credentials(session, settings):
    server = StandInSMTPServer(credentials=("mailer", "s3cret"))
    try:
        channel = email_channel(
            settings, server.port, smtp_username="mailer", smtp_password="s3cret"
        )
        assert channel.deliver(session, outgoing(session)).outcome == "sent"
        assert server.handler.messages[0].login == "mailer"

        wrong = email_channel(settings, server.port, smtp_username="mailer", smtp_password="x")
        result = wrong.deliver(session, outgoing(session))
        assert (result.outcome, result.response_code, result.retryable) == ("failed", 535, False)
    finally:
        server.close()


def test_refused_recipient_is_not_retried(session, settings, mail_server):
    mail_server.handler.rcpt_reply = "550 5.1.1 No such mailbox"

    result = email_channel(settings, mail_server.port).deliver(session, outgoing(session))

    assert (result.outcome, result.response_code, result.retryable) == ("failed", 550, False)
    assert mail_server.handler.messages == []


def test_temporary_refusal_is_retried(session, settings, mail_server):
    mail_server.handler.data_reply = "451 4.3.0 Try again later"

    result = email_channel(settings, mail_server.port).deliver(session, outgoing(session))

    assert (result.outcome, result.response_code, result.retryable) == ("failed", 451, True)


def test_unreachable_server_is_retried(session, settings):
    result = email_channel(settings, free_port()).deliver(session, outgoing(session))
    assert (result.outcome, result.response_code, result.retryable) == ("failed", None, True)


def test_starttls_required_but_not_offered_fails_for_good(session, settings, mail_server):
    channel = email_channel(settings, mail_server.port, smtp_starttls=True)
    result = channel.deliver(session, outgoing(session))
    assert (result.outcome, result.retryable) == ("failed", False)
    assert mail_server.handler.messages == []


def test_no_address_or_staff_audience_is_skipped(session, settings, mail_server):
    channel = email_channel(settings, mail_server.port)
    assert channel.deliver(session, outgoing(session, email=None)).outcome == "skipped"
    staff = outgoing(session, audience="staff", kind="dose_overdue")
    assert channel.deliver(session, staff).outcome == "skipped"
    assert mail_server.handler.messages == []

"""The webhook channel against a real local HTTP server: signature, idempotency, retry classes."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from jobs.channels.webhook import WebhookChannel
from service.core.outbound import OutboundPolicy
from service.reminders.channels import Outgoing
from tests.factories import make_clinic, make_patient, make_reminder
from tests.jobs.standins import Reply, StandInHTTPServer, free_port

SECRET = "whsec-test-0123456789"
NOW = datetime(2027, 1, 3, 8, 0, 5, tzinfo=UTC)


@pytest.fixture
def receiver():
    server = StandInHTTPServer()
    yield server
    server.close()


def outgoing(session, url, *, secret=SECRET, **reminder_fields):
    settings = {"webhook": {"url": url, "secret": secret}} if url else {}
    clinic = make_clinic(session, settings=settings)
    patient = make_patient(session, clinic)
    payload = {"dose_sequence": 2, "amount_mg": 300, "drug": "ocrelizumab", "lead_days": 7}
    # Fired a few seconds before the channel's fixed clock, as the runner would send it.
    reminder_fields.setdefault("fire_at", NOW.replace(second=0))
    reminder = make_reminder(session, patient, payload=payload, **reminder_fields)
    return Outgoing.from_reminder(reminder)


# The stand-ins listen on 127.0.0.1 over plain http: allowed for these tests only.
LOCAL = OutboundPolicy.from_entries(["127.0.0.1"], allow_http=True)


def channel(timeout_s=5.0, policy=LOCAL):
    return WebhookChannel(timeout_s=timeout_s, policy=policy, clock=lambda: NOW)


def test_signed_post_with_idempotency_key(session, receiver):
    message = outgoing(session, f"{receiver.url}/hooks/cd20")

    result = channel().deliver(session, message)

    assert (result.outcome, result.response_code) == ("sent", 200)
    (request,) = receiver.received()
    assert (request.method, request.path) == ("POST", "/hooks/cd20")
    assert request.header("Idempotency-Key") == message.idempotency_key
    assert request.header("Content-Type") == "application/json"
    timestamp = request.header("X-CD20-Timestamp")
    assert timestamp == str(int(NOW.timestamp()))
    # What a receiver does: recompute the HMAC over "<timestamp>.<raw body>" with its secret.
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256)
    assert request.header("X-CD20-Signature") == f"sha256={expected.hexdigest()}"
    assert request.json() == {
        "id": message.reminder_id,
        "idempotency_key": message.idempotency_key,
        "kind": "dose_upcoming",
        "audience": "patient",
        "patient_id": message.patient_id,
        "subject": {"type": "dose", "id": message.subject_id},
        "fire_at": "2027-01-03T08:00:00+00:00",
        "payload": {"dose_sequence": 2, "amount_mg": 300, "drug": "ocrelizumab", "lead_days": 7},
    }


def test_a_wrong_secret_does_not_verify(session, receiver):
    channel().deliver(session, outgoing(session, receiver.url, secret="another-secret"))
    (request,) = receiver.received()
    timestamp = request.header("X-CD20-Timestamp")
    expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + request.body, hashlib.sha256)
    assert request.header("X-CD20-Signature") != f"sha256={expected.hexdigest()}"


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(500, True), (503, True), (429, True), (408, True), (400, False), (404, False), (410, False)],
)
def test_failures_are_classified_for_retry(session, receiver, status, retryable):
    receiver.answer(Reply(status, {"error": "nope"}))

    result = channel().deliver(session, outgoing(session, receiver.url))

    assert (result.outcome, result.response_code, result.retryable) == ("failed", status, retryable)
    # Staff read a fixed word, never the receiver's text.
    assert result.error == f"http_{str(status)[0]}xx"


def test_a_redirect_is_not_followed(session, receiver):
    receiver.answer(Reply(307, {}))
    result = channel().deliver(session, outgoing(session, receiver.url))
    assert (result.outcome, result.retryable, result.error) == ("failed", False, "http_3xx")
    assert len(receiver.received()) == 1


def test_a_silent_receiver_times_out_and_is_retried(session, receiver):
    receiver.answer(Reply(hang=True))

    result = channel(timeout_s=0.3).deliver(session, outgoing(session, receiver.url))

    assert (result.outcome, result.response_code, result.retryable, result.error) == (
        "failed",
        None,
        True,
        "timeout",
    )


def test_nobody_listening_is_retried(session):
    result = channel().deliver(session, outgoing(session, f"http://127.0.0.1:{free_port()}/hook"))
    assert (result.outcome, result.retryable, result.error) == ("failed", True, "connection_failed")


def test_clinic_without_webhook_is_skipped(session, receiver):
    result = channel().deliver(session, outgoing(session, None))
    assert result.outcome == "skipped"
    assert receiver.received() == []


def test_a_non_http_url_fails_for_good(session):
    result = channel().deliver(session, outgoing(session, "file:///etc/passwd"))
    assert (result.outcome, result.retryable) == ("failed", False)

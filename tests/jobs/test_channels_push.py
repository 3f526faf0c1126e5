"""The push channel against local stand-ins for Google's token endpoint and FCM HTTP v1."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from jobs.channels.push import JWT_BEARER_GRANT, SCOPE, PushChannel
from service.models import Device
from service.patients.devices import token_hash
from service.reminders.channels import Outgoing
from tests.factories import make_clinic, make_patient, make_reminder
from tests.jobs.standins import Recorded, Reply, StandInHTTPServer, free_port

PROJECT = "cd20-test"
SEND_PATH = f"/v1/projects/{PROJECT}/messages:send"
ACCESS_TOKEN = "ya29.test-access-token"
CLIENT_EMAIL = "push@cd20-test.iam.gserviceaccount.com"
UNREGISTERED = {
    "error": {
        "code": 404,
        "message": "Requested entity was not found.",
        "status": "NOT_FOUND",
        "details": [
            {
                "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                "errorCode": "UNREGISTERED",
            }
        ],
    }
}


def _pem(key):
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def account_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class FakeGoogle:
    """Answers like Google: checks the signed assertion, then the bearer token on each send."""

    def __init__(self, server, public_key):
        self.server = server
        self.public_key = public_key
        self.token_uri = f"{server.url}/token"
        self.send_replies = {}  # device token -> Reply
        self.issued = 0
        server.route("/token", self.token)
        server.route(SEND_PATH, self.send)

    def token(self, request: Recorded) -> Reply:
        form = request.form()
        try:
            claims = jwt.decode(
                form["assertion"], self.public_key, algorithms=["RS256"], audience=self.token_uri
            )
        except (KeyError, jwt.PyJWTError):
            return Reply(400, {"error": "invalid_grant"})
        if form.get("grant_type") != JWT_BEARER_GRANT or claims.get("scope") != SCOPE:
            return Reply(400, {"error": "invalid_scope"})
        if claims.get("iss") != CLIENT_EMAIL:
            return Reply(400, {"error": "invalid_client"})
        self.issued += 1
        return Reply(
            200, {"access_token": ACCESS_TOKEN, "expires_in": 3600, "token_type": "Bearer"}
        )

    def send(self, request: Recorded) -> Reply:
        if request.header("Authorization") != f"Bearer {ACCESS_TOKEN}":
            return Reply(401, {"error": {"code": 401, "status": "UNAUTHENTICATED"}})
        device_token = request.json()["message"]["token"]
        return self.send_replies.get(device_token, Reply(200, {"name": "projects/x/messages/1"}))

    def sends(self):
        return self.server.received(SEND_PATH)


@pytest.fixture
def google(account_key):
    server = StandInHTTPServer()
    yield FakeGoogle(server, account_key.public_key())
    server.close()


@pytest.fixture
def credentials_file(tmp_path, google, account_key):
    path = tmp_path / "service-account.json"
    path.write_text(
        json.dumps(
            {
                "type": "service_account",
                "project_id": PROJECT,
                "private_key_id": "key-1",
                "private_key": _pem(account_key),
                "client_email": CLIENT_EMAIL,
                "token_uri": google.token_uri,
            }
        )
    )
    return path


@pytest.fixture
def push_settings(settings, google, credentials_file):
    return settings.with_overrides(
        fcm_credentials_file=str(credentials_file),
        fcm_url_template=f"{google.server.url}/v1/projects/{{project_id}}/messages:send",
        fcm_timeout_s=5.0,
    )


def add_device(session, patient, token, platform="android"):
    device = Device(
        patient_id=patient.id, platform=platform, token=token, token_hash=token_hash(token)
    )
    session.add(device)
    session.flush()
    return device


def patient_reminder(session, *tokens, **fields):
    patient = make_patient(session, make_clinic(session))
    for token in tokens:
        add_device(session, patient, token)
    payload = {"drug": "ocrelizumab", "amount_mg": 600, "due_date": "2027-01-04"}
    reminder = make_reminder(session, patient, payload=payload, **fields)
    return patient, Outgoing.from_reminder(reminder)


def tokens_of(session, patient):
    return set(session.scalars(select(Device.token).where(Device.patient_id == patient.id)))


def test_each_device_gets_a_generic_notification(session, push_settings, google):
    _, message = patient_reminder(session, "phone-token", "tablet-token")
    channel = PushChannel(push_settings)

    result = channel.deliver(session, message)

    assert (result.outcome, result.response_code) == ("sent", 200)
    sends = google.sends()
    assert {s.json()["message"]["token"] for s in sends} == {"phone-token", "tablet-token"}
    for send in sends:
        body = send.json()["message"]
        assert body["notification"] == {
            "title": "A message from your clinic",
            "body": "You have a new message from your clinic",
        }
        assert body["data"] == {"reminder_id": str(message.reminder_id), "kind": "dose_upcoming"}
        assert "ocrelizumab" not in send.body.decode()
        assert "600" not in json.dumps(body["notification"])
    # The access token is fetched once and reused while it is valid.
    channel.deliver(session, message)
    assert google.issued == 1
    assert len(google.sends()) == 4


def test_an_expired_access_token_is_renewed(session, push_settings, google):
    _, message = patient_reminder(session, "phone-token")
    # Started an hour ago, so both assertions are valid on the real clock Google checks them by.
    now = [time.time() - 3590]
    channel = PushChannel(push_settings, clock=lambda: now[0])

    channel.deliver(session, message)
    now[0] += 3600 - 30  # inside the renewal margin
    assert channel.deliver(session, message).outcome == "sent"

    assert google.issued == 2


def test_unregistered_device_is_removed_and_the_others_still_get_it(session, push_settings, google):
    google.send_replies["stale-token"] = Reply(404, UNREGISTERED)
    patient, message = patient_reminder(session, "stale-token", "phone-token")

    result = PushChannel(push_settings).deliver(session, message)

    assert result.outcome == "sent"
    assert tokens_of(session, patient) == {"phone-token"}


def test_only_unregistered_devices_is_skipped(session, push_settings, google):
    google.send_replies["stale-token"] = Reply(404, UNREGISTERED)
    patient, message = patient_reminder(session, "stale-token")

    result = PushChannel(push_settings).deliver(session, message)

    assert result.outcome == "skipped"
    assert tokens_of(session, patient) == set()


def test_a_bare_404_removes_nothing(session, push_settings, google):
    google.send_replies["phone-token"] = Reply(404, {})
    patient, message = patient_reminder(session, "phone-token")

    result = PushChannel(push_settings).deliver(session, message)

    assert (result.outcome, result.response_code, result.retryable) == ("failed", 404, False)
    assert tokens_of(session, patient) == {"phone-token"}


def test_no_devices_is_skipped_without_calling_google(session, push_settings, google):
    _, message = patient_reminder(session)
    assert PushChannel(push_settings).deliver(session, message).outcome == "skipped"
    assert google.server.received() == []


@pytest.mark.parametrize(
    ("status", "retryable"), [(500, True), (503, True), (429, True), (400, False), (403, False)]
)
def test_fcm_failures_are_classified_for_retry(session, push_settings, google, status, retryable):
    google.send_replies["phone-token"] = Reply(status, {"error": {"status": "SOMETHING"}})
    patient, message = patient_reminder(session, "phone-token")

    result = PushChannel(push_settings).deliver(session, message)

    assert (result.outcome, result.response_code, result.retryable) == ("failed", status, retryable)
    assert tokens_of(session, patient) == {"phone-token"}


def test_a_rejected_access_token_is_fetched_again(session, push_settings, google):
    _, message = patient_reminder(session, "phone-token")
    channel = PushChannel(push_settings)
    channel.deliver(session, message)
    channel._access_token = "revoked"  # as if Google had revoked it

    failed = channel.deliver(session, message)
    assert (failed.outcome, failed.response_code, failed.retryable) == ("failed", 401, True)
    assert channel.deliver(session, message).outcome == "sent"
    assert google.issued == 2


def test_a_key_google_does_not_know_is_refused(session, push_settings, google, tmp_path):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "other.json"
    path.write_text(
        json.dumps(
            {
                "project_id": PROJECT,
                "private_key": _pem(stranger),
                "client_email": CLIENT_EMAIL,
                "token_uri": google.token_uri,
            }
        )
    )
    _, message = patient_reminder(session, "phone-token")

    result = PushChannel(push_settings.with_overrides(fcm_credentials_file=str(path))).deliver(
        session, message
    )

    assert (result.outcome, result.response_code, result.retryable) == ("failed", 400, False)
    assert google.sends() == []


def test_unreachable_fcm_is_retried(session, push_settings, google):
    url = f"http://127.0.0.1:{free_port()}/v1/projects/{{project_id}}/messages:send"
    _, message = patient_reminder(session, "phone-token", "tablet-token")

    result = PushChannel(push_settings.with_overrides(fcm_url_template=url)).deliver(
        session, message
    )

    assert (result.outcome, result.response_code, result.retryable) == ("failed", None, True)


def test_missing_credentials_fail_for_good(session, push_settings, tmp_path):
    _, message = patient_reminder(session, "phone-token")
    settings = push_settings.with_overrides(fcm_credentials_file=str(tmp_path / "missing.json"))

    result = PushChannel(settings).deliver(session, message)

    assert (result.outcome, result.retryable) == ("failed", False)


def test_staff_reminders_are_not_pushed(session, push_settings, google):
    _, message = patient_reminder(session, "phone-token", audience="staff", kind="dose_overdue")
    assert PushChannel(push_settings).deliver(session, message).outcome == "skipped"
    assert google.server.received() == []

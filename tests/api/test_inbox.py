"""The patient's inbox through the HTTP API: incremental sync by cursor, read marks, isolation."""

from __future__ import annotations

import base64

import pytest

from jobs.channels.inbox import InboxChannel
from service.reminders.channels import Outgoing
from tests.factories import auth_headers, make_clinic, make_patient, make_reminder, make_user

INBOX = "/api/v1/me/inbox"


@pytest.fixture
def patient_app(session, settings):
    """A patient with an app login, and a way to fire reminders into their inbox."""
    clinic = make_clinic(session)
    patient = make_patient(session, clinic)
    user = make_user(session, settings, clinic, "patient", patient=patient)

    def fire(kind="dose_upcoming", **payload):
        reminder = make_reminder(session, patient, kind=kind, payload=payload)
        assert InboxChannel().deliver(session, Outgoing.from_reminder(reminder)).outcome == "sent"
        return reminder

    return auth_headers(settings, user), fire, clinic


def test_phone_syncs_new_messages_and_read_marks_by_cursor(client, patient_app):
    headers, fire, _ = patient_app
    first = client.get(INBOX, headers=headers)
    assert first.status_code == 200
    assert first.get_json()["items"] == []
    cursor = first.get_json()["next"]

    dose = fire("dose_upcoming", drug="ocrelizumab", due_date="2027-01-04", lead_days=7)
    labs = fire("labs_due", task_kind="ig_quant", due_date="2027-01-02")
    synced = client.get(INBOX, query_string={"since": cursor}, headers=headers).get_json()
    assert [m["reminder_id"] for m in synced["items"]] == [dose.id, labs.id]
    item = synced["items"][0]
    assert set(item) == {"id", "reminder_id", "kind", "title", "body", "created_at", "read_at"}
    assert item["kind"] == "dose_upcoming"
    assert "ocrelizumab" in item["body"]
    assert item["read_at"] is None
    assert synced["has_more"] is False
    cursor = synced["next"]

    # Nothing changed: nothing to fetch, and the cursor stays.
    idle = client.get(INBOX, query_string={"since": cursor}, headers=headers).get_json()
    assert idle == {"items": [], "next": cursor, "has_more": False}

    read = client.post(f"{INBOX}/{item['id']}/read", headers=headers)
    assert read.status_code == 200
    assert read.get_json()["read_at"] is not None

    # The read mark is a change too: the phone sees it on its next sync.
    changes = client.get(INBOX, query_string={"since": cursor}, headers=headers).get_json()
    assert [(m["id"], m["read_at"] is not None) for m in changes["items"]] == [(item["id"], True)]

    # Marking again changes nothing.
    again = client.post(f"{INBOX}/{item['id']}/read", headers=headers)
    assert again.status_code == 200
    assert again.get_json()["read_at"] == read.get_json()["read_at"]
    after = client.get(INBOX, query_string={"since": changes["next"]}, headers=headers).get_json()
    assert after["items"] == []

    # A fresh phone gets everything, in change order (the read one moved to the end).
    full = client.get(INBOX, headers=headers).get_json()
    assert [m["reminder_id"] for m in full["items"]] == [labs.id, dose.id]


def test_limit_pages_through_changes(client, patient_app):
    headers, fire, _ = patient_app
    fired = [fire("symptom_checkin").id for _ in range(5)]

    seen, cursor, pages = [], None, 0
    while True:
        query = {"limit": 2} | ({"since": cursor} if cursor else {})
        page = client.get(INBOX, query_string=query, headers=headers).get_json()
        seen += [m["reminder_id"] for m in page["items"]]
        cursor, pages = page["next"], pages + 1
        if not page["has_more"]:
            break
    assert seen == fired
    assert pages == 3


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor!",
        base64.urlsafe_b64encode(b"hello").decode(),
        base64.urlsafe_b64encode(b"inbox:-1").decode(),
        base64.urlsafe_b64encode(b"inbox:").decode(),
        "x" * 100,
    ],
)
def test_invalid_cursor_is_422(client, patient_app, cursor):
    headers, _, _ = patient_app
    response = client.get(INBOX, query_string={"since": cursor}, headers=headers)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert set(response.get_json()["errors"]) == {"since"}


def test_bad_limit_is_422(client, patient_app):
    headers, _, _ = patient_app
    for limit in (0, 201, "ten"):
        response = client.get(INBOX, query_string={"limit": limit}, headers=headers)
        assert response.status_code == 422
        assert set(response.get_json()["errors"]) == {"limit"}


def test_staff_have_no_inbox(client, session, settings, patient_app):
    headers, fire, clinic = patient_app
    fire()
    (message,) = client.get(INBOX, headers=headers).get_json()["items"]
    staff = auth_headers(settings, make_user(session, settings, clinic, "clinician"))

    response = client.get(INBOX, headers=staff)
    assert response.status_code == 403
    assert response.get_json()["code"] == "forbidden"
    assert client.post(f"{INBOX}/{message['id']}/read", headers=staff).status_code == 403


def test_another_patients_message_is_404(client, session, settings, patient_app):
    headers, fire, clinic = patient_app
    fire()
    mine = client.get(INBOX, headers=headers).get_json()["items"][0]
    neighbour = make_patient(session, clinic)
    other = auth_headers(
        settings, make_user(session, settings, clinic, "patient", patient=neighbour)
    )

    response = client.post(f"{INBOX}/{mine['id']}/read", headers=other)
    assert response.status_code == 404
    assert response.content_type == "application/problem+json"
    assert client.get(INBOX, headers=other).get_json()["items"] == []
    assert client.post(f"{INBOX}/999999/read", headers=headers).status_code == 404
    assert client.get(INBOX, headers=headers).get_json()["items"][0]["read_at"] is None


def test_inbox_needs_a_token(client):
    assert client.get(INBOX).status_code == 401

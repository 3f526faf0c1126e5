"""Push devices through the HTTP API: register, re-register, move between patients, delete."""

from __future__ import annotations

from sqlalchemy import select

from service.models import Device
from service.patients.devices import MAX_DEVICES_PER_PATIENT
from tests.factories import auth_headers, make_clinic, make_patient, make_user

DEVICES = "/api/v1/me/devices"


def patient_headers(session, settings, clinic=None):
    clinic = clinic or make_clinic(session)
    patient = make_patient(session, clinic)
    user = make_user(session, settings, clinic, "patient", patient=patient)
    return auth_headers(settings, user), patient


def stored(session, token):
    return session.scalar(select(Device).where(Device.token == token))


def test_register_then_again_returns_the_same_device(client, session, settings):
    headers, patient = patient_headers(session, settings)

    created = client.post(DEVICES, json={"platform": "ios", "token": "apns-abc"}, headers=headers)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert set(body) == {"id", "platform", "created_at", "last_seen_at"}  # never the token
    assert body["platform"] == "ios"

    again = client.post(DEVICES, json={"platform": "ios", "token": "apns-abc"}, headers=headers)
    assert again.status_code == 200
    assert again.get_json()["id"] == body["id"]
    assert again.get_json()["last_seen_at"] >= body["last_seen_at"]
    device = stored(session, "apns-abc")
    assert device.patient_id == patient.id
    assert len(device.token_hash) == 64


def test_a_token_of_another_patient_stays_with_that_patient(client, session, settings):
    """Someone who knows a patient's push token cannot take their reminders off their phone
    (changed from moving the token to whoever registers it)."""
    clinic = make_clinic(session)
    victim, victim_patient = patient_headers(session, settings, clinic)
    taker, _ = patient_headers(session, settings, clinic)
    elsewhere, _ = patient_headers(session, settings)  # another clinic alike
    token = {"platform": "android", "token": "fcm-victims-phone"}

    original = client.post(DEVICES, json=token, headers=victim).get_json()
    for headers in (taker, elsewhere):
        refused = client.post(DEVICES, json=token, headers=headers)
        assert refused.status_code == 409
        assert refused.content_type == "application/problem+json"
        assert refused.get_json()["code"] == "device_in_use"
        assert set(refused.get_json()["errors"]) == {"token"}
    device = stored(session, "fcm-victims-phone")
    assert (device.id, device.patient_id) == (original["id"], victim_patient.id)
    # Once the victim signs out on that phone (deletes it), the phone can be registered anew.
    assert client.delete(f"{DEVICES}/{original['id']}", headers=victim).status_code == 204
    assert client.post(DEVICES, json=token, headers=taker).status_code == 201


def test_delete_own_device_only(client, session, settings):
    clinic = make_clinic(session)
    mine, _ = patient_headers(session, settings, clinic)
    theirs, _ = patient_headers(session, settings, clinic)
    device = client.post(DEVICES, json={"platform": "web", "token": "w1"}, headers=mine).get_json()

    assert client.delete(f"{DEVICES}/{device['id']}", headers=theirs).status_code == 404
    deleted = client.delete(f"{DEVICES}/{device['id']}", headers=mine)
    assert deleted.status_code == 204
    assert deleted.data == b""
    assert stored(session, "w1") is None
    assert client.delete(f"{DEVICES}/{device['id']}", headers=mine).status_code == 404


def test_bad_bodies_are_422(client, session, settings):
    headers, _ = patient_headers(session, settings)
    for body, fields in (
        ({"platform": "symbian", "token": "t"}, {"platform"}),
        ({"platform": "ios", "token": ""}, {"token"}),
        ({"platform": "ios", "token": "x" * 5000}, {"token"}),
        ({"platform": "ios"}, {"token"}),
        ({"platform": "ios", "token": "t", "id": 5}, {"id"}),
    ):
        response = client.post(DEVICES, json=body, headers=headers)
        assert response.status_code == 422, body
        assert response.content_type == "application/problem+json"
        assert set(response.get_json()["errors"]) == fields, body


def test_staff_cannot_register_devices(client, session, settings):
    clinic = make_clinic(session)
    staff = auth_headers(settings, make_user(session, settings, clinic, "clinician"))
    response = client.post(DEVICES, json={"platform": "ios", "token": "t"}, headers=staff)
    assert response.status_code == 403
    assert client.delete(f"{DEVICES}/1", headers=staff).status_code == 403
    assert client.post(DEVICES, json={"platform": "ios", "token": "t"}).status_code == 401


def test_oldest_devices_are_dropped_beyond_the_limit(client, session, settings):
    headers, patient = patient_headers(session, settings)
    for n in range(MAX_DEVICES_PER_PATIENT + 2):
        client.post(DEVICES, json={"platform": "android", "token": f"t{n}"}, headers=headers)

    tokens = session.scalars(select(Device.token).where(Device.patient_id == patient.id)).all()
    assert len(tokens) == MAX_DEVICES_PER_PATIENT
    assert "t0" not in tokens
    assert f"t{MAX_DEVICES_PER_PATIENT + 1}" in tokens

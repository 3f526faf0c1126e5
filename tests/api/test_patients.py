"""Patients through the HTTP API: enrolment, validation, clinic isolation, ETags."""

from __future__ import annotations

from tests.factories import auth_headers, make_clinic, make_patient, make_user

NEW_PATIENT = {
    "mrn": "A-1001",
    "given_name": "Maria",
    "family_name": "Keller",
    "birth_date": "1984-05-02",
    "time_zone": "Europe/Berlin",
    "email": "maria@example.org",
}


def test_clinician_enrols_and_reads_patient(client, session, settings):
    clinic = make_clinic(session)
    staff = make_user(session, settings, clinic, "clinician")
    headers = auth_headers(settings, staff)

    created = client.post("/api/v1/patients", json=NEW_PATIENT, headers=headers)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert body["clinic_id"] == clinic.id
    assert body["reminder_time"] == "09:00"

    read = client.get(f"/api/v1/patients/{body['id']}", headers=headers)
    assert read.status_code == 200
    assert read.headers["ETag"]
    listed = client.get("/api/v1/patients", headers=headers).get_json()
    assert listed["total"] == 1
    assert listed["items"][0]["mrn"] == "A-1001"


def test_bad_input_is_problem_json_with_field_errors(client, session, settings):
    clinic = make_clinic(session)
    headers = auth_headers(settings, make_user(session, settings, clinic))
    bad = dict(NEW_PATIENT, time_zone="Mars/Olympus", birth_date="2999-01-01", extra="x")
    response = client.post("/api/v1/patients", json=bad, headers=headers)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "validation_failed"
    assert set(body["errors"]) == {"time_zone", "birth_date", "extra"}
    assert client.get("/api/v1/patients", headers=headers).get_json()["total"] == 0


def test_malformed_json_is_400(client, session, settings):
    clinic = make_clinic(session)
    headers = auth_headers(settings, make_user(session, settings, clinic))
    response = client.post(
        "/api/v1/patients", data="{not json", headers=headers, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.get_json()["code"] == "malformed_json"


def test_duplicate_mrn_is_409(client, session, settings):
    clinic = make_clinic(session)
    headers = auth_headers(settings, make_user(session, settings, clinic))
    assert client.post("/api/v1/patients", json=NEW_PATIENT, headers=headers).status_code == 201
    again = client.post("/api/v1/patients", json=NEW_PATIENT, headers=headers)
    assert again.status_code == 409
    assert again.get_json()["code"] == "already_exists"


def test_other_clinic_patient_is_404_and_no_token_is_401(client, session, settings):
    mine, theirs = make_clinic(session), make_clinic(session)
    headers = auth_headers(settings, make_user(session, settings, mine))
    foreign = make_patient(session, theirs)
    assert client.get(f"/api/v1/patients/{foreign.id}", headers=headers).status_code == 404
    response = client.get(f"/api/v1/patients/{foreign.id}")
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"


def test_patch_needs_current_etag(client, session, settings):
    clinic = make_clinic(session)
    headers = auth_headers(settings, make_user(session, settings, clinic))
    patient = make_patient(session, clinic)
    url = f"/api/v1/patients/{patient.id}"
    etag = client.get(url, headers=headers).headers["ETag"]

    assert client.patch(url, json={"phone": "+49 30 1234"}, headers=headers).status_code == 428
    ok = client.patch(url, json={"phone": "+49 30 1234"}, headers={**headers, "If-Match": etag})
    assert ok.status_code == 200, ok.get_json()
    stale = client.patch(url, json={"phone": "+49 30 9"}, headers={**headers, "If-Match": etag})
    assert stale.status_code == 412
    assert stale.get_json()["code"] == "stale_version"
    assert client.get(url, headers=headers).get_json()["phone"] == "+49 30 1234"


def test_patient_sees_only_own_record(client, session, settings):
    clinic = make_clinic(session)
    me, other = make_patient(session, clinic), make_patient(session, clinic)
    headers = auth_headers(settings, make_user(session, settings, clinic, "patient", patient=me))
    assert client.get(f"/api/v1/patients/{me.id}", headers=headers).status_code == 200
    assert client.get(f"/api/v1/patients/{other.id}", headers=headers).status_code == 404
    assert client.get("/api/v1/patients", headers=headers).status_code == 403

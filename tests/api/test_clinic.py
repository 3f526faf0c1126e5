"""The clinic's details and regimen settings, and its staff accounts, through the HTTP API."""

from __future__ import annotations

from tests.factories import PASSWORD, auth_headers, make_clinic, make_patient, make_user

CLINIC = "/api/v1/clinic"
USERS = "/api/v1/users"


def _patch(client, url, body, headers):
    etag = client.get(url, headers=headers).headers["ETag"]
    return client.patch(url, json=body, headers={**headers, "If-Match": etag})


def test_staff_read_the_clinic_and_admin_changes_it(client, session, settings):
    clinic = make_clinic(session, name="MS Centre", time_zone="Europe/Berlin")
    admin = auth_headers(settings, make_user(session, settings, clinic, "admin"))
    clinician = auth_headers(settings, make_user(session, settings, clinic, "clinician"))

    read = client.get(CLINIC, headers=clinician)
    assert read.status_code == 200
    assert read.headers["ETag"]
    assert read.get_json() == {
        "id": clinic.id,
        "name": "MS Centre",
        "time_zone": "Europe/Berlin",
        "settings": {},
        "created_at": read.get_json()["created_at"],
    }

    body = {
        "name": "MS Centre North",
        "time_zone": "Europe/Vienna",
        "settings": {
            "ocrelizumab-iv": {"min_interval": "twenty_weeks"},
            "reminders": {"dose_lead_days": [7, 1]},
        },
    }
    changed = _patch(client, CLINIC, body, admin)
    assert changed.status_code == 200, changed.get_json()
    assert client.get(CLINIC, headers=clinician).get_json()["settings"] == body["settings"]
    assert changed.get_json()["time_zone"] == "Europe/Vienna"


def test_patch_needs_the_current_etag(client, session, settings):
    clinic = make_clinic(session)
    admin = auth_headers(settings, make_user(session, settings, clinic, "admin"))
    assert client.patch(CLINIC, json={"name": "X"}, headers=admin).status_code == 428
    etag = client.get(CLINIC, headers=admin).headers["ETag"]
    first = client.patch(CLINIC, json={"name": "X"}, headers={**admin, "If-Match": etag})
    assert first.status_code == 200
    stale = client.patch(CLINIC, json={"name": "Y"}, headers={**admin, "If-Match": etag})
    assert stale.status_code == 412


def test_unknown_setting_or_option_is_422_with_errors(client, session, settings):
    clinic = make_clinic(session)
    admin = auth_headers(settings, make_user(session, settings, clinic, "admin"))
    body = {
        "settings": {
            "ocrelizumab-iv": {"min_interval": "every_full_moon", "colour": "blue"},
            "aspirin-po": {},
            "rituximab-iv": {"min_interval": 5},
            "reminders": {"dose_lead_days": [7, 1]},
        }
    }
    response = _patch(client, CLINIC, body, admin)
    assert response.status_code == 422
    errors = response.get_json()["errors"]["settings"]
    assert set(errors) == {"ocrelizumab-iv", "aspirin-po", "rituximab-iv"}
    assert set(errors["ocrelizumab-iv"]) == {"min_interval", "colour"}
    not_an_object = _patch(client, CLINIC, {"settings": {"reminders": "soon"}}, admin)
    assert not_an_object.status_code == 422
    assert "reminders" in not_an_object.get_json()["errors"]["settings"]
    assert client.get(CLINIC, headers=admin).get_json()["settings"] == {}


def test_bad_time_zone_is_422(client, session, settings):
    clinic = make_clinic(session)
    admin = auth_headers(settings, make_user(session, settings, clinic, "admin"))
    response = _patch(client, CLINIC, {"time_zone": "Mars/Olympus"}, admin)
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"time_zone"}


def test_clinician_and_patient_cannot_change_the_clinic(client, session, settings):
    clinic = make_clinic(session)
    clinician = auth_headers(settings, make_user(session, settings, clinic, "clinician"))
    patient = make_patient(session, clinic)
    patient_headers = auth_headers(
        settings, make_user(session, settings, clinic, "patient", patient=patient)
    )
    etag = client.get(CLINIC, headers=clinician).headers["ETag"]

    for headers in (clinician, patient_headers):
        response = client.patch(
            CLINIC, json={"name": "Mine now"}, headers={**headers, "If-Match": etag}
        )
        assert response.status_code == 403
        assert response.get_json()["code"] == "forbidden"
    assert client.get(CLINIC, headers=patient_headers).status_code == 403


def test_admin_creates_lists_and_deactivates_staff(client, session, settings):
    clinic = make_clinic(session)
    admin_user = make_user(session, settings, clinic, "admin", email="boss@example.org")
    admin = auth_headers(settings, admin_user)
    other_clinic = make_clinic(session)
    make_user(session, settings, other_clinic, "clinician", email="elsewhere@example.org")
    make_user(session, settings, clinic, "patient", patient=make_patient(session, clinic))

    created = client.post(
        USERS,
        json={"email": "New.Nurse@Example.org", "role": "clinician", "password": PASSWORD},
        headers=admin,
    )
    assert created.status_code == 201, created.get_json()
    new = created.get_json()
    assert new["email"] == "new.nurse@example.org"
    assert new["is_active"] is True
    assert "password" not in new

    listed = client.get(USERS, headers=admin).get_json()
    assert [u["email"] for u in listed["items"]] == ["boss@example.org", "new.nurse@example.org"]
    assert client.get(f"{USERS}?role=patient", headers=admin).get_json()["total"] == 1

    login = client.post(
        "/api/v1/auth/token", json={"username": "new.nurse@example.org", "password": PASSWORD}
    )
    nurse = {"Authorization": f"Bearer {login.get_json()['access_token']}"}
    assert client.get(CLINIC, headers=nurse).status_code == 200

    off = _patch(client, f"{USERS}/{new['id']}", {"is_active": False}, admin)
    assert off.status_code == 200, off.get_json()
    assert off.get_json()["is_active"] is False
    assert client.get(CLINIC, headers=nurse).status_code == 401
    again = client.post(
        "/api/v1/auth/token", json={"username": "new.nurse@example.org", "password": PASSWORD}
    )
    assert again.status_code == 401


def test_role_change_ends_tokens_carrying_the_old_role(client, session, settings):
    clinic = make_clinic(session)
    admin = auth_headers(settings, make_user(session, settings, clinic, "admin"))
    user = make_user(session, settings, clinic, "clinician")
    old_token = auth_headers(settings, user)

    promoted = _patch(client, f"{USERS}/{user.id}", {"role": "admin"}, admin)
    assert promoted.get_json()["role"] == "admin"
    assert client.get(CLINIC, headers=old_token).status_code == 401


def test_user_creation_errors(client, session, settings):
    clinic = make_clinic(session)
    admin = auth_headers(settings, make_user(session, settings, clinic, "admin"))
    make_user(session, settings, clinic, email="taken@example.org")

    duplicate = client.post(
        USERS,
        json={"email": "TAKEN@example.org", "role": "clinician", "password": PASSWORD},
        headers=admin,
    )
    assert duplicate.status_code == 409
    assert duplicate.get_json()["code"] == "already_exists"
    bad = client.post(
        USERS, json={"email": "nope", "role": "patient", "password": "short"}, headers=admin
    )
    assert bad.status_code == 422
    assert set(bad.get_json()["errors"]) == {"email", "role", "password"}


def test_admin_cannot_deactivate_or_demote_themselves(client, session, settings):
    clinic = make_clinic(session)
    me = make_user(session, settings, clinic, "admin")
    headers = auth_headers(settings, me)
    for body in ({"is_active": False}, {"role": "clinician"}):
        response = _patch(client, f"{USERS}/{me.id}", body, headers)
        assert response.status_code == 409
    assert client.get(CLINIC, headers=headers).status_code == 200


def test_users_are_for_admins_of_the_clinic_only(client, session, settings):
    clinic, other = make_clinic(session), make_clinic(session)
    clinician = auth_headers(settings, make_user(session, settings, clinic, "clinician"))
    patient = make_patient(session, clinic)
    patient_headers = auth_headers(
        settings, make_user(session, settings, clinic, "patient", patient=patient)
    )
    admin = auth_headers(settings, make_user(session, settings, clinic, "admin"))
    foreign = make_user(session, settings, other, "clinician")

    for headers in (clinician, patient_headers):
        assert client.get(USERS, headers=headers).status_code == 403
        response = client.post(
            USERS,
            json={"email": "x@example.org", "role": "admin", "password": PASSWORD},
            headers=headers,
        )
        assert response.status_code == 403
    assert client.get(f"{USERS}/{foreign.id}", headers=admin).status_code == 404


def test_webhook_secret_is_shown_masked_and_kept_when_the_mask_is_sent_back(
    client, session, settings
):
    clinic = make_clinic(session)
    headers = auth_headers(settings, make_user(session, settings, clinic, "admin"))
    hook = {"url": "https://ehr.example.org/hooks/cd20", "secret": "s" * 32}
    changed = _patch(client, "/api/v1/clinic", {"settings": {"webhook": hook}}, headers)
    assert changed.status_code == 200, changed.get_json()
    assert changed.get_json()["settings"]["webhook"]["secret"] == "********"
    session.refresh(clinic)
    assert clinic.settings["webhook"]["secret"] == "s" * 32

    shown = client.get("/api/v1/clinic", headers=headers).get_json()["settings"]
    again = _patch(client, "/api/v1/clinic", {"settings": shown}, headers)
    assert again.status_code == 200, again.get_json()
    session.refresh(clinic)
    assert clinic.settings["webhook"]["secret"] == "s" * 32

    bad = {"webhook": {"url": "ftp://x", "secret": "short"}}
    refused = _patch(client, "/api/v1/clinic", {"settings": bad}, headers)
    assert refused.status_code == 422
    assert set(refused.get_json()["errors"]["settings"]["webhook"]) == {"url", "secret"}

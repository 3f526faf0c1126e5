"""The caller's own account: who am I, and changing the password."""

from __future__ import annotations

from tests.factories import PASSWORD, auth_headers, make_clinic, make_patient, make_user

ME = "/api/v1/me"
NEW_PASSWORD = "another long passphrase"


def test_me_for_staff_has_no_patient_id(client, session, settings):
    clinic = make_clinic(session)
    admin = make_user(session, settings, clinic, "admin")
    body = client.get(ME, headers=auth_headers(settings, admin)).get_json()
    assert body == {
        "user_id": admin.id,
        "role": "admin",
        "clinic_id": clinic.id,
        "email": admin.email,
    }


def test_me_for_a_patient_names_the_patient(client, session, settings):
    clinic = make_clinic(session)
    patient = make_patient(session, clinic)
    user = make_user(session, settings, clinic, "patient", patient=patient)
    body = client.get(ME, headers=auth_headers(settings, user)).get_json()
    assert body["patient_id"] == patient.id
    assert body["role"] == "patient"


def test_me_needs_a_token(client):
    response = client.get(ME)
    assert response.status_code == 401
    assert response.content_type == "application/problem+json"


def test_password_change_ends_every_session(client, session, settings):
    clinic = make_clinic(session)
    make_user(session, settings, clinic, email="pw@example.org")
    pair = client.post(
        "/api/v1/auth/token", json={"username": "pw@example.org", "password": PASSWORD}
    ).get_json()
    headers = {"Authorization": f"Bearer {pair['access_token']}"}

    response = client.post(
        f"{ME}/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert response.status_code == 204
    assert client.get(ME, headers=headers).status_code == 401
    refresh = client.post("/api/v1/auth/refresh", json={"refresh_token": pair["refresh_token"]})
    assert refresh.status_code == 401
    old = client.post(
        "/api/v1/auth/token", json={"username": "pw@example.org", "password": PASSWORD}
    )
    assert old.status_code == 401
    new = client.post(
        "/api/v1/auth/token", json={"username": "pw@example.org", "password": NEW_PASSWORD}
    )
    assert new.status_code == 200


def test_password_change_checks_current_and_policy(client, session, settings):
    clinic = make_clinic(session)
    user = make_user(session, settings, clinic)
    headers = auth_headers(settings, user)

    wrong = client.post(
        f"{ME}/password",
        json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
        headers=headers,
    )
    assert wrong.status_code == 422
    assert set(wrong.get_json()["errors"]) == {"current_password"}
    short = client.post(
        f"{ME}/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=headers,
    )
    assert short.status_code == 422
    assert set(short.get_json()["errors"]) == {"new_password"}
    # Nothing changed: the token still works.
    assert client.get(ME, headers=headers).status_code == 200

"""Password policy: staff need 12+ characters and nothing common or easy to guess; patients'
passwords refuse the most common ones. Refusals are 422 with a per-field error."""

from __future__ import annotations

import pytest

from service.accounts.passwords import check_password_policy
from service.errors import ValidationFailed
from tests.factories import PASSWORD, auth_headers, make_clinic, make_patient, make_user

USERS = "/api/v1/users"
PASSWORD_CHANGE = "/api/v1/me/password"
ACTIVATE = "/api/v1/auth/activate"
COMMON = ["password12", "password1234", "Password123!", "qwertyuiop123", "iloveyou2024"]


def _assert_refused(response, field):
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "validation_failed"
    assert list(body["errors"]) == [field]
    return body["errors"][field][0]


@pytest.mark.parametrize("password", COMMON)
def test_an_admin_cannot_create_staff_with_a_common_password(client, session, settings, password):
    admin = make_user(session, settings, make_clinic(session), "admin")
    response = client.post(
        USERS,
        json={"email": "new.nurse@example.org", "role": "clinician", "password": password},
        headers=auth_headers(settings, admin),
    )
    message = _assert_refused(response, "password")
    assert "12 characters" in message or "Too common" in message


def test_staff_need_twelve_characters_patients_ten(client, session, settings):
    admin = make_user(session, settings, make_clinic(session), "admin")
    eleven = "vq7 lamp ox"  # eleven characters, not common
    response = client.post(
        USERS,
        json={"email": "eleven@example.org", "role": "admin", "password": eleven},
        headers=auth_headers(settings, admin),
    )
    assert _assert_refused(response, "password") == "Must be at least 12 characters."
    check_password_policy(eleven)  # long enough for a patient
    created = client.post(
        USERS,
        json={"email": "strong@example.org", "role": "admin", "password": "vq7 lamp ox drift"},
        headers=auth_headers(settings, admin),
    )
    assert created.status_code == 201, created.get_json()


def test_a_password_made_of_the_staff_members_email_is_refused():
    with pytest.raises(ValidationFailed) as refused:
        check_password_policy(
            "margarethekowalski", staff=True, user_inputs=["margarethe.kowalski@example.org"]
        )
    assert "password" in refused.value.errors


def test_staff_cannot_change_to_a_common_password(client, session, settings):
    admin = make_user(session, settings, make_clinic(session), "admin")
    response = client.post(
        PASSWORD_CHANGE,
        json={"current_password": PASSWORD, "new_password": "password1234"},
        headers=auth_headers(settings, admin),
    )
    assert "Too common" in _assert_refused(response, "new_password")


@pytest.mark.parametrize("password", ["password12", "1234567890", "qwertyuiop"])
def test_patients_cannot_choose_the_most_common_passwords(client, session, settings, password):
    clinic = make_clinic(session)
    patient = make_patient(session, clinic)
    user = make_user(session, settings, clinic, "patient", patient=patient)
    response = client.post(
        PASSWORD_CHANGE,
        json={"current_password": PASSWORD, "new_password": password},
        headers=auth_headers(settings, user),
    )
    assert "Too common" in _assert_refused(response, "new_password")

    staff = make_user(session, settings, clinic)
    invited = make_patient(session, clinic)
    code = client.post(
        f"/api/v1/patients/{invited.id}/invitation", headers=auth_headers(settings, staff)
    ).get_json()["code"]
    refused = client.post(ACTIVATE, json={"code": code, "password": password})
    assert "Too common" in _assert_refused(refused, "password")
    # The code was not used up by the refused attempt.
    ok = client.post(ACTIVATE, json={"code": code, "password": "my own long passphrase"})
    assert ok.status_code == 201, ok.get_json()


def test_a_long_passphrase_is_checked_on_its_first_72_characters_quickly():
    check_password_policy("correct horse battery staple " * 8, staff=True)
    with pytest.raises(ValidationFailed):
        check_password_policy("password" * 30, staff=True)

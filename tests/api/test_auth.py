"""Log in, refresh rotation and reuse, logout, token checks, invitations and activation."""

from __future__ import annotations

import base64
import json
from datetime import timedelta

from service.accounts.tokens import create_access_token
from service.db import utcnow
from tests.factories import (
    PASSWORD,
    auth_headers,
    make_clinic,
    make_patient,
    make_user,
    past_refresh_grace,
)

TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
ACTIVATE = "/api/v1/auth/activate"
NEW_PASSWORD = "a new long passphrase"


def log_in(client, email, password=PASSWORD):
    return client.post(TOKEN, json={"username": email, "password": password})


def bearer(access_token):
    return {"Authorization": f"Bearer {access_token}"}


def test_login_returns_tokens_that_work(client, session, settings):
    clinic = make_clinic(session)
    staff = make_user(session, settings, clinic, email="Nurse.Ann@Example.org")

    response = log_in(client, "  NURSE.ann@example.ORG")
    assert response.status_code == 200, response.get_json()
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_json()
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == settings.access_token_ttl_s
    assert body["refresh_token"]
    me = client.get("/api/v1/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.get_json() == {
        "user_id": staff.id,
        "role": "clinician",
        "clinic_id": clinic.id,
        "email": "nurse.ann@example.org",
    }


def test_wrong_password_unknown_user_and_inactive_look_the_same(client, session, settings):
    clinic = make_clinic(session)
    make_user(session, settings, clinic, email="a@example.org")
    inactive = make_user(session, settings, clinic, email="b@example.org")
    inactive.is_active = False
    session.flush()

    for email, password in [
        ("a@example.org", "wrong password!"),
        ("nobody@example.org", PASSWORD),
        ("b@example.org", PASSWORD),
    ]:
        response = log_in(client, email, password)
        assert response.status_code == 401
        assert response.content_type == "application/problem+json"
        body = response.get_json()
        assert body["code"] == "invalid_credentials"
        assert "access_token" not in body


def test_ten_failures_lock_the_account_and_success_resets_the_count(client, session, settings):
    clinic = make_clinic(session)
    make_user(session, settings, clinic, email="lock@example.org")

    for _ in range(9):
        assert log_in(client, "lock@example.org", "not the password").status_code == 401
    assert log_in(client, "lock@example.org").status_code == 200  # resets the count
    for _ in range(9):
        failed = log_in(client, "lock@example.org", "not the password")
        assert failed.get_json()["code"] == "invalid_credentials"

    tenth = log_in(client, "lock@example.org", "not the password")
    assert tenth.status_code == 401
    assert tenth.get_json()["code"] == "account_locked"
    locked = log_in(client, "lock@example.org")  # even the right password
    assert locked.status_code == 401
    assert locked.get_json()["code"] == "account_locked"
    assert 0 < int(locked.headers["Retry-After"]) <= 15 * 60


def test_refresh_rotates_and_the_new_pair_works(client, session, settings):
    clinic = make_clinic(session)
    make_user(session, settings, clinic, email="r@example.org")
    first = log_in(client, "r@example.org").get_json()

    rotated = client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200, rotated.get_json()
    second = rotated.get_json()
    assert second["refresh_token"] != first["refresh_token"]
    assert client.get("/api/v1/me", headers=bearer(second["access_token"])).status_code == 200
    third = client.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    assert third.status_code == 200


def test_reusing_a_used_refresh_token_revokes_the_family(client, session, settings):
    clinic = make_clinic(session)
    make_user(session, settings, clinic, email="reuse@example.org")
    first = log_in(client, "reuse@example.org").get_json()
    second = client.post(REFRESH, json={"refresh_token": first["refresh_token"]}).get_json()
    # Past the grace window in which a repeat gets the same pair (test_refresh_grace.py).
    past_refresh_grace(session, settings)

    replay = client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    assert replay.get_json()["code"] == "invalid_token"
    # The token the rotation handed out is part of the family: it is dead too ...
    after = client.post(REFRESH, json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401
    # ... and so are the access tokens issued until then.
    assert client.get("/api/v1/me", headers=bearer(second["access_token"])).status_code == 401
    # A fresh login starts a new family.
    assert log_in(client, "reuse@example.org").status_code == 200


def test_unknown_or_malformed_refresh_token_is_401_or_422(client, session, settings):
    assert client.post(REFRESH, json={"refresh_token": "made-up"}).status_code == 401
    assert client.post(REFRESH, json={}).status_code == 422
    assert client.post(REFRESH, json={"refresh_token": "x" * 201}).status_code == 422


def test_refresh_token_is_not_an_access_token(client, session, settings):
    clinic = make_clinic(session)
    make_user(session, settings, clinic, email="mix@example.org")
    pair = log_in(client, "mix@example.org").get_json()
    response = client.get("/api/v1/me", headers=bearer(pair["refresh_token"]))
    assert response.status_code == 401
    assert response.get_json()["code"] == "invalid_token"


def _unsigned(claims):
    def part(data):
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def test_alg_none_expired_and_wrong_audience_tokens_are_refused(client, session, settings):
    clinic = make_clinic(session)
    user = make_user(session, settings, clinic)
    now = int(utcnow().timestamp())
    unsigned = _unsigned(
        {
            "iss": settings.jwt_issuer,
            "aud": settings.jwt_audience,
            "sub": str(user.id),
            "iat": now,
            "exp": now + 600,
            "typ": "access",
            "role": "admin",
            "clinic_id": clinic.id,
            "gen": user.token_generation,
        }
    )
    claims = {"user_id": user.id, "generation": user.token_generation}
    expired = create_access_token(
        settings, now=utcnow() - timedelta(seconds=settings.access_token_ttl_s + 60), **claims
    )
    other_audience = create_access_token(
        settings.with_overrides(jwt_audience="some-other-api"), **claims
    )
    other_key = create_access_token(settings.with_overrides(secret_key="k" * 48), **claims)

    for token in (unsigned, expired, other_audience, other_key, "not-a-jwt"):
        response = client.get("/api/v1/me", headers=bearer(token))
        assert response.status_code == 401, token
        assert response.get_json()["code"] == "invalid_token"
    assert client.get("/api/v1/me", headers=auth_headers(settings, user)).status_code == 200


def test_logout_ends_the_family_and_the_access_token(client, session, settings):
    clinic = make_clinic(session)
    make_user(session, settings, clinic, email="out@example.org")
    phone = log_in(client, "out@example.org").get_json()
    tablet = log_in(client, "out@example.org").get_json()

    response = client.post(
        LOGOUT,
        json={"refresh_token": phone["refresh_token"]},
        headers=bearer(phone["access_token"]),
    )
    assert response.status_code == 204
    assert client.get("/api/v1/me", headers=bearer(phone["access_token"])).status_code == 401
    assert client.post(REFRESH, json={"refresh_token": phone["refresh_token"]}).status_code == 401
    # The other device's session goes on: it refreshes into a working access token.
    renewed = client.post(REFRESH, json={"refresh_token": tablet["refresh_token"]})
    assert renewed.status_code == 200
    assert (
        client.get("/api/v1/me", headers=bearer(renewed.get_json()["access_token"])).status_code
        == 200
    )


def test_logout_without_a_token_ends_every_session(client, session, settings):
    clinic = make_clinic(session)
    make_user(session, settings, clinic, email="all@example.org")
    phone = log_in(client, "all@example.org").get_json()
    tablet = log_in(client, "all@example.org").get_json()

    assert client.post(LOGOUT, headers=bearer(phone["access_token"])).status_code == 204
    for pair in (phone, tablet):
        assert (
            client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}).status_code == 401
        )
    assert client.post(LOGOUT).status_code == 401


def test_invitation_activation_login_and_me(client, session, settings):
    clinic = make_clinic(session)
    staff = auth_headers(settings, make_user(session, settings, clinic))
    patient = make_patient(session, clinic, email="Maria.Keller@Example.org")

    invited = client.post(f"/api/v1/patients/{patient.id}/invitation", headers=staff)
    assert invited.status_code == 201, invited.get_json()
    invitation = invited.get_json()
    assert invitation["email"] == "maria.keller@example.org"
    assert invitation["expires_at"]
    code = invitation["code"]
    assert len(code.replace("-", "")) == 10

    # Typed in lower case and without the dash: still the same code.
    typed = code.replace("-", "").lower()
    activated = client.post(ACTIVATE, json={"code": typed, "password": NEW_PASSWORD})
    assert activated.status_code == 201, activated.get_json()
    assert activated.get_json()["access_token"]

    login = log_in(client, "MARIA.keller@example.org", NEW_PASSWORD)
    assert login.status_code == 200
    me = client.get("/api/v1/me", headers=bearer(login.get_json()["access_token"])).get_json()
    assert me["role"] == "patient"
    assert me["patient_id"] == patient.id
    assert me["clinic_id"] == clinic.id

    again = client.post(ACTIVATE, json={"code": code, "password": NEW_PASSWORD})
    assert again.status_code == 422
    assert again.get_json()["code"] == "invalid_code"
    assert "code" in again.get_json()["errors"]
    # The account exists now: no second invitation.
    repeat = client.post(f"/api/v1/patients/{patient.id}/invitation", headers=staff)
    assert repeat.status_code == 409
    assert repeat.get_json()["code"] == "already_exists"


def test_a_new_invitation_replaces_the_earlier_code(client, session, settings):
    clinic = make_clinic(session)
    staff = auth_headers(settings, make_user(session, settings, clinic))
    patient = make_patient(session, clinic)
    url = f"/api/v1/patients/{patient.id}/invitation"
    old = client.post(url, headers=staff).get_json()["code"]
    new = client.post(url, headers=staff).get_json()["code"]

    stale = client.post(ACTIVATE, json={"code": old, "password": NEW_PASSWORD})
    assert stale.status_code == 422
    assert stale.get_json()["code"] == "invalid_code"
    assert client.post(ACTIVATE, json={"code": new, "password": NEW_PASSWORD}).status_code == 201


def test_activation_checks_the_password_policy_before_using_the_code(client, session, settings):
    clinic = make_clinic(session)
    staff = auth_headers(settings, make_user(session, settings, clinic))
    patient = make_patient(session, clinic)
    code = client.post(f"/api/v1/patients/{patient.id}/invitation", headers=staff).get_json()[
        "code"
    ]

    for password in ("short", "x" * 257):
        response = client.post(ACTIVATE, json={"code": code, "password": password})
        assert response.status_code == 422
        assert set(response.get_json()["errors"]) == {"password"}
    assert client.post(ACTIVATE, json={"code": code, "password": NEW_PASSWORD}).status_code == 201


def test_made_up_code_is_invalid_code(client, session, settings):
    response = client.post(ACTIVATE, json={"code": "ABCDE-FGHJK", "password": NEW_PASSWORD})
    assert response.status_code == 422
    assert response.get_json()["code"] == "invalid_code"


def test_invitation_needs_an_email_and_staff_of_the_clinic(client, session, settings):
    mine, theirs = make_clinic(session), make_clinic(session)
    staff = auth_headers(settings, make_user(session, settings, mine))
    no_email = make_patient(session, mine, email=None)
    foreign = make_patient(session, theirs)
    patient = make_patient(session, mine)
    patient_headers = auth_headers(
        settings, make_user(session, settings, mine, "patient", patient=patient)
    )

    missing = client.post(f"/api/v1/patients/{no_email.id}/invitation", headers=staff)
    assert missing.status_code == 422
    assert set(missing.get_json()["errors"]) == {"email"}
    assert (
        client.post(f"/api/v1/patients/{foreign.id}/invitation", headers=staff).status_code == 404
    )
    own = client.post(f"/api/v1/patients/{patient.id}/invitation", headers=patient_headers)
    assert own.status_code == 403


def test_invitation_refused_when_the_email_belongs_to_another_account(client, session, settings):
    clinic = make_clinic(session)
    staff_user = make_user(session, settings, clinic, email="shared@example.org")
    patient = make_patient(session, clinic, email="Shared@example.org")
    response = client.post(
        f"/api/v1/patients/{patient.id}/invitation", headers=auth_headers(settings, staff_user)
    )
    assert response.status_code == 409
    assert set(response.get_json()["errors"]) == {"email"}


def test_activation_refused_when_the_email_was_taken_meanwhile(client, session, settings):
    clinic = make_clinic(session)
    staff = auth_headers(settings, make_user(session, settings, clinic))
    patient = make_patient(session, clinic, email="late@example.org")
    code = client.post(f"/api/v1/patients/{patient.id}/invitation", headers=staff).get_json()[
        "code"
    ]
    make_user(session, settings, clinic, email="late@example.org")

    response = client.post(ACTIVATE, json={"code": code, "password": NEW_PASSWORD})
    assert response.status_code == 409
    assert log_in(client, "late@example.org", NEW_PASSWORD).status_code == 401

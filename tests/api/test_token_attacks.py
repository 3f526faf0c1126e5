"""Forged, stale and misused tokens: every one is 401, on reads and on creating POSTs alike."""

from __future__ import annotations

import base64
import json
import warnings
from datetime import timedelta

import jwt
import pytest
from jwt.warnings import InsecureKeyLengthWarning

from service.app import create_app
from service.config import DEV_SECRET_KEY, ConfigurationError
from service.db import utcnow
from tests.factories import PASSWORD, auth_headers, make_patient, make_user, past_refresh_grace

TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/refresh"
LOGOUT = "/api/v1/auth/logout"
PASSWORD_CHANGE = "/api/v1/me/password"
ME = "/api/v1/me"
USERS = "/api/v1/users"
PATIENTS = "/api/v1/patients"
NEW_PATIENT = {
    "mrn": "ATK-1",
    "given_name": "Eve",
    "family_name": "Forger",
    "birth_date": "1980-01-01",
    "time_zone": "Europe/Berlin",
}


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _part(obj: dict) -> str:
    return _b64(json.dumps(obj).encode())


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def patient_user(session, settings, clinic):
    patient = make_patient(session, clinic)
    return make_user(session, settings, clinic, "patient", patient=patient, email="eve@example.org")


def _claims(settings, user, **changes):
    now = int(utcnow().timestamp())
    claims = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user.id),
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "jti": "x",
        "typ": "access",
        "gen": user.token_generation,
    }
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def _signed(settings, claims, *, key=None, algorithm="HS256"):
    with warnings.catch_warnings():
        # The test secret is shorter than HS384/HS512 would like: it is the forger's problem.
        warnings.simplefilter("ignore", InsecureKeyLengthWarning)
        return jwt.encode(claims, key or settings.secret_key, algorithm=algorithm)


def _assert_refused(client, token):
    """401 invalid_token (problem+json) on a read and on a creating POST with an Idempotency-Key."""
    for response in (
        client.get(ME, headers=bearer(token)),
        client.post(
            PATIENTS,
            json=NEW_PATIENT,
            headers={**bearer(token), "Idempotency-Key": "attack"},
        ),
    ):
        assert response.status_code == 401, response.get_json()
        assert response.content_type == "application/problem+json"
        assert response.get_json()["code"] == "invalid_token"


def test_the_genuine_token_works(client, session, settings, patient_user):
    token = _signed(settings, _claims(settings, patient_user))
    assert client.get(ME, headers=bearer(token)).status_code == 200


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_is_refused(client, session, settings, patient_user, alg):
    claims = _claims(settings, patient_user, role="admin")
    unsigned = f"{_part({'alg': alg, 'typ': 'JWT'})}.{_part(claims)}."
    _assert_refused(client, unsigned)
    # With the genuine signature of another token appended, still nothing.
    genuine = _signed(settings, _claims(settings, patient_user)).split(".")[2]
    _assert_refused(client, unsigned + genuine)


def test_a_tampered_payload_with_the_old_signature_is_refused(
    client, session, settings, patient_user
):
    header, _, signature = _signed(settings, _claims(settings, patient_user)).split(".")
    escalated = _part(_claims(settings, patient_user, role="admin", patient_id=None))
    _assert_refused(client, f"{header}.{escalated}.{signature}")


def test_a_token_signed_with_another_key_is_refused(client, session, settings, patient_user):
    _assert_refused(client, _signed(settings, _claims(settings, patient_user), key="k" * 64))
    _assert_refused(client, _signed(settings, _claims(settings, patient_user), key=DEV_SECRET_KEY))


def test_a_token_signed_with_the_old_public_development_key_is_refused(
    client, session, settings, clinic
):
    """What the old default secret let anyone mint: an admin token with any clinic's claims."""
    staff = make_user(session, settings, clinic, "clinician")
    claims = _claims(settings, staff, role="admin", clinic_id=clinic.id + 1)
    _assert_refused(client, _signed(settings, claims, key=DEV_SECRET_KEY))
    _assert_refused(client, _signed(settings, _claims(settings, staff), key=DEV_SECRET_KEY))


@pytest.mark.parametrize(
    "edit",
    [
        {"role": "admin"},
        {"clinic_id": 999999},
        {"patient_id": 1},
        {"role": "admin", "clinic_id": 999999, "patient_id": None},
    ],
)
def test_a_token_with_an_added_or_edited_role_claim_is_refused_even_re_signed(
    client, session, settings, clinic, edit
):
    """Tokens carry the user and generation only: any other claim makes the token 401."""
    staff = make_user(session, settings, clinic, "clinician")
    claims = _claims(settings, staff, **edit)
    claims.update({name: value for name, value in edit.items() if value is None})
    _assert_refused(client, _signed(settings, claims))


def test_a_token_carries_no_role_clinic_or_patient(client, session, settings, patient_user):
    pair = _log_in(client, "eve@example.org")
    claims = jwt.decode(pair["access_token"], options={"verify_signature": False})
    assert set(claims) == {"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "typ", "gen"}


def test_a_role_changed_in_the_database_applies_to_the_next_request_with_the_old_token(
    client, session, settings, clinic
):
    admin = make_user(session, settings, clinic, "admin")
    headers = auth_headers(settings, admin)
    assert client.get(USERS, headers=headers).status_code == 200
    # Changed straight in the database (no generation bump): the old token carries no role.
    admin.role = "clinician"
    session.flush()
    me = client.get(ME, headers=headers)
    assert me.status_code == 200
    assert me.get_json()["role"] == "clinician"
    assert client.get(USERS, headers=headers).status_code == 403


@pytest.mark.parametrize("algorithm", ["HS384", "HS512"])
def test_only_the_pinned_algorithm_is_accepted(client, session, settings, patient_user, algorithm):
    # Right key, other algorithm: the service accepts HS256 only.
    _assert_refused(client, _signed(settings, _claims(settings, patient_user), algorithm=algorithm))


def test_an_expired_token_is_refused(client, session, settings, patient_user):
    now = int(utcnow().timestamp())
    stale = _claims(settings, patient_user, iat=now - 1200, nbf=now - 1200, exp=now - 600)
    _assert_refused(client, _signed(settings, stale))


def test_a_token_not_yet_valid_is_refused(client, session, settings, patient_user):
    later = int((utcnow() + timedelta(hours=1)).timestamp())
    _assert_refused(client, _signed(settings, _claims(settings, patient_user, nbf=later)))


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("aud", "some-other-api"),
        ("aud", None),
        ("iss", "someone-else"),
        ("iss", None),
        ("exp", None),
        ("sub", None),
        ("typ", "refresh"),
        ("typ", None),
    ],
)
def test_wrong_or_missing_claims_are_refused(client, session, settings, patient_user, claim, value):
    _assert_refused(client, _signed(settings, _claims(settings, patient_user, **{claim: value})))


def test_a_token_of_an_older_generation_is_refused(client, session, settings, patient_user):
    old = _claims(settings, patient_user, gen=patient_user.token_generation - 1)
    _assert_refused(client, _signed(settings, old))


def test_a_token_of_a_deactivated_or_unknown_account_is_refused(
    client, session, settings, patient_user
):
    token = auth_headers(settings, patient_user)["Authorization"].split()[1]
    patient_user.is_active = False
    session.flush()
    _assert_refused(client, token)
    _assert_refused(client, _signed(settings, _claims(settings, patient_user, sub="999999")))


def test_garbage_and_misplaced_tokens_are_401(client, session, settings, patient_user):
    for token in ("not-a-jwt", "a.b.c", "", "e30.e30.", "Bearer"):
        response = client.get(ME, headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
    good = auth_headers(settings, patient_user)["Authorization"].split()[1]
    assert client.get(ME, headers={"Authorization": f"Basic {good}"}).status_code == 401
    assert client.get(ME, headers={"Authorization": good}).status_code == 401
    assert client.get(f"{ME}?access_token={good}").status_code == 401


def _log_in(client, email):
    response = client.post(TOKEN, json={"username": email, "password": PASSWORD})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_refresh_token_is_not_an_access_token(client, session, settings, patient_user):
    pair = _log_in(client, "eve@example.org")
    _assert_refused(client, pair["refresh_token"])
    # Nor the other way round.
    refused = client.post(REFRESH, json={"refresh_token": pair["access_token"]})
    assert refused.status_code in (401, 422)


def test_a_reused_refresh_token_ends_the_whole_family(client, session, settings, patient_user):
    first = _log_in(client, "eve@example.org")
    rotated = client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert rotated.status_code == 200
    second = rotated.get_json()
    past_refresh_grace(session, settings)  # a repeat within it gets the same pair

    reuse = client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    assert reuse.status_code == 401
    assert reuse.get_json()["code"] == "invalid_token"
    assert client.post(REFRESH, json={"refresh_token": second["refresh_token"]}).status_code == 401
    _assert_refused(client, second["access_token"])
    _assert_refused(client, first["access_token"])


def test_tokens_after_logout_are_refused(client, session, settings, patient_user):
    pair = _log_in(client, "eve@example.org")
    assert client.post(LOGOUT, json={}, headers=bearer(pair["access_token"])).status_code == 204
    _assert_refused(client, pair["access_token"])
    assert client.post(REFRESH, json={"refresh_token": pair["refresh_token"]}).status_code == 401


def test_tokens_after_a_password_change_are_refused(client, session, settings, patient_user):
    pair = _log_in(client, "eve@example.org")
    other_device = _log_in(client, "eve@example.org")
    changed = client.post(
        PASSWORD_CHANGE,
        json={"current_password": PASSWORD, "new_password": "another long passphrase"},
        headers=bearer(pair["access_token"]),
    )
    assert changed.status_code == 204
    for tokens in (pair, other_device):
        _assert_refused(client, tokens["access_token"])
        assert (
            client.post(REFRESH, json={"refresh_token": tokens["refresh_token"]}).status_code == 401
        )


@pytest.mark.parametrize("secret", [DEV_SECRET_KEY, "short", "x" * 31])
def test_production_refuses_a_default_or_short_secret(settings, secret):
    with pytest.raises(ConfigurationError):
        create_app(settings, environment="production", secret_key=secret)

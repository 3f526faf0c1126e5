"""Logging in cannot be turned against the user: guesses from one address never lock the real
user out elsewhere, unknown and known e-mails answer alike, failed logins reach the clinic's
audit trail and the staff worklist, and the password change shares the log-in's limits."""

from __future__ import annotations

import json
import statistics
import time

import pytest
from sqlalchemy import select

from service.app import create_app
from service.config import Settings
from service.models import StaffAlert
from tests.factories import PASSWORD, auth_headers, make_clinic, make_user

TOKEN = "/api/v1/auth/token"
AUDIT = "/api/v1/audit"
WORKLIST = "/api/v1/staff/worklist"
PASSWORD_CHANGE = "/api/v1/me/password"
ATTACKER = "203.0.113.66"
USER_ADDRESS = "198.51.100.20"


def log_in(client, username, password="wrong password!", address=ATTACKER):
    return client.post(
        TOKEN,
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def _comparable(response):
    """What a client sees of a refusal, less the per-response values."""
    headers = {
        name: value
        for name, value in response.headers.items()
        if name not in ("X-Request-ID", "Retry-After", "Date")
    }
    body = json.dumps(response.get_json(), sort_keys=True)
    return response.status_code, body, tuple(sorted(headers.items()))


@pytest.fixture
def limited_app(settings, session):
    """Limits on, at their defaults (10 a minute per address, 5 per account from one address)."""
    defaults = Settings()
    app = create_app(
        settings,
        rate_limits_enabled=True,
        login_limit_per_address=defaults.login_limit_per_address,
        login_limit_per_account=defaults.login_limit_per_account,
    )
    app.config["TESTING"] = True
    return app


def test_ten_wrong_passwords_from_one_address_do_not_stop_the_real_user_from_another(
    client, session, settings
):
    make_user(session, settings, make_clinic(session), "admin", email="ada@example.org")
    answers = [log_in(client, "ada@example.org") for _ in range(10)]
    assert [a.get_json()["code"] for a in answers[:9]] == ["invalid_credentials"] * 9
    assert answers[9].get_json()["code"] == "account_locked"
    # The attacker's address is locked out of the account, even with the right password ...
    assert log_in(client, "ada@example.org", PASSWORD).get_json()["code"] == "account_locked"
    # ... the real user, elsewhere, is not.
    mine = log_in(client, "ada@example.org", PASSWORD, address=USER_ADDRESS)
    assert mine.status_code == 200, mine.get_json()
    assert mine.get_json()["access_token"]


def test_with_rate_limits_on_the_real_user_still_logs_in_from_another_address(
    limited_app, session, settings
):
    make_user(session, settings, make_clinic(session), "admin", email="bea@example.org")
    client = limited_app.test_client()
    codes = [log_in(client, "bea@example.org").status_code for _ in range(10)]
    assert codes[:5] == [401] * 5
    assert codes[5:] == [429] * 5
    assert log_in(client, "bea@example.org", PASSWORD, address=USER_ADDRESS).status_code == 200


def test_unknown_and_known_emails_answer_identically(client, session, settings):
    clinic = make_clinic(session)
    make_user(session, settings, clinic, email="known@example.org")
    inactive = make_user(session, settings, clinic, email="inactive@example.org")
    inactive.is_active = False
    session.flush()
    names = ["known@example.org", "nobody@example.org", "inactive@example.org"]

    first = {
        _comparable(log_in(client, name, address=f"192.0.2.{n}")) for n, name in enumerate(names)
    }
    assert len(first) == 1
    (status, body, _headers) = first.pop()
    assert (status, json.loads(body)["code"]) == (401, "invalid_credentials")

    # The tenth failure from one address locks that address out of the name, real or not.
    locked = set()
    for n, name in enumerate(names):
        for _ in range(9):
            log_in(client, name, address=f"192.0.2.{n}")
        tenth = log_in(client, name, address=f"192.0.2.{n}")
        assert 0 < int(tenth.headers["Retry-After"]) <= 15 * 60
        locked.add(_comparable(tenth))
        locked.add(_comparable(log_in(client, name, PASSWORD, address=f"192.0.2.{n}")))
    assert len(locked) == 1
    assert json.loads(locked.pop()[1])["code"] == "account_locked"


def test_unknown_and_known_emails_take_comparable_time(settings, session):
    """With production argon2 costs: the unknown name hashes a dummy password."""
    production = Settings()
    app = create_app(
        settings,
        argon2_time_cost=production.argon2_time_cost,
        argon2_memory_kib=production.argon2_memory_kib,
        argon2_parallelism=production.argon2_parallelism,
    )
    make_user(
        session,
        app.extensions["cd20_settings"],
        make_clinic(session),
        email="timed@example.org",
    )
    client = app.test_client()
    timings: dict[str, list[float]] = {"timed@example.org": [], "nobody@example.org": []}
    for n in range(7):
        for name, seen in timings.items():
            # CPU time: the work each path does, not the waits of a shared machine's scheduler.
            started = time.process_time()
            assert log_in(client, name, address=f"192.0.2.{n}").status_code == 401
            seen.append(time.process_time() - started)
    known, unknown = (statistics.median(seen) for seen in timings.values())
    assert 0.67 < known / unknown < 1.5, (known, unknown)


def test_failed_logins_are_in_the_clinic_admins_audit_trail(client, session, settings):
    clinic = make_clinic(session)
    admin = make_user(session, settings, clinic, "admin")
    nurse = make_user(session, settings, clinic, email="nurse.kim@example.org")
    log_in(client, "nurse.kim@example.org")
    log_in(client, "no.such.person@example.org")

    events = client.get(
        AUDIT, query_string={"outcome": "denied"}, headers=auth_headers(settings, admin)
    ).get_json()["items"]
    logins = [e for e in events if e["resource_type"] == "session"]
    assert len(logins) == 1  # the unknown name belongs to no clinic
    event = logins[0]
    assert event["clinic_id"] == clinic.id
    assert event["actor_id"] is None
    assert event["status_code"] == 401
    assert event["source_address"] == ATTACKER
    assert event["details"] == {
        "operation": "token",
        "account_id": nurse.id,
        "code": "invalid_credentials",
    }


def test_a_staff_alert_appears_past_the_threshold_once(client, session, settings):
    clinic = make_clinic(session)
    clinician = make_user(session, settings, clinic)
    target = make_user(session, settings, clinic, "admin", email="boss@example.org")
    # Spread over addresses, as a distributed guesser would: no address is locked.
    for n in range(settings.login_alert_after + 5):
        assert log_in(client, "boss@example.org", address=f"10.0.{n}.1").status_code == 401

    worklist = client.get(WORKLIST, headers=auth_headers(settings, clinician)).get_json()
    alerts = [a for a in worklist["alerts"] if a["kind"] == "login_failures"]
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["subject"] == {"type": "user", "id": target.id}
    assert alert["patient"] is None
    assert alert["details"] == {
        "failed_logins": settings.login_alert_after,
        "threshold": settings.login_alert_after,
    }
    # Staff resolve it like any alert (and the resolution is audited).
    resolved = client.post(
        f"/api/v1/staff/alerts/{alert['id']}/resolve", headers=auth_headers(settings, clinician)
    )
    assert resolved.status_code == 200, resolved.get_json()
    # The real user still logs in, and that starts the count afresh.
    assert log_in(client, "boss@example.org", PASSWORD, address=USER_ADDRESS).status_code == 200
    session.expire_all()
    assert target.failed_logins == 0
    stored = session.scalars(select(StaffAlert).where(StaffAlert.kind == "login_failures")).all()
    assert len(stored) == 1


def _change(client, headers, current, address=ATTACKER):
    return client.post(
        PASSWORD_CHANGE,
        json={"current_password": current, "new_password": "a brand new passphrase for me"},
        headers=headers,
        environ_base={"REMOTE_ADDR": address},
    )


def test_password_change_with_wrong_current_passwords_hits_the_login_lock(
    client, session, settings
):
    user = make_user(session, settings, make_clinic(session), email="stolen.phone@example.org")
    headers = auth_headers(settings, user)
    for _ in range(9):
        wrong = _change(client, headers, "is it this one?")
        assert wrong.status_code == 422
        assert wrong.get_json()["errors"] == {"current_password": ["Wrong password."]}
    tenth = _change(client, headers, "or this one?")
    assert tenth.status_code == 429
    assert tenth.get_json()["code"] == "rate_limited"
    assert 0 < int(tenth.headers["Retry-After"]) <= 15 * 60
    # Now even the right one is refused from there, and the log-in shares the lock.
    assert _change(client, headers, PASSWORD).status_code == 429
    assert log_in(client, "stolen.phone@example.org", PASSWORD).get_json()["code"] == (
        "account_locked"
    )
    # The owner, from their own address, is unaffected.
    assert _change(client, headers, PASSWORD, address=USER_ADDRESS).status_code == 204


def test_password_change_is_rate_limited_per_address(settings, session):
    app = create_app(settings, rate_limits_enabled=True, login_limit_per_address="3/minute")
    user = make_user(session, settings, make_clinic(session))
    headers = auth_headers(settings, user)
    client = app.test_client()
    assert [_change(client, headers, "guess").status_code for _ in range(3)] == [422] * 3
    limited = _change(client, headers, PASSWORD)
    assert limited.status_code == 429
    assert limited.get_json()["code"] == "rate_limited"
    assert "Retry-After" in limited.headers
    session.expire_all()
    assert user.failed_logins == 3  # the limited attempt never reached the password

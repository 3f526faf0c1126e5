"""Log-in and activation rate limits, per client address and per account (in-memory storage)."""

from __future__ import annotations

import pytest

from service.app import create_app
from service.config import ConfigurationError, Settings
from tests.factories import PASSWORD, make_clinic, make_user

TOKEN = "/api/v1/auth/token"
ACTIVATE = "/api/v1/auth/activate"
REFRESH = "/api/v1/auth/refresh"


@pytest.fixture
def limited_app(settings, session):
    """An app of its own with limits on: 3 attempts a minute per address, 2 per account."""
    app = create_app(
        settings,
        rate_limits_enabled=True,
        login_limit_per_address="3/minute",
        login_limit_per_account="2/minute",
    )
    app.config["TESTING"] = True
    return app


def _log_in(client, username, password="wrong password", address="127.0.0.2"):
    return client.post(
        TOKEN,
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def _assert_limited(response):
    assert response.status_code == 429
    assert response.content_type == "application/problem+json"
    assert response.get_json()["code"] == "rate_limited"
    # Seconds until the oldest counted attempt leaves the one-minute window (rounded up).
    assert 1 <= int(response.headers["Retry-After"]) <= 61


def test_attempts_per_account_are_limited_per_address(limited_app, session, settings):
    """Counted per (account, address): a limit across addresses would let anyone's guesses keep
    the real user out (changed from a limit whatever the address)."""
    make_user(session, settings, make_clinic(session), email="ann@example.org")
    client = limited_app.test_client()
    assert _log_in(client, "ann@example.org", address="127.0.0.2").status_code == 401
    # The same account, written differently, from the same address.
    assert _log_in(client, "  ANN@example.org ", address="127.0.0.2").status_code == 401
    # A third attempt from there is over the per-account limit (2 a minute).
    _assert_limited(_log_in(client, "ann@example.org", address="127.0.0.2"))
    # Even the right password: a limited account says nothing about its password.
    _assert_limited(_log_in(client, "ann@example.org", password=PASSWORD, address="127.0.0.2"))
    # From another address the real user logs in, and another account is not affected.
    assert (
        _log_in(client, "ann@example.org", password=PASSWORD, address="127.0.0.5").status_code
        == 200
    )
    assert _log_in(client, "bob@example.org", address="127.0.0.6").status_code == 401


def test_attempts_per_address_are_limited_whatever_the_account(limited_app, session, settings):
    make_user(session, settings, make_clinic(session), email="cat@example.org")
    client = limited_app.test_client()
    for n in range(3):
        assert _log_in(client, f"guess{n}@example.org").status_code == 401
    _assert_limited(_log_in(client, "guess9@example.org"))
    _assert_limited(_log_in(client, "cat@example.org", password=PASSWORD))
    # Another address still logs in.
    assert (
        _log_in(client, "cat@example.org", password=PASSWORD, address="127.0.0.9").status_code
        == 200
    )


def test_a_limited_request_does_not_reach_the_account(limited_app, session, settings):
    user = make_user(session, settings, make_clinic(session), email="dan@example.org")
    client = limited_app.test_client()
    for _ in range(2):
        _log_in(client, "dan@example.org", address="127.0.0.3")
    _assert_limited(_log_in(client, "dan@example.org", address="127.0.0.3"))
    session.expire_all()
    assert user.failed_logins == 2  # the refused third attempt was never counted


def test_activation_is_limited_per_address_and_per_code(limited_app, session):
    client = limited_app.test_client()

    def activate(code, address):
        return client.post(
            ACTIVATE,
            json={"code": code, "password": "a long enough passphrase"},
            environ_base={"REMOTE_ADDR": address},
        )

    assert activate("AAAAA-BBBBB", "127.0.0.2").status_code == 422
    assert activate("aaaaa bbbbb", "127.0.0.3").status_code == 422  # the same code, retyped
    _assert_limited(activate("AAAAABBBBB", "127.0.0.4"))
    for n in range(2):
        assert activate(f"CCCCC-DDDD{n}", "127.0.0.5").status_code == 422
    assert activate("CCCCC-DDDD7", "127.0.0.5").status_code == 422
    _assert_limited(activate("CCCCC-DDDD8", "127.0.0.5"))


def test_other_routes_are_not_limited(limited_app, session):
    client = limited_app.test_client()
    for _ in range(6):
        response = client.post(REFRESH, json={"refresh_token": "made-up"})
        assert response.status_code == 401


def test_limits_are_off_when_disabled(client, session, settings):
    make_user(session, settings, make_clinic(session), email="eve@example.org")
    for _ in range(12):
        assert _log_in(client, "eve@example.org").status_code == 401


def test_redis_down_falls_back_to_per_process_counting(settings, session):
    # Nothing listens on port 1: every Redis call fails at once.
    app = create_app(
        settings,
        redis_url="redis://127.0.0.1:1/0",
        rate_limits_enabled=True,
        login_limit_per_address="2/minute",
        login_limit_per_account="5/minute",
    )
    client = app.test_client()
    assert _log_in(client, "x@example.org").status_code == 401
    assert _log_in(client, "y@example.org").status_code == 401
    _assert_limited(_log_in(client, "z@example.org"))


@pytest.mark.parametrize("limit", ["lots", "10 per fortnight", "x/y"])
def test_a_malformed_limit_stops_the_start(settings, limit):
    with pytest.raises(ConfigurationError):
        create_app(settings, rate_limits_enabled=True, login_limit_per_address=limit)


def test_limits_come_from_the_environment():
    parsed = Settings.from_env(
        {
            "REDIS_URL": "redis://cache:6379/0",
            "CD20_LOGIN_LIMIT_PER_ADDRESS": "20/minute",
            "CD20_LOGIN_LIMIT_PER_ACCOUNT": "3/minute;20/hour",
            "CD20_RATE_LIMITS_ENABLED": "off",
            "CD20_RATE_LIMIT_PREFIX": "cd20-eu",
        }
    )
    assert parsed.redis_url == "redis://cache:6379/0"
    assert parsed.login_limit_per_address == "20/minute"
    assert parsed.login_limit_per_account == "3/minute;20/hour"
    assert parsed.rate_limits_enabled is False
    assert parsed.rate_limit_key_prefix == "cd20-eu"
    defaults = Settings.from_env({})
    assert (defaults.login_limit_per_address, defaults.login_limit_per_account) == (
        "10/minute",
        "5/minute",
    )
    with pytest.raises(ConfigurationError):
        Settings.from_env({"CD20_RATE_LIMITS_ENABLED": "perhaps"})

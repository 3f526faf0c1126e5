"""Two refreshes with one token at once: the repeat within the grace window gets the same pair;
later, it ends the family as any reuse does."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from service.accounts import users
from service.db import utcnow
from service.models import RefreshToken
from tests.factories import PASSWORD, make_clinic, make_user, past_refresh_grace

TOKEN = "/api/v1/auth/token"
REFRESH = "/api/v1/auth/refresh"
ME = "/api/v1/me"


def _log_in(client, email):
    response = client.post(TOKEN, json={"username": email, "password": PASSWORD})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _bearer(pair):
    return {"Authorization": f"Bearer {pair['access_token']}"}


def test_a_repeat_within_the_window_gets_the_same_pair_and_nobody_is_logged_out(
    client, session, settings
):
    make_user(session, settings, make_clinic(session), email="twice@example.org")
    first = _log_in(client, "twice@example.org")

    one = client.post(REFRESH, json={"refresh_token": first["refresh_token"]})
    other = client.post(REFRESH, json={"refresh_token": first["refresh_token"]})

    assert one.status_code == other.status_code == 200, other.get_json()
    assert other.get_json()["access_token"] == one.get_json()["access_token"]
    assert other.get_json()["refresh_token"] == one.get_json()["refresh_token"]
    assert 0 < other.get_json()["expires_in"] <= settings.access_token_ttl_s
    pair = one.get_json()
    assert client.get(ME, headers=_bearer(pair)).status_code == 200
    # The shared successor rotates on as usual; nothing in the database holds it in clear.
    assert (
        session.scalar(
            select(RefreshToken.id).where(RefreshToken.token_hash == pair["refresh_token"])
        )
        is None
    )
    after = client.post(REFRESH, json={"refresh_token": pair["refresh_token"]})
    assert after.status_code == 200
    assert client.get(ME, headers=_bearer(after.get_json())).status_code == 200


def test_a_repeat_after_the_window_ends_the_family(client, session, settings):
    make_user(session, settings, make_clinic(session), email="late@example.org")
    first = _log_in(client, "late@example.org")
    rotated = client.post(REFRESH, json={"refresh_token": first["refresh_token"]}).get_json()
    past_refresh_grace(session, settings)

    replay = client.post(REFRESH, json={"refresh_token": first["refresh_token"]})

    assert replay.status_code == 401
    assert replay.get_json()["code"] == "invalid_token"
    assert client.post(REFRESH, json={"refresh_token": rotated["refresh_token"]}).status_code == 401
    assert client.get(ME, headers=_bearer(rotated)).status_code == 401


def test_a_repeat_after_the_successor_was_used_ends_the_family(client, session, settings):
    make_user(session, settings, make_clinic(session), email="chain@example.org")
    first = _log_in(client, "chain@example.org")
    second = client.post(REFRESH, json={"refresh_token": first["refresh_token"]}).get_json()
    third = client.post(REFRESH, json={"refresh_token": second["refresh_token"]}).get_json()

    # Within the window, but the pair it would repeat has moved on: a copy is in other hands.
    replay = client.post(REFRESH, json={"refresh_token": first["refresh_token"]})

    assert replay.status_code == 401
    assert client.post(REFRESH, json={"refresh_token": third["refresh_token"]}).status_code == 401


def test_the_window_follows_the_setting_and_the_clock_the_use_case_reads(session, settings):
    user = make_user(session, settings, make_clinic(session), email="clock@example.org")
    start = utcnow()
    login = users.log_in(
        session, settings, username=user.email, password=PASSWORD, now=start
    ).tokens()
    rotated = users.refresh_session(
        session, settings, refresh_token=login.refresh_token, now=start
    ).tokens()
    edge = start + timedelta(seconds=settings.refresh_grace_s)

    again = users.refresh_session(session, settings, refresh_token=login.refresh_token, now=edge)

    assert again.tokens().access_token == rotated.access_token
    assert again.tokens().refresh_token == rotated.refresh_token
    assert again.tokens().expires_in == settings.access_token_ttl_s - settings.refresh_grace_s
    shorter = settings.with_overrides(refresh_grace_s=5)
    late = users.refresh_session(
        session, shorter, refresh_token=login.refresh_token, now=start + timedelta(seconds=6)
    )
    assert late.refusal is not None
    assert (
        users.refresh_session(
            session, settings, refresh_token=rotated.refresh_token, now=start + timedelta(seconds=7)
        ).refusal
        is not None
    )


def test_a_window_of_zero_turns_the_repeat_off(session, settings):
    user = make_user(session, settings, make_clinic(session), email="zero@example.org")
    off = settings.with_overrides(refresh_grace_s=0)
    start = utcnow()
    login = users.log_in(session, off, username=user.email, password=PASSWORD, now=start).tokens()
    rotated = users.refresh_session(session, off, refresh_token=login.refresh_token, now=start)
    assert rotated.refusal is None

    again = users.refresh_session(session, off, refresh_token=login.refresh_token, now=start)

    assert again.refusal is not None
    assert (
        users.refresh_session(
            session, off, refresh_token=rotated.tokens().refresh_token, now=start
        ).refusal
        is not None
    )

"""The staff console's entries of the authorization matrix (tests/api/authz_matrix.yaml), run
for every kind of actor on their own and others' objects, as the API's are.

Staff are signed in by a console session cookie; patients cannot sign in, so they have none.
Every form carries a valid CSRF token, so what is judged is access alone. Each request runs in
a savepoint rolled back after it.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from service.accounts import console_sessions
from service.console.context import COOKIE
from service.db import utcnow
from service.models import ConsoleSession
from tests.api.test_authorization_matrix import (
    Case,
    cases_of,
    fill,
    fingerprint,
    load_all_entries,
    target_of,
    url_of,
)
from tests.api.world import (
    ACTORS,
    ADMIN_1,
    ADMIN_2,
    CLINICIAN_1,
    EXPIRED,
    OWNERSHIP,
    REVOKED,
    World,
    build_world,
    rolled_back,
)
from tests.console.helpers import csrf_token
from tests.factories import PASSWORD

OUTCOMES = frozenset({"allow", "deny-login", "deny-401", "deny-403", "deny-404", "n/a"})
LOGIN = "/console/login"


def console_entries() -> list[dict[str, Any]]:
    return [entry for entry in load_all_entries() if entry.get("console")]


def _session_row(session: Session, user_id: int, **fields: Any) -> str:
    token = secrets.token_urlsafe(32)
    now = utcnow()
    values: dict[str, Any] = {"created_at": now, "last_seen_at": now}
    values.update(fields)
    session.add(
        ConsoleSession(
            token_hash=hashlib.sha256(token.encode()).hexdigest(),
            user_id=user_id,
            expires_at=values.pop("expires_at", now + timedelta(hours=1)),
            **values,
        )
    )
    session.flush()
    return token


def console_cookies(session: Session, settings: Any, world: World) -> dict[str, str | None]:
    """Each actor's console session token (None: no session)."""
    cookies: dict[str, str | None] = dict.fromkeys(ACTORS)
    for actor in (CLINICIAN_1, ADMIN_1, ADMIN_2):
        signed = console_sessions.sign_in(
            session,
            settings,
            email=world.staff[actor].email,
            password=PASSWORD,
            client_address="127.0.0.1",
        )
        cookies[actor] = signed.token
    admin = world.staff[ADMIN_1]
    cookies[REVOKED] = _session_row(session, admin.id, token_generation=admin.token_generation - 1)
    cookies[EXPIRED] = _session_row(
        session,
        admin.id,
        token_generation=admin.token_generation,
        created_at=utcnow() - console_sessions.ABSOLUTE_TIMEOUT - timedelta(hours=1),
        expires_at=utcnow() - timedelta(hours=1),
    )
    return cookies


def outcome_of(entry: dict[str, Any], response: Any) -> str:
    status = response.status_code
    location = response.headers.get("Location", "")
    if 300 <= status < 400:
        if location.startswith(LOGIN) and not entry.get("public"):
            return "deny-login"
        return "allow"
    if status < 300 or status in (409, 422):
        # 409/422: the use case (or the form) refused the content, after access passed.
        return "allow"
    return f"deny-{status}"


def test_the_console_entries_follow_the_access_rules() -> None:
    entries = console_entries()
    assert entries
    for entry in entries:
        where = f"{entry['method']} {entry['rule']}"
        assert set(entry["expect"]) == set(ACTORS), where
        for case in cases_of(entry):
            assert case.expected in OUTCOMES, where
            if not entry.get("public") and case.actor.startswith(("patient_", "anonymous")):
                assert case.expected == "deny-login", f"{where}: {case.actor}"
            if case.ownership == "other_clinic":
                assert case.expected != "allow", f"{where}: {case.label}"
        for actor, expected in entry["expect"].items():
            if isinstance(expected, dict):
                assert set(expected) == set(OWNERSHIP[actor]), f"{where}: {actor}"


@pytest.fixture
def world(session: Session, settings: Any) -> World:
    return build_world(session, settings)


def test_console_authorization_matrix(
    client: FlaskClient, session: Session, settings: Any, world: World
) -> None:
    cookies = console_cookies(session, settings, world)
    token = csrf_token(client)
    baseline = fingerprint(session)
    problems: list[str] = []
    count = 0
    for entry in console_entries():
        for case in cases_of(entry):
            count += 1
            problems.extend(_run(client, session, world, case, cookies, token, baseline))
    print(f"\nconsole authorization matrix: {count} cases, {len(problems)} problems")
    assert problems == []


def _run(
    client: FlaskClient,
    session: Session,
    world: World,
    case: Case,
    cookies: dict[str, str | None],
    token: str,
    baseline: Any,
) -> list[str]:
    entry = case.entry
    _, params = target_of(world, case)
    client.delete_cookie(COOKIE, path="/console/")
    if cookies[case.actor]:
        client.set_cookie(COOKIE, str(cookies[case.actor]), path="/console/")
    data = {**fill(entry.get("body") or {}, world.values), "csrf_token": token}
    problems = []
    with rolled_back(session):
        response = client.open(
            url_of(entry["rule"], params),
            method=entry["method"],
            data=data if entry["method"] == "POST" else None,
        )
        got = outcome_of(entry, response)
        if got != case.expected:
            problems.append(f"{case.label}: expected {case.expected}, got {response.status_code}")
        if case.expected != "allow" and fingerprint(session) != baseline:
            problems.append(f"{case.label}: refused but changed data")
        seen = response.get_data(as_text=True).lower()
        response.close()
        for marker in sorted(world.all_markers - world.visible_markers(case.actor)):
            if case.actor in (CLINICIAN_1, ADMIN_1, ADMIN_2) and marker.lower() in seen:
                problems.append(f"{case.label}: {marker} in the {response.status_code} page")
    return problems

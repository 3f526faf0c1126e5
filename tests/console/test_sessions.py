"""The console's sign-in through the test client: sessions, CSRF, expiry, roles, clinics."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from service.accounts import console_sessions
from service.db import utcnow
from service.models import AuditEvent, ConsoleSession
from tests.console.helpers import csrf_token, post, sign_in
from tests.factories import PASSWORD, make_clinic, make_patient, make_user


@pytest.fixture
def clinic(session):
    return make_clinic(session)


@pytest.fixture
def clinician(session, settings, clinic):
    return make_user(session, settings, clinic, "clinician")


@pytest.fixture
def admin(session, settings, clinic):
    return make_user(session, settings, clinic, "admin")


def _cookie(client):
    return client.get_cookie("cd20_console", path="/console/")


def test_signed_out_pages_send_to_the_sign_in_page(client):
    response = client.get("/console/today")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/login?next=")


def test_sign_in_sets_a_server_side_session_cookie(client, session, clinician):
    response = sign_in(client, clinician.email)
    assert response.status_code == 302
    cookie = response.headers.getlist("Set-Cookie")
    console = next(c for c in cookie if c.startswith("cd20_console="))
    assert "HttpOnly" in console
    assert "SameSite=Strict" in console
    assert "Path=/console/" in console
    token = _cookie(client).value
    # The table keeps a digest, never the token the cookie holds.
    rows = session.scalars(select(ConsoleSession).where(ConsoleSession.user_id == clinician.id))
    stored = [row.token_hash for row in rows]
    assert len(stored) == 1
    assert token not in stored
    page = client.get("/console/today")
    assert page.status_code == 200
    assert "Chairs on" in page.get_data(as_text=True)


def test_wrong_password_is_refused_with_the_api_code(client, session, clinician):
    response = sign_in(client, clinician.email, "not the password")
    assert response.status_code == 401
    assert "invalid_credentials" in response.get_data(as_text=True)
    assert _cookie(client) is None
    # The attempt is in the clinic's audit trail, naming the account, as the API's log-in.
    event = session.scalar(
        select(AuditEvent)
        .where(AuditEvent.resource_type == "session")
        .order_by(AuditEvent.id.desc())
    )
    assert event is not None
    assert (event.clinic_id, event.outcome, event.status_code) == (
        clinician.clinic_id,
        "denied",
        401,
    )
    assert event.details["account_id"] == clinician.id
    assert event.actor_id is None


def test_repeated_failures_lock_the_address_as_the_api_does(client, settings, clinician):
    for _ in range(settings.login_lock_after):
        sign_in(client, clinician.email, "not the password")
    response = sign_in(client, clinician.email)  # the right password, but locked
    assert response.status_code == 401
    assert "account_locked" in response.get_data(as_text=True)
    assert int(response.headers["Retry-After"]) > 0
    assert _cookie(client) is None


def test_a_patient_cannot_sign_in(client, session, settings, clinic):
    patient = make_patient(session, clinic)
    user = make_user(session, settings, clinic, "patient", patient=patient)
    response = sign_in(client, user.email)
    assert response.status_code == 403
    assert "staff_only" in response.get_data(as_text=True)
    assert _cookie(client) is None


def test_a_form_without_its_csrf_token_is_refused(client, clinician):
    refused = client.post("/console/login", data={"email": clinician.email, "password": "x"})
    assert refused.status_code == 400
    assert "csrf_failed" in refused.get_data(as_text=True)
    sign_in(client, clinician.email)
    refused = client.post(
        "/console/patients",
        data={"mrn": "X1", "given_name": "A", "family_name": "B", "birth_date": "1980-01-01"},
    )
    assert refused.status_code == 400


def test_sign_out_deletes_the_session(client, session, clinician):
    sign_in(client, clinician.email)
    token = _cookie(client).value
    response = post(client, "/console/logout", {}, token_from="/console/today")
    assert response.status_code == 302
    assert (
        session.scalar(select(ConsoleSession).where(ConsoleSession.user_id == clinician.id)) is None
    )
    # The old cookie no longer signs anyone in.
    client.set_cookie("cd20_console", token, path="/console/")
    assert client.get("/console/today").status_code == 302


def test_idle_and_absolute_expiry(session, settings, clinician):
    start = utcnow()
    outcome = console_sessions.sign_in(
        session,
        settings,
        email=clinician.email,
        password="correct horse battery staple",
        client_address="127.0.0.1",
        now=start,
    )
    token = outcome.token
    idle = console_sessions.IDLE_TIMEOUT
    assert console_sessions.resume(session, token, now=start + idle / 2) is not None
    # Each use moves the idle deadline on; the absolute one does not move.
    moment = start
    while moment + idle / 2 < start + console_sessions.ABSOLUTE_TIMEOUT:
        moment += idle / 2
        assert console_sessions.resume(session, token, now=moment) is not None
    assert (
        console_sessions.resume(session, token, now=start + console_sessions.ABSOLUTE_TIMEOUT)
        is None
    )

    other = console_sessions.sign_in(
        session,
        settings,
        email=clinician.email,
        password="correct horse battery staple",
        client_address="127.0.0.1",
        now=start,
    ).token
    assert console_sessions.resume(session, other, now=start + idle + timedelta(seconds=1)) is None


def test_a_password_change_ends_console_sessions(client, session, clinician):
    sign_in(client, clinician.email)
    clinician.token_generation += 1
    session.flush()
    assert client.get("/console/today").status_code == 302


def test_roles_decide_the_navigation_and_the_admin_pages(client, clinician, admin):
    sign_in(client, clinician.email)
    page = client.get("/console/today").get_data(as_text=True)
    assert "Audit trail" not in page
    assert ">Clinic<" not in page
    assert client.get("/console/clinic").status_code == 403
    assert client.get("/console/audit").status_code == 403
    post(client, "/console/logout", {}, token_from="/console/today")
    sign_in(client, admin.email)
    page = client.get("/console/today").get_data(as_text=True)
    assert "Audit trail" in page
    assert ">Clinic<" in page
    assert client.get("/console/clinic").status_code == 200


def test_another_clinics_patient_is_not_found_and_pages_are_audited(
    client, session, settings, clinic, clinician
):
    own = make_patient(session, clinic)
    elsewhere = make_patient(session, make_clinic(session))
    sign_in(client, clinician.email)
    assert client.get(f"/console/patients/{elsewhere.id}").status_code == 404
    response = client.get(f"/console/patients/{own.id}")
    assert response.status_code == 200
    assert own.mrn in response.get_data(as_text=True)
    events = session.scalars(
        select(AuditEvent).where(
            AuditEvent.actor_id == clinician.id, AuditEvent.resource_type == "patient"
        )
    ).all()
    seen = {(e.patient_id, e.outcome, e.status_code) for e in events}
    assert (own.id, "success", 200) in seen
    # The probe of another clinic's patient is recorded, without naming whose record it is.
    assert (None, "denied", 404) in seen


def test_pages_keep_a_tight_policy_and_no_cache(client, clinician):
    sign_in(client, clinician.email)
    response = client.get("/console/today")
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "form-action 'self'" in policy
    assert response.headers["Cache-Control"] == "no-store"
    assert csrf_token(client, "/console/today")


def test_sign_in_has_the_apis_rate_limits(settings, session, clinic):
    """The per-address and per-account limits of POST /auth/token hold here too."""
    from service.app import create_app

    make_user(session, settings, clinic, email="eve@example.org")
    limited = create_app(
        settings,
        rate_limits_enabled=True,
        login_limit_per_address="3/minute",
        login_limit_per_account="2/minute",
    )
    limited.config["TESTING"] = True
    client = limited.test_client()
    token = csrf_token(client)

    def attempt(email, password="wrong password", address="127.0.0.2"):
        return client.post(
            "/console/login",
            data={"email": email, "password": password, "csrf_token": token},
            environ_base={"REMOTE_ADDR": address},
        )

    assert attempt("eve@example.org").status_code == 401
    assert attempt(" EVE@example.org").status_code == 401
    limited_answer = attempt("eve@example.org", password=PASSWORD)
    assert limited_answer.status_code == 429
    assert "rate_limited" in limited_answer.get_data(as_text=True)
    assert int(limited_answer.headers["Retry-After"]) > 0
    # From another address the right password signs in.
    assert attempt("eve@example.org", password=PASSWORD, address="127.0.0.5").status_code == 302


def test_cookies_are_secure_outside_development(settings, session, clinician):
    from service.app import create_app

    production = create_app(settings, environment="production")
    client = production.test_client()
    site = "https://console.example.org"
    login = client.get("/console/login", base_url=site)
    # The page lets the browser say where a form comes from, to this site only.
    assert login.headers["Referrer-Policy"] == "same-origin"
    token = re.search(r'name="csrf_token" value="([^"]+)"', login.get_data(as_text=True))
    assert token is not None
    form = {"email": clinician.email, "password": PASSWORD, "csrf_token": token.group(1)}
    elsewhere = client.post(
        "/console/login", data=form, base_url=site, headers={"Referer": "https://evil.example/"}
    )
    assert elsewhere.status_code == 400
    response = client.post(
        "/console/login", data=form, base_url=site, headers={"Referer": f"{site}/console/login"}
    )
    assert response.status_code == 302
    cookies = response.headers.getlist("Set-Cookie")
    console = next(c for c in cookies if c.startswith("cd20_console="))
    assert "Secure" in console
    assert all("Secure" in c for c in cookies)

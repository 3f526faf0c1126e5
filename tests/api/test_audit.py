"""The audit trail through the HTTP API: one event per request, what it holds, who may read it."""

from __future__ import annotations

import hashlib
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from service.db import utcnow
from service.models import AuditEvent, Patient, StaffAlert
from tests.factories import (
    PASSWORD,
    auth_headers,
    make_clinic,
    make_patient,
    make_plan,
    make_reminder,
    make_user,
)

AUDIT = "/api/v1/audit"
NEW_PATIENT = {
    "mrn": "A-77",
    "given_name": "Maria",
    "family_name": "Keller",
    "birth_date": "1984-05-02",
    "time_zone": "Europe/Berlin",
}


@pytest.fixture
def world(session, settings):
    """A clinic with an admin, a clinician, a patient with the app and a plan; and a neighbour."""
    clinic, other = make_clinic(session), make_clinic(session)
    admin = make_user(session, settings, clinic, "admin")
    clinician = make_user(session, settings, clinic, "clinician")
    patient = make_patient(session, clinic)
    patient_user = make_user(session, settings, clinic, "patient", patient=patient)
    plan = make_plan(session, patient, clinician)
    foreign_plan = make_plan(
        session, make_patient(session, other), make_user(session, settings, other)
    )

    class World:
        pass

    w = World()
    w.clinic, w.other, w.admin, w.clinician = clinic, other, admin, clinician
    w.patient, w.patient_user, w.plan, w.foreign_plan = patient, patient_user, plan, foreign_plan
    w.admin_headers = auth_headers(settings, admin)
    w.staff_headers = auth_headers(settings, clinician)
    w.patient_headers = auth_headers(settings, patient_user)
    return w


def _count(session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def _events_of(session, call) -> list[AuditEvent]:
    """The events written while `call` runs."""
    last = session.scalar(select(func.max(AuditEvent.id))) or 0
    call()
    return list(
        session.scalars(select(AuditEvent).where(AuditEvent.id > last).order_by(AuditEvent.id))
    )


def _one_event(session, call) -> tuple[AuditEvent, object]:
    responses = []
    events = _events_of(session, lambda: responses.append(call()))
    assert len(events) == 1, [(e.method, e.path_template) for e in events]
    return events[0], responses[0]


def _as_text(event: AuditEvent) -> str:
    columns = {c.key: getattr(event, c.key) for c in AuditEvent.__table__.columns}
    return json.dumps(columns, default=str)


def test_reading_a_patient_leaves_one_complete_event(client, session, world):
    url = f"/api/v1/patients/{world.patient.id}"
    event, response = _one_event(session, lambda: client.get(url, headers=world.staff_headers))

    assert response.status_code == 200
    assert event.request_id == response.headers["X-Request-ID"]
    assert (event.actor_id, event.actor_role, event.clinic_id) == (
        world.clinician.id,
        "clinician",
        world.clinic.id,
    )
    assert (event.action, event.resource_type, event.resource_id) == (
        "read",
        "patient",
        str(world.patient.id),
    )
    assert event.patient_id == world.patient.id
    assert (event.outcome, event.status_code, event.method) == ("success", 200, "GET")
    assert event.path_template == "/api/v1/patients/<int:patient_id>"
    assert event.source_address == "127.0.0.1"
    assert abs(event.occurred_at - utcnow()) < timedelta(minutes=1)
    # Nothing about the patient but the id: no name, no MRN.
    assert world.patient.family_name not in _as_text(event)
    assert world.patient.mrn not in _as_text(event)


def test_request_id_is_taken_if_well_formed_and_echoed_on_errors(client, session, world):
    given = client.get(
        "/api/v1/patients", headers={**world.staff_headers, "X-Request-ID": "abc-1.2_3"}
    )
    assert given.headers["X-Request-ID"] == "abc-1.2_3"

    bad = "x" * 65
    replaced = client.get("/api/v1/patients", headers={**world.staff_headers, "X-Request-ID": bad})
    assert replaced.headers["X-Request-ID"] != bad
    assert len(replaced.headers["X-Request-ID"]) == 32
    for odd in ("a b", "a/b", "<script>"):
        response = client.get("/api/v1/me", headers={"X-Request-ID": odd})
        assert response.status_code == 401
        assert response.headers["X-Request-ID"] != odd
        assert response.headers["X-Request-ID"]
    assert client.get("/api/v1/nowhere").headers["X-Request-ID"]
    assert client.get("/healthz").headers["X-Request-ID"]

    ids = session.scalars(select(AuditEvent.request_id).order_by(AuditEvent.id)).all()
    assert ids[:2] == ["abc-1.2_3", replaced.headers["X-Request-ID"]]


def test_failed_login_is_one_event_for_the_clinic_without_the_password_or_email(
    client, session, world
):
    """The account's clinic and id are recorded (its admins must see an attack on it); the
    caller is still nobody (changed from an event with no clinic and no account)."""
    body = {"username": world.clinician.email, "password": "wrong password 123"}
    event, response = _one_event(session, lambda: client.post("/api/v1/auth/token", json=body))

    assert response.status_code == 401
    assert (event.actor_id, event.actor_role, event.clinic_id) == (None, None, world.clinic.id)
    assert (event.action, event.resource_type, event.resource_id) == ("execute", "session", None)
    assert (event.outcome, event.status_code) == ("denied", 401)
    assert event.details == {
        "operation": "token",
        "account_id": world.clinician.id,
        "code": "invalid_credentials",
    }
    text = _as_text(event)
    assert "wrong password" not in text
    assert world.clinician.email not in text


def test_failed_login_of_an_unknown_name_names_no_clinic(client, session, world):
    body = {"username": "nobody.here@example.org", "password": "wrong password 123"}
    event, _response = _one_event(session, lambda: client.post("/api/v1/auth/token", json=body))
    assert event.clinic_id is None
    assert event.details == {"operation": "token", "code": "invalid_credentials"}


def test_login_and_logout_name_the_account(client, session, world):
    body = {"username": world.patient_user.email, "password": PASSWORD}
    login, response = _one_event(session, lambda: client.post("/api/v1/auth/token", json=body))
    assert response.status_code == 200
    assert (login.actor_id, login.actor_role, login.clinic_id) == (
        world.patient_user.id,
        "patient",
        world.clinic.id,
    )
    assert (login.action, login.outcome, login.details) == (
        "execute",
        "success",
        {"operation": "token"},
    )
    assert response.get_json()["access_token"] not in _as_text(login)

    tokens = response.get_json()
    headers = {"Authorization": f"Bearer {tokens['access_token']}"}
    logout, response = _one_event(
        session,
        lambda: client.post(
            "/api/v1/auth/logout", json={"refresh_token": tokens["refresh_token"]}, headers=headers
        ),
    )
    assert response.status_code == 204, response.get_json()
    assert (logout.actor_id, logout.resource_type, logout.outcome) == (
        world.patient_user.id,
        "session",
        "success",
    )
    assert tokens["refresh_token"] not in _as_text(logout)


def test_probe_of_another_clinics_plan_is_denied_and_does_not_name_its_patient(
    client, session, world
):
    url = f"/api/v1/plans/{world.foreign_plan.id}"
    event, response = _one_event(session, lambda: client.get(url, headers=world.staff_headers))
    assert response.status_code == 404
    assert (event.resource_type, event.resource_id) == ("plan", str(world.foreign_plan.id))
    assert (event.outcome, event.status_code, event.actor_id) == ("denied", 404, world.clinician.id)
    assert event.patient_id is None
    assert event.details == {"plan_id": world.foreign_plan.id, "code": "not_found"}


def test_invalid_create_is_one_failed_event_and_nothing_else(client, session, world):
    bad = dict(NEW_PATIENT, time_zone="Mars/Olympus")
    patients = session.scalar(select(func.count()).select_from(Patient))
    event, response = _one_event(
        session, lambda: client.post("/api/v1/patients", json=bad, headers=world.staff_headers)
    )
    assert response.status_code == 422
    assert (event.action, event.resource_type, event.resource_id) == ("create", "patient", None)
    assert (event.outcome, event.status_code) == ("failed", 422)
    assert event.details == {"code": "validation_failed"}
    assert "Keller" not in _as_text(event)
    assert "Mars" not in _as_text(event)
    assert session.scalar(select(func.count()).select_from(Patient)) == patients


def test_create_records_the_new_objects_id(client, session, world):
    event, response = _one_event(
        session,
        lambda: client.post("/api/v1/patients", json=NEW_PATIENT, headers=world.staff_headers),
    )
    new_id = response.get_json()["id"]
    assert (event.action, event.resource_type, event.resource_id) == (
        "create",
        "patient",
        str(new_id),
    )
    assert (event.patient_id, event.outcome, event.status_code) == (new_id, "success", 201)

    body = {"regimen": "ocrelizumab-iv", "start_date": "2027-03-01"}
    url = f"/api/v1/patients/{new_id}/plans"
    event, response = _one_event(
        session, lambda: client.post(url, json=body, headers=world.staff_headers)
    )
    assert response.status_code == 201, response.get_json()
    assert (event.resource_type, event.resource_id) == ("plan", str(response.get_json()["id"]))
    assert event.patient_id == new_id


def test_an_idempotent_replay_is_one_more_event_by_the_same_actor(client, session, world):
    headers = {**world.staff_headers, "Idempotency-Key": "audit-replay-1"}
    first, created = _one_event(
        session, lambda: client.post("/api/v1/patients", json=NEW_PATIENT, headers=headers)
    )
    again, replayed = _one_event(
        session, lambda: client.post("/api/v1/patients", json=NEW_PATIENT, headers=headers)
    )
    assert replayed.get_json()["id"] == created.get_json()["id"]
    for event in (first, again):
        assert (event.actor_id, event.resource_id, event.outcome) == (
            world.clinician.id,
            str(created.get_json()["id"]),
            "success",
        )
    assert first.request_id != again.request_id


def test_patient_reading_own_plans_names_the_patient(client, session, world):
    event, response = _one_event(
        session, lambda: client.get("/api/v1/me/plans", headers=world.patient_headers)
    )
    assert response.status_code == 200
    assert (event.actor_id, event.actor_role) == (world.patient_user.id, "patient")
    assert (event.action, event.resource_type, event.patient_id) == (
        "read",
        "plan",
        world.patient.id,
    )

    other = make_patient(session, world.clinic)
    event, response = _one_event(
        session,
        lambda: client.get(f"/api/v1/patients/{other.id}", headers=world.patient_headers),
    )
    assert response.status_code == 404
    assert (event.outcome, event.resource_id, event.patient_id) == ("denied", str(other.id), None)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/plans/{plan}/screening/hbsag", ("screening_item", "{plan}/hbsag", "{patient}")),
        ("/plans/{plan}/doses", ("dose", None, "{patient}")),
        ("/doses/{dose}", ("dose", "{dose}", "{patient}")),
        ("/monitoring/{task}", ("monitoring_task", "{task}", "{patient}")),
        ("/staff/worklist", ("staff_view", "worklist", None)),
        ("/staff/schedule", ("staff_view", "schedule", None)),
        ("/clinic", ("clinic", "{clinic}", None)),
        ("/users", ("user", None, None)),
        ("/patients/{patient}/reminders", ("reminder", None, "{patient}")),
    ],
)
def test_resource_and_patient_come_from_the_url(client, session, world, path, expected):
    values = {
        "plan": world.plan.id,
        "patient": world.patient.id,
        "dose": world.plan.doses[0].id,
        "task": world.plan.monitoring_tasks[0].id,
        "clinic": world.clinic.id,
    }
    url = "/api/v1" + path.format(**values)
    event, _ = _one_event(session, lambda: client.get(url, headers=world.admin_headers))
    resource_type, resource_id, patient = expected
    assert event.resource_type == resource_type
    assert event.resource_id == (resource_id.format(**values) if resource_id else None)
    assert event.patient_id == (int(patient.format(**values)) if patient else None)


def test_actions_on_objects_are_execute(client, session, world):
    dose = world.plan.doses[0]
    event, response = _one_event(
        session,
        lambda: client.post(
            f"/api/v1/doses/{dose.id}/administration", json={}, headers=world.staff_headers
        ),
    )
    assert response.status_code == 422
    assert (event.action, event.resource_type, event.resource_id) == (
        "execute",
        "dose",
        str(dose.id),
    )
    assert (event.patient_id, event.outcome) == (world.patient.id, "failed")
    assert event.details["operation"] == "administration"

    reminder = make_reminder(session, world.patient)
    event, response = _one_event(
        session,
        lambda: client.post(
            f"/api/v1/me/reminders/{reminder.id}/ack", json={}, headers=world.patient_headers
        ),
    )
    assert (event.action, event.resource_type, event.resource_id) == (
        "execute",
        "reminder",
        str(reminder.id),
    )
    assert event.patient_id == world.patient.id


def test_screening_override_carries_a_reference_to_its_reason_not_the_text(client, session, world):
    reason = "Discussed with hepatology; benefit outweighs the pending serology risk."
    url = f"/api/v1/plans/{world.plan.id}/screening/override"
    event, response = _one_event(
        session, lambda: client.post(url, json={"reason": reason}, headers=world.staff_headers)
    )
    assert response.status_code == 201, response.get_json()
    session.expire_all()
    override = world.plan.overrides[-1]
    assert (event.action, event.resource_type, event.resource_id) == (
        "execute",
        "plan",
        str(world.plan.id),
    )
    assert event.patient_id == world.patient.id
    assert event.details["operation"] == "override"
    assert event.details["override_id"] == override.id
    assert event.details["reason_sha256"] == hashlib.sha256(reason.encode()).hexdigest()
    assert "hepatology" not in _as_text(event)


def test_method_not_allowed_still_names_the_resource(client, session, world):
    url = f"/api/v1/patients/{world.patient.id}"
    event, response = _one_event(session, lambda: client.delete(url, headers=world.staff_headers))
    assert response.status_code == 405
    assert (event.action, event.resource_type, event.resource_id) == (
        "delete",
        "patient",
        str(world.patient.id),
    )
    assert (event.outcome, event.path_template) == ("failed", "/api/v1/patients/<int:patient_id>")


def test_unknown_path_is_audited_without_the_raw_path(client, session, world):
    event, response = _one_event(
        session, lambda: client.get("/api/v1/Jane-Doe-HIV-positive", headers=world.staff_headers)
    )
    assert response.status_code == 404
    assert (event.resource_type, event.path_template, event.outcome) == ("unknown", None, "denied")
    assert "Jane" not in _as_text(event)


def test_free_text_query_values_are_not_stored(client, session, world):
    event, _ = _one_event(
        session,
        lambda: client.get(
            "/api/v1/patients",
            query_string={"q": "Keller", "page": 1},
            headers=world.staff_headers,
        ),
    )
    assert "Keller" not in _as_text(event)
    assert event.details == {}


@pytest.mark.parametrize(
    "path",
    [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/healthz",
        "/api/v1/readyz",
        "/api/v1/metrics",
        "/openapi.json",
        "/docs",
        "/api/v1/regimens",
        "/api/v1/regimens/ocrelizumab-iv",
    ],
)
def test_probes_metrics_docs_and_catalog_are_not_audited(client, session, path):
    before = _count(session)
    response = client.get(path)
    assert response.status_code < 500
    assert response.headers["X-Request-ID"]
    assert _count(session) == before


def _requests(world, session):
    """One request of every kind of route, by the actor who would send it (some refused)."""
    plan, patient = world.plan, world.patient
    dose, task = plan.doses[0], plan.monitoring_tasks[0]
    reminder = make_reminder(session, patient)
    alert = StaffAlert(
        clinic_id=world.clinic.id,
        patient_id=patient.id,
        kind="lab_low",
        subject_type="lab_result",
        subject_id=1,
        details={},
    )
    session.add(alert)
    session.flush()
    staff, me, admin = world.staff_headers, world.patient_headers, world.admin_headers
    lab = {"code": "igg", "value": 5.9, "unit": "g/L", "taken_at": "2026-06-18T08:30:00+02:00"}
    login = {"username": world.clinician.email, "password": PASSWORD}
    return [
        ("post", "/api/v1/auth/token", login, None),
        ("post", "/api/v1/auth/token", {"username": "nobody@example.org", "password": "x"}, None),
        ("post", "/api/v1/auth/refresh", {"refresh_token": "nope"}, None),
        ("post", "/api/v1/auth/activate", {"code": "nope", "password": PASSWORD}, None),
        ("get", "/api/v1/me", None, me),
        ("get", "/api/v1/me", None, None),
        ("get", "/api/v1/me/plans", None, me),
        ("get", "/api/v1/me/inbox", None, me),
        ("post", "/api/v1/me/inbox/999999/read", None, me),
        ("get", "/api/v1/me/reminders/upcoming", None, me),
        ("post", f"/api/v1/me/reminders/{reminder.id}/ack", {}, me),
        ("post", "/api/v1/me/devices", {"platform": "ios", "token": "t" * 40}, me),
        ("delete", "/api/v1/me/devices/999999", None, me),
        ("get", "/api/v1/clinic", None, admin),
        ("patch", "/api/v1/clinic", {"name": "x"}, staff),
        ("get", "/api/v1/users", None, admin),
        ("get", f"/api/v1/users/{world.clinician.id}", None, admin),
        ("get", "/api/v1/patients", None, staff),
        ("get", "/api/v1/patients", None, me),
        ("post", "/api/v1/patients", NEW_PATIENT, staff),
        ("get", f"/api/v1/patients/{patient.id}", None, staff),
        ("patch", f"/api/v1/patients/{patient.id}", {"phone": "1"}, staff),
        ("post", f"/api/v1/patients/{patient.id}/invitation", None, staff),
        ("get", f"/api/v1/patients/{patient.id}/plans", None, staff),
        ("post", f"/api/v1/patients/{patient.id}/plans", {"regimen": "nope"}, staff),
        ("get", f"/api/v1/patients/{patient.id}/labs", None, staff),
        ("post", f"/api/v1/patients/{patient.id}/labs", lab, staff),
        ("get", f"/api/v1/patients/{patient.id}/reminders", None, staff),
        ("get", f"/api/v1/plans/{plan.id}", None, staff),
        ("patch", f"/api/v1/plans/{plan.id}", {"notes": "x"}, staff),
        ("get", f"/api/v1/plans/{world.foreign_plan.id}", None, staff),
        ("get", f"/api/v1/plans/{plan.id}/screening", None, staff),
        ("get", f"/api/v1/plans/{plan.id}/screening/hbsag", None, staff),
        ("put", f"/api/v1/plans/{plan.id}/screening/hbsag", {"result": "x"}, staff),
        ("post", f"/api/v1/plans/{plan.id}/screening/override", {"reason": "short"}, staff),
        ("get", f"/api/v1/plans/{plan.id}/doses", None, staff),
        ("get", f"/api/v1/doses/{dose.id}", None, staff),
        ("patch", f"/api/v1/doses/{dose.id}", {"location": "Chair 2"}, staff),
        ("post", f"/api/v1/doses/{dose.id}/administration", {}, staff),
        ("get", f"/api/v1/plans/{plan.id}/monitoring", None, staff),
        ("get", f"/api/v1/monitoring/{task.id}", None, me),
        ("patch", f"/api/v1/monitoring/{task.id}", {"status": "waived"}, staff),
        ("get", "/api/v1/staff/schedule", None, staff),
        ("get", "/api/v1/staff/worklist", None, me),
        ("post", f"/api/v1/staff/alerts/{alert.id}/resolve", None, staff),
        ("get", AUDIT, None, admin),
        ("get", AUDIT, None, staff),
        ("get", "/api/v1/no/such/route", None, staff),
        ("put", "/api/v1/patients", {}, staff),
    ]


def test_exactly_one_event_per_request_for_every_kind_of_route(client, session, world):
    for method, url, body, headers in _requests(world, session):
        before = _count(session)
        response = getattr(client, method)(url, json=body, headers=headers or {})
        assert _count(session) == before + 1, (method, url, response.status_code)
        latest = session.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
        assert latest.request_id == response.headers["X-Request-ID"], (method, url)
        assert latest.status_code == response.status_code, (method, url)


def test_nothing_in_the_code_updates_or_deletes_audit_rows(client, session, world):
    from sqlalchemy import event

    connection = session.get_bind()
    statements: list[str] = []

    def seen(_conn, _cursor, statement, *_args):
        statements.append(" ".join(statement.split()).lower())

    event.listen(connection, "before_cursor_execute", seen)
    try:
        for method, url, body, headers in _requests(world, session):
            getattr(client, method)(url, json=body, headers=headers or {})
    finally:
        event.remove(connection, "before_cursor_execute", seen)
    touching = [s for s in statements if "audit_event" in s]
    assert touching
    assert all(s.startswith(("insert into audit_event", "select")) for s in touching), [
        s for s in touching if not s.startswith(("insert", "select"))
    ]


def test_admin_examines_the_trail_with_filters(client, session, world):
    start = utcnow()
    client.get(f"/api/v1/patients/{world.patient.id}", headers=world.staff_headers)
    client.get("/api/v1/me/plans", headers=world.patient_headers)
    client.get("/api/v1/patients", headers=world.staff_headers)

    by_patient = client.get(
        AUDIT, query_string={"patient_id": world.patient.id}, headers=world.admin_headers
    )
    assert by_patient.status_code == 200
    page = by_patient.get_json()
    assert set(page) == {"items", "total", "page", "page_size"}
    assert page["total"] == 2
    # Newest first.
    assert [e["actor_role"] for e in page["items"]] == ["patient", "clinician"]
    item = page["items"][1]
    assert item["resource_type"] == "patient"
    assert item["path_template"] == "/api/v1/patients/<int:patient_id>"
    assert item["outcome"] == "success"

    by_actor = client.get(
        AUDIT, query_string={"actor_id": world.clinician.id}, headers=world.admin_headers
    ).get_json()
    assert by_actor["total"] == 2
    assert {e["actor_id"] for e in by_actor["items"]} == {world.clinician.id}

    since = client.get(
        AUDIT,
        query_string={"since": (start - timedelta(seconds=1)).isoformat(), "action": "read"},
        headers=world.admin_headers,
    ).get_json()
    # The three reads, and the admin's own two reads of the trail.
    assert since["total"] == 5
    until = client.get(
        AUDIT, query_string={"until": start.isoformat()}, headers=world.admin_headers
    ).get_json()
    assert until["total"] == 0

    paged = client.get(
        AUDIT, query_string={"page": 2, "page_size": 2}, headers=world.admin_headers
    ).get_json()
    assert (paged["page"], paged["page_size"], len(paged["items"])) == (2, 2, 2)

    # Reading the trail is itself on the trail, with the filter ids it used.
    reads = client.get(
        AUDIT,
        query_string={"actor_id": world.admin.id, "patient_id": world.patient.id},
        headers=world.admin_headers,
    ).get_json()
    assert reads["total"] == 0  # the admin's reads of the trail name no patient
    mine = client.get(
        AUDIT, query_string={"actor_id": world.admin.id}, headers=world.admin_headers
    ).get_json()
    assert mine["items"][0]["resource_type"] == "audit"
    assert mine["items"][0]["details"] == {
        "actor_id": world.admin.id,
        "patient_id": world.patient.id,
    }


def test_admin_sees_only_their_clinics_events(client, session, settings, world):
    neighbour = auth_headers(settings, make_user(session, settings, world.other, "admin"))
    client.get(f"/api/v1/patients/{world.patient.id}", headers=world.staff_headers)
    client.get("/api/v1/clinic", headers=neighbour)
    theirs = client.get(AUDIT, headers=neighbour).get_json()
    assert theirs["total"] == 1  # the neighbour's own read of their clinic
    assert theirs["items"][0]["resource_type"] == "clinic"
    assert theirs["items"][0]["clinic_id"] == world.other.id
    ours = client.get(
        AUDIT, query_string={"patient_id": world.patient.id}, headers=world.admin_headers
    )
    assert ours.get_json()["total"] == 1


def test_clinician_and_patient_are_refused_and_that_is_audited(client, session, world):
    for headers, role in ((world.staff_headers, "clinician"), (world.patient_headers, "patient")):
        event, response = _one_event(session, lambda h=headers: client.get(AUDIT, headers=h))
        assert response.status_code == 403
        assert (event.actor_role, event.resource_type, event.action) == (role, "audit", "read")
        assert (event.outcome, event.status_code) == ("denied", 403)
        assert event.details == {"code": "forbidden"}


@pytest.mark.parametrize(
    "query",
    [
        {"since": "2027-01-01T00:00:00"},
        {"since": "2027-01-02T00:00:00+00:00", "until": "2027-01-01T00:00:00+00:00"},
        {"action": "destroy"},
        {"patient_id": "x"},
        {"page_size": 1000},
    ],
)
def test_bad_audit_queries_are_422(client, session, world, query):
    response = client.get(AUDIT, query_string=query, headers=world.admin_headers)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"


def test_a_query_parameter_the_route_ignores_is_not_recorded(client, session, world):
    other = make_patient(session, world.clinic)
    # /patients has no patient_id filter: the request read the list, not that patient.
    event, response = _one_event(
        session,
        lambda: client.get(
            f"/api/v1/patients?patient_id={other.id}&plan_id=7", headers=world.staff_headers
        ),
    )
    assert response.status_code == 200
    assert event.details == {}
    assert event.patient_id is None
    # The URL names the patient; a query id beside it changes nothing.
    event, _ = _one_event(
        session,
        lambda: client.get(
            f"/api/v1/patients/{world.patient.id}/plans?patient_id={other.id}",
            headers=world.staff_headers,
        ),
    )
    assert event.patient_id == world.patient.id
    assert event.details == {"patient_id": world.patient.id}
    # A filter the route reads is kept.
    event, _ = _one_event(
        session,
        lambda: client.get(f"{AUDIT}?patient_id={other.id}", headers=world.admin_headers),
    )
    assert event.details == {"patient_id": other.id}


@pytest.mark.parametrize(
    "given",
    ["a b", "x" * 65, "line\r\nX-Injected: 1", "caf\u00e9", "", "../../etc", "a;b", "%00"],
)
def test_a_malformed_request_id_never_reaches_the_trail(client, session, world, given):
    try:
        headers = {**world.staff_headers, "X-Request-ID": given}
        event, response = _one_event(session, lambda: client.get("/api/v1/me", headers=headers))
    except ValueError:  # werkzeug refuses a header with a newline before it is sent
        return
    assert event.request_id == response.headers["X-Request-ID"] != given
    assert re.fullmatch(r"[0-9a-f]{32}", event.request_id)

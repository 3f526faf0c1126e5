"""Idempotency-Key on creating POSTs: replays, refusals, per-user scope, expiry, concurrency."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import date, timedelta

import pytest
import requests
from sqlalchemy import func, select, text, update
from sqlalchemy.orm import Session
from werkzeug.serving import make_server

from service.accounts.passwords import hash_password
from service.api.middleware.idempotency import creating_endpoints
from service.db import create_db_engine, get_engine, init_engine, utcnow
from service.migrations import upgrade_database
from service.models import Clinic, IdempotencyKey, Patient, User
from service.trust import idempotency
from tests.factories import auth_headers, make_clinic, make_patient, make_user

PATIENTS = "/api/v1/patients"
NEW_PATIENT = {
    "mrn": "IDEM-1",
    "given_name": "Ida",
    "family_name": "Retry",
    "birth_date": "1984-05-02",
    "time_zone": "Europe/Berlin",
}


def _count_patients(session, clinic_id: int) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).where(Patient.clinic_id == clinic_id))


def test_a_retry_returns_the_first_response_and_creates_nothing_more(
    client, session, settings, clinic, staff
):
    headers = auth_headers(settings, staff, **{"Idempotency-Key": "enrol-ida-1"})
    first = client.post(PATIENTS, json=NEW_PATIENT, headers=headers)
    assert first.status_code == 201, first.get_json()
    assert "Idempotent-Replayed" not in first.headers

    # Same body, other key order and spacing: the same request.
    retry = client.post(
        PATIENTS,
        data='{ "time_zone": "Europe/Berlin", "mrn": "IDEM-1", "given_name": "Ida",'
        ' "family_name": "Retry", "birth_date": "1984-05-02" }',
        content_type="application/json",
        headers=headers,
    )
    assert retry.status_code == 201
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_data() == first.get_data()
    assert retry.content_type == first.content_type
    for name in ("Location", "ETag"):
        assert retry.headers.get(name) == first.headers.get(name)
    assert _count_patients(session, clinic.id) == 1


def test_the_same_key_with_another_body_is_422(client, session, settings, clinic, staff):
    headers = auth_headers(settings, staff, **{"Idempotency-Key": "k-1"})
    assert client.post(PATIENTS, json=NEW_PATIENT, headers=headers).status_code == 201

    other = client.post(PATIENTS, json=dict(NEW_PATIENT, mrn="IDEM-2"), headers=headers)
    assert other.status_code == 422
    assert other.content_type == "application/problem+json"
    assert other.get_json()["code"] == "idempotency_key_reused"
    # The same body on another creating route is another request too.
    patient = make_patient(session, clinic)
    lab = {"code": "igg", "value": 5.9, "unit": "g/L", "taken_at": "2026-06-18T08:30:00+02:00"}
    elsewhere = client.post(f"{PATIENTS}/{patient.id}/labs", json=lab, headers=headers)
    assert elsewhere.status_code == 422
    assert elsewhere.get_json()["code"] == "idempotency_key_reused"
    assert _count_patients(session, clinic.id) == 2  # IDEM-1 and the one made here


def test_a_request_still_in_flight_makes_the_retry_409(client, session, settings, clinic, staff):
    # What another process leaves while it runs the first request: the claimed key.
    idempotency.claim_key(
        session,
        user_id=staff.id,
        key="busy-1",
        method="POST",
        path=PATIENTS,
        request_hash=idempotency.request_fingerprint(
            "POST", PATIENTS, json.dumps(NEW_PATIENT).encode()
        ),
    )
    session.commit()

    retry = client.post(
        PATIENTS,
        json=NEW_PATIENT,
        headers=auth_headers(settings, staff, **{"Idempotency-Key": "busy-1"}),
    )
    assert retry.status_code == 409
    assert retry.get_json()["code"] == "idempotency_in_flight"
    assert _count_patients(session, clinic.id) == 0


def test_keys_are_per_user(client, session, settings):
    one, two = make_clinic(session), make_clinic(session)
    alice, bob = make_user(session, settings, one), make_user(session, settings, two)
    for user, clinic in ((alice, one), (bob, two)):
        headers = auth_headers(settings, user, **{"Idempotency-Key": "shared-key"})
        created = client.post(PATIENTS, json=NEW_PATIENT, headers=headers)
        assert created.status_code == 201
        assert "Idempotent-Replayed" not in created.headers
        assert created.get_json()["clinic_id"] == clinic.id
    assert _count_patients(session, one.id) == 1
    assert _count_patients(session, two.id) == 1


def test_an_error_answer_is_kept_and_replayed_like_a_success(
    client, session, settings, clinic, staff
):
    headers = auth_headers(settings, staff, **{"Idempotency-Key": "bad-zone"})
    bad = dict(NEW_PATIENT, time_zone="Mars/Olympus")
    first = client.post(PATIENTS, json=bad, headers=headers)
    assert first.status_code == 422
    retry = client.post(PATIENTS, json=bad, headers=headers)
    assert retry.status_code == 422
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_data() == first.get_data()
    # Corrected, it is another request: it needs a new key.
    fixed = client.post(PATIENTS, json=NEW_PATIENT, headers=headers)
    assert fixed.get_json()["code"] == "idempotency_key_reused"
    assert _count_patients(session, clinic.id) == 0


def test_a_server_error_frees_the_key_for_a_retry(session, settings, clinic, staff):
    from service.app import create_app

    app = create_app(settings)  # its own app: one of its views is swapped for a crashing one
    real_view = app.view_functions["patients.Patients"]

    def crashing_view(*args, **kwargs):
        raise RuntimeError("database exploded: secret internals")

    app.view_functions["patients.Patients"] = crashing_view
    client = app.test_client()
    headers = auth_headers(settings, staff, **{"Idempotency-Key": "after-crash"})
    crashed = client.post(PATIENTS, json=NEW_PATIENT, headers=headers)
    assert crashed.status_code == 500
    assert crashed.get_json()["code"] == "internal_error"
    assert b"secret internals" not in crashed.get_data()
    assert b"Traceback" not in crashed.get_data()

    app.view_functions["patients.Patients"] = real_view
    retry = client.post(PATIENTS, json=NEW_PATIENT, headers=headers)
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers
    assert _count_patients(session, clinic.id) == 1


@pytest.mark.parametrize(
    "key", ["", "has space", "x" * 256, "tab\tinside", "caf\u00e9"], ids=lambda k: repr(k[:12])
)
def test_a_malformed_key_is_422(client, session, settings, clinic, staff, key):
    headers = auth_headers(settings, staff)
    headers["Idempotency-Key"] = key
    response = client.post(PATIENTS, json=NEW_PATIENT, headers=headers)
    assert response.status_code == 422
    assert "Idempotency-Key" in response.get_json()["errors"]
    assert _count_patients(session, clinic.id) == 0


def test_the_longest_key_is_accepted(client, session, settings, clinic, staff):
    headers = auth_headers(settings, staff, **{"Idempotency-Key": "~" * 255})
    assert client.post(PATIENTS, json=NEW_PATIENT, headers=headers).status_code == 201


def test_without_the_header_each_post_creates(client, session, settings, clinic, staff):
    headers = auth_headers(settings, staff)
    assert client.post(PATIENTS, json=NEW_PATIENT, headers=headers).status_code == 201
    again = client.post(PATIENTS, json=dict(NEW_PATIENT, mrn="IDEM-2"), headers=headers)
    assert again.status_code == 201
    assert _count_patients(session, clinic.id) == 2


def test_a_bad_token_with_a_key_is_401_and_claims_nothing(client, session, settings, staff):
    response = client.post(
        PATIENTS,
        json=NEW_PATIENT,
        headers={"Authorization": "Bearer nonsense", "Idempotency-Key": "k"},
    )
    assert response.status_code == 401
    assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


def test_an_expired_key_no_longer_replays(client, session, settings, clinic, staff):
    headers = auth_headers(settings, staff, **{"Idempotency-Key": "day-old"})
    assert client.post(PATIENTS, json=NEW_PATIENT, headers=headers).status_code == 201
    session.execute(update(IdempotencyKey).values(expires_at=utcnow() - timedelta(seconds=1)))
    session.commit()
    # 24 hours on, the key is free again: the request runs (and meets the stored MRN).
    again = client.post(PATIENTS, json=NEW_PATIENT, headers=headers)
    assert again.status_code == 409
    assert again.get_json()["code"] != "idempotency_in_flight"
    assert "Idempotent-Replayed" not in again.headers


def test_keys_expire_after_24_hours_and_the_job_purges_them(session, settings, staff):
    from jobs.tasks import purge_expired_idempotency_keys

    start = utcnow()
    for n in range(3):
        idempotency.claim_key(
            session,
            user_id=staff.id,
            key=f"old-{n}",
            method="POST",
            path=PATIENTS,
            request_hash="0" * 64,
            now=start,
        )
    session.commit()

    assert purge_expired_idempotency_keys(now=start + timedelta(hours=23, minutes=59)) == 0
    assert purge_expired_idempotency_keys(now=start + timedelta(hours=24)) == 3
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


def test_the_runner_schedules_the_purge_hourly(settings):
    from jobs import tasks
    from jobs.runner import Runner
    from jobs.scheduler import build_scheduler

    previous = tasks._runner
    try:
        scheduler = build_scheduler(Runner(settings, {}))
        job = scheduler.get_job("purge_expired_idempotency_keys")
    finally:
        tasks.use_runner(previous)
    assert job is not None
    assert job.func is tasks.purge_expired_idempotency_keys
    assert str(job.trigger.fields[job.trigger.FIELD_NAMES.index("hour")]) == "*"


def test_every_creating_route_honours_the_key_and_documents_it(app, client):
    assert creating_endpoints(app) == {
        "clinic.Users",
        "doses.Administration",
        "inbox.Devices",
        "labs.PatientLabs",
        "patients.Patients",
        "plans.PatientPlans",
        "screening.ScreeningOverride",
        "doses.ReadinessOverride",
    }
    spec = client.get("/openapi.json").get_json()
    documented = {
        path
        for path, operations in spec["paths"].items()
        if {"$ref": "#/components/parameters/IdempotencyKey"}
        in operations.get("post", {}).get("parameters", [])
    }
    assert documented == {
        "/api/v1/users",
        "/api/v1/doses/{dose_id}/administration",
        "/api/v1/me/devices",
        "/api/v1/patients/{patient_id}/labs",
        "/api/v1/patients",
        "/api/v1/patients/{patient_id}/plans",
        "/api/v1/plans/{plan_id}/screening/override",
        "/api/v1/doses/{dose_id}/readiness/override",
    }
    assert spec["components"]["parameters"]["IdempotencyKey"]["in"] == "header"


# --- ten retries at once, against a real server and a database of its own --------------------


@pytest.fixture
def own_database(engine, settings, tmp_path):
    """A freshly migrated database for committed data, dropped afterwards; while it is in use
    the process's session factory points at it (init_engine), then back at the test database."""
    if engine.dialect.name == "postgresql":
        name = f"{engine.url.database}_idem_{uuid.uuid4().hex[:8]}"
        admin = create_db_engine(settings.database_url).execution_options(
            isolation_level="AUTOCOMMIT"
        )
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = engine.url.set(database=name).render_as_string(hide_password=False)
    else:
        url = f"sqlite:///{tmp_path / 'idempotency-race.db'}"
    upgrade_database(url)
    yield url
    init_engine(settings.database_url)
    if engine.dialect.name == "postgresql":
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def race_app(own_database, settings):
    from service.app import create_app

    app = create_app(settings, database_url=own_database)
    with Session(get_engine()) as setup:
        clinic = Clinic(name="Idempotency race clinic", time_zone="Europe/Berlin")
        setup.add(clinic)
        setup.flush()
        user = User(
            clinic_id=clinic.id,
            email="race@example.org",
            password_hash=hash_password(settings, "not used here"),
            role="clinician",
        )
        setup.add(user)
        setup.commit()
        headers = auth_headers(settings, user)
    return app, headers


@pytest.fixture
def live_server(race_app):
    app, _ = race_app
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(timeout=10)


def test_ten_concurrent_retries_create_exactly_one_object(race_app, live_server):
    headers = dict(race_app[1], **{"Idempotency-Key": "ten-at-once"})
    start = threading.Barrier(10)
    answers: list[tuple[int, dict, dict]] = []
    lock = threading.Lock()

    def post() -> None:
        start.wait(timeout=10)
        response = requests.post(
            live_server + PATIENTS,
            json=dict(NEW_PATIENT, mrn="RACE-1"),
            headers=headers,
            timeout=30,
        )
        with lock:
            answers.append((response.status_code, dict(response.headers), response.json()))

    threads = [threading.Thread(target=post) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(answers) == 10
    fresh = [a for a in answers if a[0] == 201 and "Idempotent-Replayed" not in a[1]]
    replayed = [a for a in answers if a[0] == 201 and a[1].get("Idempotent-Replayed") == "true"]
    in_flight = [a for a in answers if a[0] == 409 and a[2]["code"] == "idempotency_in_flight"]
    assert len(fresh) == 1, [(a[0], a[2].get("code")) for a in answers]
    assert len(fresh) + len(replayed) + len(in_flight) == 10, [(a[0], a[2]) for a in answers]
    assert all(a[2] == fresh[0][2] for a in replayed)
    with Session(get_engine()) as check:
        assert check.scalar(select(func.count()).select_from(Patient)) == 1
    # Settled, one more retry is a replay.
    again = requests.post(
        live_server + PATIENTS, json=dict(NEW_PATIENT, mrn="RACE-1"), headers=headers, timeout=30
    )
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == fresh[0][2]


def test_dates_survive_the_replay(client, session, settings, clinic, staff):
    """A plan's full answer (doses, checklist) comes back unchanged from the stored copy."""
    patient = make_patient(session, clinic)
    headers = auth_headers(settings, staff, **{"Idempotency-Key": "plan-1"})
    body = {"regimen": "ocrelizumab-iv", "start_date": date(2027, 1, 4).isoformat()}
    first = client.post(f"{PATIENTS}/{patient.id}/plans", json=body, headers=headers)
    assert first.status_code == 201, first.get_json()
    retry = client.post(f"{PATIENTS}/{patient.id}/plans", json=body, headers=headers)
    assert retry.headers["Idempotent-Replayed"] == "true"
    assert retry.get_json() == first.get_json()
    # ?preview=true under the same key is a different request.
    preview = client.post(f"{PATIENTS}/{patient.id}/plans?preview=true", json=body, headers=headers)
    assert preview.get_json()["code"] == "idempotency_key_reused"


def test_two_edits_of_one_plan_with_the_same_etag_give_exactly_one_success(race_app, live_server):
    """§3: the If-Match check and the version column close the race between check and write."""
    headers = race_app[1]
    patient = requests.post(
        live_server + PATIENTS, json=dict(NEW_PATIENT, mrn="EDIT-1"), headers=headers, timeout=30
    ).json()
    plan = requests.post(
        f"{live_server}/api/v1/patients/{patient['id']}/plans",
        json={"regimen": "ocrelizumab-iv", "start_date": "2027-01-04"},
        headers=headers,
        timeout=30,
    ).json()
    url = f"{live_server}/api/v1/plans/{plan['id']}"
    etag = requests.get(url, headers=headers, timeout=30).headers["ETag"]
    start = threading.Barrier(2)
    statuses: list[int] = []

    def edit(notes: str) -> None:
        start.wait(timeout=10)
        response = requests.patch(
            url, json={"notes": notes}, headers={**headers, "If-Match": etag}, timeout=30
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=edit, args=(n,)) for n in ("first", "second")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == [200, 412]
    stored = requests.get(url, headers=headers, timeout=30).json()
    assert stored["notes"] in ("first", "second")


# --- crash consistency: the answer is stored with the change, abandoned claims lapse ----------


def _claim(session, staff, key: str, *, age: timedelta) -> None:
    """What a process killed mid-request leaves: the key claimed `age` ago, nothing stored."""
    idempotency.claim_key(
        session,
        user_id=staff.id,
        key=key,
        method="POST",
        path=PATIENTS,
        request_hash=idempotency.request_fingerprint(
            "POST", PATIENTS, json.dumps(NEW_PATIENT).encode()
        ),
        now=utcnow() - age,
    )
    session.commit()


def test_a_claim_older_than_the_lease_is_run_again_once(client, session, settings, clinic, staff):
    lease = timedelta(seconds=settings.idempotency_lease_s)
    _claim(session, staff, "abandoned-1", age=lease + timedelta(seconds=1))
    headers = auth_headers(settings, staff, **{"Idempotency-Key": "abandoned-1"})

    retry = client.post(PATIENTS, json=NEW_PATIENT, headers=headers)
    assert retry.status_code == 201, retry.get_json()
    assert "Idempotent-Replayed" not in retry.headers
    again = client.post(PATIENTS, json=NEW_PATIENT, headers=headers)
    assert again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_data() == retry.get_data()
    assert _count_patients(session, clinic.id) == 1


def test_a_claim_within_its_lease_still_answers_409(client, session, settings, clinic, staff):
    lease = timedelta(seconds=settings.idempotency_lease_s)
    _claim(session, staff, "busy-2", age=lease - timedelta(seconds=5))
    retry = client.post(
        PATIENTS,
        json=NEW_PATIENT,
        headers=auth_headers(settings, staff, **{"Idempotency-Key": "busy-2"}),
    )
    assert retry.status_code == 409
    assert retry.get_json()["code"] == "idempotency_in_flight"


def test_the_lease_is_a_setting():
    from service.config import Settings

    assert Settings.from_env({"CD20_IDEMPOTENCY_LEASE": "7.5"}).idempotency_lease_s == 7.5
    assert Settings.from_env({}).idempotency_lease_s == 35.0


def test_a_request_whose_claim_was_taken_over_stores_nothing(session, settings, clinic, staff):
    """A request that outlived its lease: a retry took the key over while it ran. Its change is
    not committed (the retry's is the one that counts), and it answers 409."""
    from service.app import create_app
    from service.db import SessionFactory

    app = create_app(settings)
    real_view = app.view_functions["patients.Patients"]
    lease = timedelta(seconds=settings.idempotency_lease_s)

    def overtaken_view(*args, **kwargs):
        with SessionFactory() as other:  # the retry, one lease later
            claim = idempotency.claim_key(
                other,
                user_id=staff.id,
                key="slow-1",
                method="POST",
                path=PATIENTS,
                request_hash=idempotency.request_fingerprint(
                    "POST", PATIENTS, json.dumps(NEW_PATIENT).encode()
                ),
                now=utcnow() + lease + timedelta(seconds=1),
            )
            assert claim.record_id is not None
            other.commit()
        return real_view(*args, **kwargs)

    app.view_functions["patients.Patients"] = overtaken_view
    headers = auth_headers(settings, staff, **{"Idempotency-Key": "slow-1"})
    answer = app.test_client().post(PATIENTS, json=NEW_PATIENT, headers=headers)
    assert answer.status_code == 409, answer.get_json()
    assert answer.get_json()["code"] == "idempotency_in_flight"
    assert _count_patients(session, clinic.id) == 0


def test_a_write_whose_records_cannot_be_stored_is_not_stored_either(
    session, settings, clinic, staff
):
    """The change, its audit event and its idempotency answer commit together or not at all."""
    from service.api.middleware import transaction
    from service.app import create_app
    from service.models import AuditEvent

    app = create_app(settings)

    def failing_record(response):
        def write(session, *, with_changes):
            if with_changes:
                raise RuntimeError("disk full")

        return write

    transaction.add_record(app, failing_record)
    headers = auth_headers(settings, staff, **{"Idempotency-Key": "atomic-1"})
    answer = app.test_client().post(PATIENTS, json=NEW_PATIENT, headers=headers)
    assert answer.status_code == 500
    assert answer.get_json()["code"] == "internal_error"
    assert _count_patients(session, clinic.id) == 0
    # The failure is audited, and the key is free for a retry.
    event = session.scalar(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1))
    assert (event.request_id, event.status_code) == (answer.headers["X-Request-ID"], 500)
    assert session.scalar(select(func.count()).select_from(IdempotencyKey)) == 0


def test_a_view_that_fails_after_its_commit_stores_nothing(session, settings, clinic, staff):
    """A 5xx after the view's commit: the change is not kept, so the retry runs it once."""
    from service.app import create_app

    app = create_app(settings)
    real_view = app.view_functions["patients.Patients"]

    def failing_after_commit(*args, **kwargs):
        real_view(*args, **kwargs)
        raise RuntimeError("serialisation exploded")

    app.view_functions["patients.Patients"] = failing_after_commit
    client = app.test_client()
    headers = auth_headers(settings, staff, **{"Idempotency-Key": "after-commit"})
    assert client.post(PATIENTS, json=NEW_PATIENT, headers=headers).status_code == 500
    assert _count_patients(session, clinic.id) == 0

    app.view_functions["patients.Patients"] = real_view
    retry = client.post(PATIENTS, json=NEW_PATIENT, headers=headers)
    assert retry.status_code == 201
    assert "Idempotent-Replayed" not in retry.headers
    assert _count_patients(session, clinic.id) == 1

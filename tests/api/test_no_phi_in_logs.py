"""No patient data in the logs: a day of clinic work through the API, every logger at DEBUG
(SQLAlchemy's statement log included), and not one name, e-mail, phone number, birth date or MRN
in what was logged."""

from __future__ import annotations

import logging

import pytest
from flask import Flask
from sqlalchemy.exc import IntegrityError

from service.api.problems import Api, constraint_name
from tests.factories import PASSWORD, auth_headers, make_user

# Distinctive values that appear nowhere else, so any hit is a leak.
PATIENTS = [
    {
        "mrn": "MRN-QX7731-ZEB",
        "given_name": "Zebulonia",
        "family_name": "Quillfeather",
        "birth_date": "1961-07-23",
        "time_zone": "Europe/Berlin",
        "email": "zebulonia.quillfeather@phi-canary.example",
        "phone": "+49 30 5550 19874",
        "sex": "female",
    },
    {
        "mrn": "MRN-VR2208-ORM",
        "given_name": "Ormsbertha",
        "family_name": "Vandeluyt",
        "birth_date": "1977-11-02",
        "time_zone": "America/Chicago",
        "email": "ormsbertha.vandeluyt@phi-canary.example",
        "phone": "+1 312 555 01733",
    },
]
NOTE = "Reports that Quillfeather's sister Thessaly Marchbanks had shingles"
STAFF_EMAIL = "dr.pellinore.aldous@phi-canary.example"


def _secrets() -> list[str]:
    values = [NOTE, "Thessaly", "Marchbanks", STAFF_EMAIL, "Pellinore"]
    for patient in PATIENTS:
        year, month, day = (int(part) for part in patient["birth_date"].split("-"))
        values += [
            patient["mrn"],
            patient["given_name"],
            patient["family_name"],
            patient["email"],
            patient["phone"],
            patient["phone"].replace(" ", ""),
            patient["birth_date"],
            f"{year}, {month}, {day}",  # datetime.date(1961, 7, 23) as repr() shows it
        ]
    return values


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """Every record of every logger, from the first database connection of the test on."""
    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "werkzeug", "service"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def _everything(caplog: pytest.LogCaptureFixture) -> str:
    parts = [caplog.text]
    for record in caplog.records:
        parts.append(record.getMessage())
        parts.append(repr(record.args))
        if record.exc_info and record.exc_info[1] is not None:
            parts.append(repr(record.exc_info[1]))
            parts.append(str(record.exc_info[1]))
    return "\n".join(parts)


def test_a_day_of_clinic_work_logs_no_patient_data(all_logs, client, session, settings, clinic):
    admin = make_user(session, settings, clinic, "admin")
    staff = auth_headers(settings, make_user(session, settings, clinic))
    admin_headers = auth_headers(settings, admin)
    ids = []
    for body in PATIENTS:
        created = client.post("/api/v1/patients", json=body, headers=staff)
        assert created.status_code == 201, created.get_json()
        assert created.get_json()["family_name"] == body["family_name"]
        ids.append(created.get_json()["id"])
    first = ids[0]

    # A duplicate MRN (the database's unique constraint says no), and bad input of every kind.
    duplicate = client.post("/api/v1/patients", json=PATIENTS[0], headers=staff)
    assert duplicate.status_code == 409
    for bad in (
        dict(PATIENTS[0], mrn="MRN-NEW-1", email="zebulonia.quillfeather@"),
        dict(PATIENTS[0], mrn="MRN-NEW-2", time_zone="Quillfeather/Zebulonia"),
        dict(PATIENTS[0], mrn="MRN-NEW-3", birth_date="2961-07-23"),
        dict(PATIENTS[0], mrn="MRN-NEW-4", phone="+49 30 5550 19874" * 4),
        dict(PATIENTS[0], mrn="MRN-QX7731-ZEB" * 10),
    ):
        assert client.post("/api/v1/patients", json=bad, headers=staff).status_code == 422
    # Reads, a search by name, an edit.
    assert client.get(f"/api/v1/patients/{first}", headers=staff).status_code == 200
    found = client.get("/api/v1/patients?q=Quillfeather", headers=staff)
    assert found.get_json()["total"] == 1
    etag = client.get(f"/api/v1/patients/{ids[1]}", headers=staff).headers["ETag"]
    edit = client.patch(
        f"/api/v1/patients/{ids[1]}",
        json={"phone": "+1 312 555 01733", "email": PATIENTS[1]["email"]},
        headers={**staff, "If-Match": etag},
    )
    assert edit.status_code == 200, edit.get_json()
    # A plan, its screening (with a note naming people), labs.
    plan = client.post(
        f"/api/v1/patients/{first}/plans",
        json={"regimen": "ocrelizumab-iv", "start_date": "2027-01-04"},
        headers=staff,
    )
    assert plan.status_code == 201
    plan_id = plan.get_json()["id"]
    item = f"/api/v1/plans/{plan_id}/screening/hbsag"
    screened = client.put(
        item,
        json={"result": "negative", "result_date": "2026-06-01", "notes": NOTE},
        headers={**staff, "If-Match": client.get(item, headers=staff).headers["ETag"]},
    )
    assert screened.status_code == 200, screened.get_json()
    lab = {"code": "igg", "value": 4.1, "unit": "g/L", "taken_at": "2026-06-18T08:30:00+02:00"}
    assert client.post(f"/api/v1/patients/{first}/labs", json=lab, headers=staff).status_code == 201
    assert client.get(f"/api/v1/plans/{plan_id}", headers=staff).status_code == 200
    # The patient's app account: invitation, a wrong code, activation, wrong and right passwords.
    code = client.post(f"/api/v1/patients/{first}/invitation", headers=staff).get_json()["code"]
    assert (
        client.post(
            "/api/v1/auth/activate", json={"code": "WRONG-CODE", "password": PASSWORD}
        ).status_code
        == 422
    )
    activated = client.post("/api/v1/auth/activate", json={"code": code, "password": PASSWORD})
    assert activated.status_code == 201, activated.get_json()
    for password in ("Quillfeather1961!", PASSWORD):
        client.post(
            "/api/v1/auth/token",
            json={"username": PATIENTS[0]["email"], "password": password},
        )
    # Staff accounts: one with a name in its address, and the same address again.
    user = {"email": STAFF_EMAIL, "role": "clinician", "password": "Pellinore-aldous-1958"}
    assert client.post("/api/v1/users", json=user, headers=admin_headers).status_code == 201
    assert client.post("/api/v1/users", json=user, headers=admin_headers).status_code in (409, 422)

    logged = _everything(all_logs)
    assert "INSERT INTO patient" in logged  # the statement log was captured
    leaks = [value for value in _secrets() if value.lower() in logged.lower()]
    assert leaks == [], f"patient data in the logs: {leaks}"


def test_an_unexpected_database_error_is_logged_without_its_values(
    all_logs, session, settings, app: Flask
):
    """PostgreSQL quotes the values in its messages ("Key (mrn)=(...)", "Failing row contains");
    a database error nobody maps is logged by type and SQLSTATE, with the traceback."""
    from sqlalchemy import text

    try:
        with session.begin_nested():
            session.execute(
                text("INSERT INTO clinic (id, name, time_zone) VALUES (:id, :name, NULL)"),
                {"id": 987654, "name": "Quillfeather"},
            )
    except IntegrityError as error:
        failure = error
    else:
        pytest.fail("the insert should have failed")
    api: Api = app.extensions["flask-smorest"]["apis"][""]["ext_obj"]
    with app.test_request_context("/api/v1/patients"):
        assert api.handle_unexpected(failure).status_code == 500
    logged = _everything(all_logs)
    assert "Quillfeather" not in logged
    assert "unhandled error: database error" in logged
    assert "Traceback" not in logged or "test_no_phi_in_logs.py" in logged
    assert constraint_name(failure)

"""The labs the labels ask for, through the HTTP API: the blood count with differential as
monitoring, a low neutrophil count on the worklist, and the contraception date on the plan the
patient's app reads."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from dateutil.relativedelta import relativedelta

from tests.api.test_doses import _doses, _give
from tests.factories import auth_headers, make_clinic, make_patient, make_plan, make_user

TODAY = date.today()


def _world(session, settings, **patient_fields):
    clinic = make_clinic(session, time_zone="Europe/Berlin")
    staff = make_user(session, settings, clinic, "clinician")
    patient = make_patient(session, clinic, **patient_fields)
    return clinic, staff, patient, auth_headers(settings, staff)


def test_blood_count_at_baseline_and_every_six_months(client, session, settings):
    _, staff, patient, headers = _world(session, settings)
    plan = make_plan(session, patient, staff, start_date=TODAY)
    tasks = client.get(f"/api/v1/plans/{plan.id}/monitoring", headers=headers).get_json()["items"]
    assert [t["due_date"] for t in tasks if t["kind"] == "cbc"] == [
        TODAY.isoformat(),
        (TODAY + relativedelta(months=6)).isoformat(),
        (TODAY + relativedelta(months=12)).isoformat(),
    ]
    regimen = client.get("/api/v1/regimens/ocrelizumab-iv", headers=headers).get_json()
    (rule,) = [m for m in regimen["monitoring"] if m["kind"] == "cbc"]
    assert "Drugs 2024" in rule["source"]


def test_a_low_neutrophil_count_raises_a_staff_alert(client, session, settings):
    _, staff, patient, headers = _world(session, settings)
    plan = make_plan(session, patient, staff, start_date=TODAY)
    baseline = next(
        t
        for t in client.get(f"/api/v1/plans/{plan.id}/monitoring", headers=headers).get_json()[
            "items"
        ]
        if t["kind"] == "cbc"
    )
    taken = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
    low = client.post(
        f"/api/v1/patients/{patient.id}/labs",
        json={
            "code": "neutrophils",
            "value": 0.9,
            "unit": "10^9/L",
            "ref_low": 1.5,
            "ref_high": 7.5,
            "taken_at": taken,
            "task_id": baseline["id"],
        },
        headers=headers,
    )
    assert low.status_code == 201, low.get_json()
    assert low.get_json()["flag"] == "low"
    worklist = client.get("/api/v1/staff/worklist", headers=headers).get_json()
    alerts = [a for a in worklist["alerts"] if a["patient"]["id"] == patient.id]
    assert [(a["kind"], a["details"]) for a in alerts] == [
        (
            "neutropenia",
            {"code": "neutrophils", "flag": "low", "concern": "late_onset_neutropenia"},
        )
    ]
    task = client.get(f"/api/v1/monitoring/{baseline['id']}", headers=headers).get_json()
    assert task["status"] == "done"

    normal = client.post(
        f"/api/v1/patients/{patient.id}/labs",
        json={
            "code": "neutrophils",
            "value": 3.2,
            "unit": "10^9/L",
            "ref_low": 1.5,
            "ref_high": 7.5,
            "taken_at": taken,
        },
        headers=headers,
    )
    assert normal.status_code == 201
    again = client.get("/api/v1/staff/worklist", headers=headers).get_json()
    assert again["counts"]["alerts"] == worklist["counts"]["alerts"]


def test_the_plan_shows_until_when_contraception_is_advised(client, session, settings):
    _, staff, patient, headers = _world(session, settings, can_become_pregnant=True)
    start = TODAY - timedelta(days=30)
    plan = make_plan(session, patient, staff, start_date=start, cleared=True)
    before = client.get(f"/api/v1/plans/{plan.id}", headers=headers).get_json()["contraception"]
    assert before["advised_until"] is None  # no dose given yet
    assert (before["option"], before["window"]) == ("US", {"months": 6, "weeks": 0, "days": 0})
    assert before["source"]

    doses = _doses(client, plan.id, headers)
    assert _give(client, doses[0]["id"], headers, start).status_code == 201
    until = (start + relativedelta(months=6)).isoformat()
    body = client.get(f"/api/v1/plans/{plan.id}", headers=headers).get_json()
    assert body["contraception"]["advised_until"] == until
    assert body["contraception"]["last_dose_date"] == start.isoformat()
    assert body["contraception"]["treatment_ongoing"] is True

    # The patient's app reads it from /me/plans.
    user = make_user(session, settings, patient.clinic, "patient", patient=patient)
    mine = client.get("/api/v1/me/plans", headers=auth_headers(settings, user)).get_json()
    assert mine["items"][0]["contraception"]["advised_until"] == until


def test_the_clinics_window_and_who_is_asked(client, session, settings):
    clinic, staff, patient, headers = _world(session, settings, can_become_pregnant=True)
    start = TODAY - timedelta(days=30)
    plan = make_plan(
        session,
        patient,
        staff,
        start_date=start,
        cleared=True,
        settings={"contraception_after_last_dose": "EU_UK"},
    )
    doses = _doses(client, plan.id, headers)
    _give(client, doses[0]["id"], headers, start)
    body = client.get(f"/api/v1/plans/{plan.id}", headers=headers).get_json()
    assert body["contraception"]["option"] == "EU_UK"
    assert body["contraception"]["advised_until"] == (start + relativedelta(months=4)).isoformat()

    other = make_patient(session, clinic, can_become_pregnant=False)
    other_plan = make_plan(session, other, staff, start_date=start)
    assert (
        client.get(f"/api/v1/plans/{other_plan.id}", headers=headers).get_json()["contraception"]
        is None
    )

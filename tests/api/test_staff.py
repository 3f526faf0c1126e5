"""Staff views through the HTTP API: the day's schedule in the clinic's time zone, the worklist
and alerts, and who may see them."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from service.db import utcnow
from service.models import StaffAlert
from service.treatment.screening import override_screening
from tests.factories import (
    actor_of,
    auth_headers,
    book_dose,
    make_clinic,
    make_patient,
    make_user,
    start_plan,
)

DAY = date(2027, 3, 4)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _schedule(client, headers, day=None):
    url = "/api/v1/staff/schedule" + (f"?date={day.isoformat()}" if day else "")
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _clear_checklist(plan):
    for item in plan.screening_items:
        rule = plan.regimen.screening_rule(item.code)
        item.result = next(r for r in rule.allowed_results if rule.outcome_for(r) == "cleared")


@pytest.fixture
def berlin(session):
    return make_clinic(session, time_zone="Europe/Berlin")


@pytest.fixture
def staff(session, settings, berlin):
    return make_user(session, settings, berlin)


def test_schedule_uses_the_clinic_local_day(client, session, headers, staff, berlin):
    early = start_plan(
        session, staff, make_patient(session, berlin, given_name="Ana"), start_date=DAY
    )
    late = start_plan(
        session, staff, make_patient(session, berlin, given_name="Ben"), start_date=DAY
    )
    next_day = start_plan(session, staff, make_patient(session, berlin), start_date=DAY)
    unbooked = start_plan(session, staff, make_patient(session, berlin), start_date=DAY)
    # 23:30 UTC on the 3rd is 00:30 on the 4th in Berlin; 22:30 UTC on the 4th is 23:30 there.
    book_dose(session, early.doses[0], _utc("2027-03-03T23:30"))
    book_dose(session, late.doses[0], _utc("2027-03-04T22:30"), location="Chair 2")
    book_dose(session, next_day.doses[0], _utc("2027-03-04T23:30"))

    body = _schedule(client, headers, DAY)
    assert (body["date"], body["time_zone"]) == ("2027-03-04", "Europe/Berlin")
    assert [i["plan"]["id"] for i in body["items"]] == [early.id, late.id]
    first = body["items"][0]
    assert first["local_time"] == "2027-03-04T00:30:00.000+01:00"
    assert first["appointment_at"] == "2027-03-03T23:30:00.000Z"
    assert first["patient"]["name"].startswith("Ana ")
    assert first["patient"]["mrn"] == early.patient.mrn
    assert first["plan"] == {
        "id": early.id,
        "regimen": "ocrelizumab-iv",
        "variant": "standard",
        "status": "screening",
    }
    assert first["dose"]["sequence"] == 1
    assert first["dose"]["amount_mg"] == 300
    assert first["dose"]["booking"] == "confirmed"
    assert first["dose"]["status"] == "booked"
    # Ocrelizumab IV, infusion 1: 250 mL at 30 mL/h raised by 30 every 30 min to 180
    # (159 min by the label's rate table) + 60 min observation.
    assert first["expected_infusion_minutes"] == 159
    assert first["expected_chair_minutes"] == 219
    drugs = {p["drug"]: p for p in first["premedications"]}
    assert drugs["methylprednisolone"]["dose_mg"] == 100
    assert drugs["methylprednisolone"]["route"] == "IV"
    assert drugs["antihistamine"]["minutes_before"] == {"min": 30, "max": 60}
    assert first["screening"]["outcome"] == "pending"
    assert "hbsag" in {i["code"] for i in first["screening"]["blocking_items"]}
    assert first["needs_review"] is False
    assert [u["plan"]["id"] for u in body["unbooked_due"]] == [unbooked.id]

    before = _schedule(client, headers, DAY - timedelta(days=1))
    assert before["items"] == []
    after = _schedule(client, headers, DAY + timedelta(days=1))
    assert [i["plan"]["id"] for i in after["items"]] == [next_day.id]


@pytest.mark.parametrize(
    ("zone", "appointment", "local"),
    [
        # 06:00 UTC on the 5th is 22:00 on the 4th in Los Angeles (PST, UTC-8).
        ("America/Los_Angeles", "2027-03-05T06:00", "2027-03-04T22:00:00.000-08:00"),
        # 11:30 UTC on the 3rd is 00:30 on the 4th in Auckland (NZDT, UTC+13).
        ("Pacific/Auckland", "2027-03-03T11:30", "2027-03-04T00:30:00.000+13:00"),
    ],
)
def test_schedule_in_other_zones(client, session, settings, zone, appointment, local):
    clinic = make_clinic(session, time_zone=zone)
    staff = make_user(session, settings, clinic)
    plan = start_plan(session, staff, make_patient(session, clinic, time_zone=zone), start_date=DAY)
    book_dose(session, plan.doses[0], _utc(appointment), zone=zone)
    headers = auth_headers(settings, staff)

    body = _schedule(client, headers, DAY)
    assert [(i["plan"]["id"], i["local_time"]) for i in body["items"]] == [(plan.id, local)]
    assert body["time_zone"] == zone
    assert _schedule(client, headers, DAY - timedelta(days=1))["items"] == []
    assert _schedule(client, headers, DAY + timedelta(days=1))["items"] == []


def test_schedule_defaults_to_today_in_the_clinic_zone(client, session, headers, staff, berlin):
    today = utcnow().astimezone(ZoneInfo("Europe/Berlin")).date()
    plan = start_plan(session, staff, make_patient(session, berlin), start_date=today)
    noon = datetime.combine(today, time(12, 0), tzinfo=ZoneInfo("Europe/Berlin"))
    book_dose(session, plan.doses[0], noon.astimezone(UTC))
    body = _schedule(client, headers)
    assert body["date"] == today.isoformat()
    assert [i["plan"]["id"] for i in body["items"]] == [plan.id]


def test_schedule_chair_time_is_null_when_the_catalog_has_none(
    client, session, headers, staff, berlin
):
    plan = start_plan(
        session, staff, make_patient(session, berlin), regimen="ofatumumab-sc", start_date=DAY
    )
    book_dose(session, plan.doses[0], _utc("2027-03-04T09:00"))
    (item,) = _schedule(client, headers, DAY)["items"]
    assert item["expected_chair_minutes"] is None
    assert item["premedications"] == []


def test_schedule_leaves_out_cancelled_and_other_clinics(
    client, session, settings, headers, staff, berlin
):
    cancelled = start_plan(session, staff, make_patient(session, berlin), start_date=DAY)
    book_dose(session, cancelled.doses[0], _utc("2027-03-04T09:00"))
    cancelled.doses[0].status = "cancelled"
    other = make_clinic(session, time_zone="Europe/Berlin")
    theirs = start_plan(
        session, make_user(session, settings, other), make_patient(session, other), start_date=DAY
    )
    book_dose(session, theirs.doses[0], _utc("2027-03-04T10:00"))
    body = _schedule(client, headers, DAY)
    assert body["items"] == []
    assert body["unbooked_due"] == []


def test_schedule_rejects_a_bad_date(client, headers):
    response = client.get("/api/v1/staff/schedule?date=04/03/2027", headers=headers)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert "date" in response.get_json()["errors"]


def test_worklist_sections(client, session, settings, headers, staff, berlin):
    today = utcnow().astimezone(ZoneInfo("Europe/Berlin")).date()
    soon = start_plan(
        session, staff, make_patient(session, berlin), start_date=today + timedelta(5)
    )
    later = start_plan(
        session, staff, make_patient(session, berlin), start_date=today + timedelta(30)
    )
    missed = start_plan(
        session, staff, make_patient(session, berlin), start_date=today - timedelta(40)
    )
    overridden = start_plan(
        session, staff, make_patient(session, berlin), start_date=today + timedelta(3)
    )
    override_screening(
        session, actor_of(staff), overridden.id, reason="Consult documented with hepatology"
    )
    treating = start_plan(
        session, staff, make_patient(session, berlin), start_date=today - timedelta(200)
    )
    _clear_checklist(treating)
    for dose in treating.doses:
        if dose.due_date < today:
            dose.status = "administered"
    # Another clinic's late plan never shows.
    other = make_clinic(session)
    start_plan(
        session,
        make_user(session, settings, other),
        make_patient(session, other),
        start_date=today - timedelta(40),
    )
    session.flush()

    response = client.get("/api/v1/staff/worklist", headers=headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["date"] == today.isoformat()

    checklists = [(c["plan"]["id"], c["days_until_first_dose"]) for c in body["checklists"]]
    assert checklists == [(missed.id, -40), (soon.id, 5)]
    assert later.id not in {c["plan"]["id"] for c in body["checklists"]}
    assert body["checklists"][0]["outcome"] == "pending"
    assert "anti_hbc" in {i["code"] for i in body["checklists"][0]["blocking_items"]}

    overdue = [(d["plan"]["id"], d["dose"]["sequence"]) for d in body["overdue_doses"]]
    assert overdue == [(missed.id, 1), (missed.id, 2)]
    assert body["overdue_doses"][0]["days_overdue"] == 40

    tasks = [(t["plan"]["id"], t["task"]["kind"]) for t in body["overdue_tasks"]]
    assert (treating.id, "ig_quant") in tasks
    assert all(t["days_overdue"] > 0 for t in body["overdue_tasks"])
    # Issue 8: the baseline blood count of the plan that never started is overdue too.
    assert {t["plan"]["id"] for t in body["overdue_tasks"]} == {treating.id, missed.id}
    assert [t["task"]["kind"] for t in body["overdue_tasks"] if t["plan"]["id"] == missed.id] == [
        "cbc"
    ]
    dates = [t["task"]["due_date"] for t in body["overdue_tasks"]]
    assert dates == sorted(dates)

    assert body["counts"] == {
        "checklists": 2,
        "overdue_doses": 2,
        "overdue_tasks": len(tasks),
        "alerts": 0,
        # The overridden plan passes its gate but nobody made it ready (first dose in 3 days).
        "not_made_ready": 1,
        "readiness_open": 0,
        "observation_missing": 0,
    }
    assert [e["plan"]["id"] for e in body["not_made_ready"]] == [overridden.id]
    assert body["not_made_ready"][0]["links"]["plan"] == f"/api/v1/plans/{overridden.id}"
    limited = client.get("/api/v1/staff/worklist?limit=1", headers=headers).get_json()
    assert len(limited["overdue_doses"]) == 1
    assert limited["counts"]["overdue_doses"] == 2
    assert client.get("/api/v1/staff/worklist?limit=0", headers=headers).status_code == 422


def test_booked_dose_is_overdue_from_the_day_after_its_appointment(
    client, session, headers, staff, berlin
):
    zone = ZoneInfo("Europe/Berlin")
    today = utcnow().astimezone(zone).date()
    plan = start_plan(session, staff, make_patient(session, berlin), start_date=today)
    _clear_checklist(plan)
    yesterday_late = datetime.combine(today - timedelta(days=1), time(23, 30), tzinfo=zone)
    book_dose(session, plan.doses[0], yesterday_late.astimezone(UTC))
    body = client.get("/api/v1/staff/worklist", headers=headers).get_json()
    assert [(d["dose"]["id"], d["days_overdue"]) for d in body["overdue_doses"]] == [
        (plan.doses[0].id, 1)
    ]


def test_patient_tokens_are_refused(client, session, settings, berlin):
    patient = make_patient(session, berlin)
    headers = auth_headers(
        settings, make_user(session, settings, berlin, "patient", patient=patient)
    )
    alert = StaffAlert(
        clinic_id=berlin.id,
        patient_id=patient.id,
        kind="lab_low",
        subject_type="lab_result",
        subject_id=1,
        details={},
    )
    session.add(alert)
    session.flush()
    assert client.get("/api/v1/staff/schedule", headers=headers).status_code == 403
    assert client.get("/api/v1/staff/worklist", headers=headers).status_code == 403
    refused = client.post(f"/api/v1/staff/alerts/{alert.id}/resolve", headers=headers)
    assert refused.status_code == 403
    assert refused.content_type == "application/problem+json"
    assert client.get("/api/v1/staff/worklist").status_code == 401


def test_resolving_alerts(client, session, settings, headers, berlin):
    patient = make_patient(session, berlin)
    other_clinic = make_clinic(session)
    mine = StaffAlert(
        clinic_id=berlin.id,
        patient_id=patient.id,
        kind="lab_low",
        subject_type="lab_result",
        subject_id=1,
        details={"code": "igg", "flag": "low"},
    )
    theirs = StaffAlert(
        clinic_id=other_clinic.id,
        patient_id=make_patient(session, other_clinic).id,
        kind="lab_low",
        subject_type="lab_result",
        subject_id=2,
        details={},
    )
    session.add_all([mine, theirs])
    session.flush()

    assert (
        client.post(f"/api/v1/staff/alerts/{theirs.id}/resolve", headers=headers).status_code == 404
    )
    assert client.post("/api/v1/staff/alerts/999999/resolve", headers=headers).status_code == 404
    first = client.post(f"/api/v1/staff/alerts/{mine.id}/resolve", headers=headers)
    assert first.status_code == 200
    again = client.post(f"/api/v1/staff/alerts/{mine.id}/resolve", headers=headers)
    assert again.get_json()["resolved_at"] == first.get_json()["resolved_at"]
    assert client.get("/api/v1/staff/worklist", headers=headers).get_json()["alerts"] == []


def _statements(session, call):
    from sqlalchemy import event

    connection = session.get_bind()
    seen: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        if not statement.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            seen.append(statement)

    event.listen(connection, "before_cursor_execute", count)
    try:
        call()
    finally:
        event.remove(connection, "before_cursor_execute", count)
    return len(seen)


def test_views_make_the_same_few_queries_for_more_patients(client, session, headers, staff, berlin):
    today = utcnow().astimezone(ZoneInfo("Europe/Berlin")).date()

    def add_patients(n):
        for _ in range(n):
            plan = start_plan(
                session, staff, make_patient(session, berlin), start_date=today - timedelta(200)
            )
            book_dose(session, plan.doses[-1], utcnow() + timedelta(minutes=5))
            session.add(
                StaffAlert(
                    clinic_id=berlin.id,
                    patient_id=plan.patient_id,
                    kind="lab_low",
                    subject_type="lab_result",
                    subject_id=1,
                    details={},
                )
            )
        session.flush()

    def views():
        assert client.get("/api/v1/staff/worklist", headers=headers).status_code == 200
        assert client.get("/api/v1/staff/schedule", headers=headers).status_code == 200

    add_patients(2)
    few = _statements(session, views)
    add_patients(4)
    many = _statements(session, views)
    assert many == few
    # auth, clinic, and a few per section; the readiness section loads what a dose's
    # readiness reads (plan, checklist, monitoring, answers, overrides) once for all doses.
    # On PostgreSQL each read's audit commit adds its SET LOCAL synchronous_commit (47).
    assert few <= 47, few

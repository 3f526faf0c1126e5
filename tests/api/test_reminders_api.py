"""Reminders through the API: the patient's upcoming list and check-ins, staff's view."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from service.models import Dose, Reminder, StaffAlert
from tests.factories import (
    FIRST_DOSE,
    auth_headers,
    make_clinic,
    make_patient,
    make_plan,
    make_user,
)


def world(session, settings):
    clinic = make_clinic(session, time_zone="Europe/Berlin")
    staff = make_user(session, settings, clinic, "clinician")
    patient = make_patient(session, clinic, time_zone="Europe/Berlin")
    me = make_user(session, settings, clinic, "patient", patient=patient)
    plan = make_plan(session, patient, staff, start_date=FIRST_DOSE)
    return clinic, staff, patient, me, plan


def checkin_of(session, plan) -> Reminder:
    return session.scalar(
        select(Reminder).where(Reminder.plan_id == plan.id, Reminder.kind == "infection_checkin")
    )


def test_patient_sees_upcoming_reminders_in_fire_order_without_staff_ones(
    client, session, settings
):
    _, _, _, me, _ = world(session, settings)
    body = client.get(
        "/api/v1/me/reminders/upcoming", headers=auth_headers(settings, me)
    ).get_json()
    fire_times = [item["fire_at"] for item in body["items"]]
    assert fire_times == sorted(fire_times)
    assert {item["audience"] for item in body["items"]} == {"patient"}
    first = body["items"][0]
    week_before = datetime.combine(
        FIRST_DOSE - timedelta(days=7), time(9), ZoneInfo("Europe/Berlin")
    )
    assert first["local_time"] == week_before.isoformat(timespec="milliseconds")
    assert first["time_zone"] == "Europe/Berlin"
    assert first["subject"]["type"] == "dose"


def test_reported_infection_alerts_staff_and_flags_the_dose(client, session, settings):
    _, staff, _, me, plan = world(session, settings)
    checkin = checkin_of(session, plan)
    response = client.post(
        f"/api/v1/me/reminders/{checkin.id}/ack",
        json={
            "response": {"status": "symptoms", "symptoms": ["fever", "cough"], "details": "38.4"}
        },
        headers=auth_headers(settings, me),
    )
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["acked_at"]

    dose = session.get(Dose, checkin.subject_id)
    session.refresh(dose)
    assert dose.needs_review is True
    alert = session.scalar(select(StaffAlert).where(StaffAlert.subject_id == checkin.id))
    assert alert.kind == "patient_reported"
    assert alert.details["symptoms"] == ["fever", "cough"]
    assert "38.4" not in str(alert.details)
    worklist = client.get(
        "/api/v1/staff/worklist", headers=auth_headers(settings, staff)
    ).get_json()
    assert any(a["kind"] == "patient_reported" for a in worklist["alerts"])


def test_no_symptoms_is_recorded_without_an_alert(client, session, settings):
    _, _, _, me, plan = world(session, settings)
    checkin = checkin_of(session, plan)
    url = f"/api/v1/me/reminders/{checkin.id}/ack"
    body = {"response": {"status": "no_symptoms"}}
    assert client.post(url, json=body, headers=auth_headers(settings, me)).status_code == 200
    # A retry of the same answer is fine; a different answer is refused.
    assert client.post(url, json=body, headers=auth_headers(settings, me)).status_code == 200
    changed = client.post(
        url, json={"response": {"status": "symptoms"}}, headers=auth_headers(settings, me)
    )
    assert changed.status_code == 409
    assert session.scalar(select(StaffAlert).where(StaffAlert.subject_id == checkin.id)) is None


def test_bad_answers_are_422(client, session, settings):
    _, _, _, me, plan = world(session, settings)
    checkin = checkin_of(session, plan)
    url = f"/api/v1/me/reminders/{checkin.id}/ack"
    headers = auth_headers(settings, me)
    for bad in (
        {"response": {"status": "maybe"}},
        {"response": {"status": "symptoms", "symptoms": ["not-a-symptom"]}},
        {"response": {"status": "no_symptoms", "symptoms": ["fever"]}},
        {"response": {"status": "symptoms", "details": "x" * 1001}},
        {"unknown": 1},
    ):
        response = client.post(url, json=bad, headers=headers)
        assert response.status_code == 422, bad
        assert response.content_type == "application/problem+json"
    upcoming = session.scalar(
        select(Reminder).where(Reminder.plan_id == plan.id, Reminder.kind == "dose_upcoming")
    )
    not_a_checkin = client.post(
        f"/api/v1/me/reminders/{upcoming.id}/ack",
        json={"response": {"status": "no_symptoms"}},
        headers=headers,
    )
    assert not_a_checkin.status_code == 422
    session.refresh(checkin)
    assert checkin.acked_at is None


def test_reminders_of_others_are_404_and_staff_cannot_ack(client, session, settings):
    clinic, staff, _, _, plan = world(session, settings)
    other = make_user(session, settings, clinic, "patient", patient=make_patient(session, clinic))
    checkin = checkin_of(session, plan)
    url = f"/api/v1/me/reminders/{checkin.id}/ack"
    assert client.post(url, json={}, headers=auth_headers(settings, other)).status_code == 404
    assert client.post(url, json={}, headers=auth_headers(settings, staff)).status_code == 403
    assert client.post(url, json={}).status_code == 401


def test_staff_list_a_patients_reminders_with_attempts(client, session, settings):
    _, staff, patient, me, plan = world(session, settings)
    reminder = checkin_of(session, plan)
    reminder.status, reminder.sent_at = (
        "sent",
        datetime.combine(FIRST_DOSE - timedelta(days=2), time(8), UTC),
    )
    session.flush()
    url = f"/api/v1/patients/{patient.id}/reminders"
    body = client.get(url, headers=auth_headers(settings, staff)).get_json()
    assert body["total"] >= 5
    kinds = {item["kind"] for item in body["items"]}
    assert {"dose_upcoming", "infection_checkin", "checklist_not_cleared"} <= kinds
    assert all("deliveries" in item for item in body["items"])
    assert client.get(url, headers=auth_headers(settings, me)).status_code == 403
    elsewhere = make_user(session, settings, make_clinic(session), "clinician")
    assert client.get(url, headers=auth_headers(settings, elsewhere)).status_code == 404

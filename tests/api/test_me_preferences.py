"""A patient's own time zone and reminder preferences: shown on /me, changed by PATCH /me with
If-Match, validated, audited, and the reminders still to come moved to the new local time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from service.db import utcnow
from service.models import AuditEvent, Reminder
from tests.factories import auth_headers, make_clinic, make_patient, make_plan, make_user

ME = "/api/v1/me"


@pytest.fixture
def oslo(session, settings):
    clinic = make_clinic(session, time_zone="Europe/Oslo")
    staff = make_user(session, settings, clinic, "clinician")
    patient = make_patient(session, clinic, time_zone="Europe/Oslo")
    user = make_user(session, settings, clinic, "patient", patient=patient)
    make_plan(session, patient, staff, start_date=date.today() + timedelta(days=40))
    return patient, auth_headers(settings, user), auth_headers(settings, staff)


def _patch(client, body, headers):
    etag = client.get(ME, headers=headers).headers["ETag"]
    return client.patch(ME, json=body, headers={**headers, "If-Match": etag})


def _pending(session, patient):
    return session.scalars(
        select(Reminder)
        .where(
            Reminder.patient_id == patient.id,
            Reminder.audience == "patient",
            Reminder.status == "pending",
            Reminder.fire_at >= utcnow(),
        )
        .order_by(Reminder.fire_at)
    ).all()


def test_me_shows_the_patients_zone_and_preferences(client, oslo):
    patient, headers, _ = oslo
    body = client.get(ME, headers=headers).get_json()
    assert body["time_zone"] == "Europe/Oslo"
    assert body["reminder_time"] == "09:00"
    assert (body["quiet_start"], body["quiet_end"]) == ("21:00", "08:00")
    assert body["reminder_channels"] == ["push"]
    assert body["dose_lead_days"] is None
    assert body["version"] == patient.version


def test_moving_to_new_york_moves_the_next_reminder_to_its_local_time(client, session, oslo):
    patient, headers, _ = oslo
    before = _pending(session, patient)
    assert before
    assert all(r.fire_at.astimezone(ZoneInfo("Europe/Oslo")).time() == time(9) for r in before)

    response = _patch(client, {"time_zone": "America/New_York", "reminder_time": "08:30"}, headers)

    assert response.status_code == 200, response.get_json()
    assert response.get_json()["time_zone"] == "America/New_York"
    assert response.get_json()["reminder_time"] == "08:30"
    session.expire_all()
    after = _pending(session, patient)
    assert len(after) == len(before)
    for reminder in after:
        local = reminder.fire_at.astimezone(ZoneInfo("America/New_York"))
        assert local.time() == time(8, 30)
        assert reminder.time_zone == "America/New_York"
    # 08:30 in New York is 13:30 or 12:30 UTC (standard or summer time), on the same local day.
    first = after[0].fire_at.astimezone(UTC)
    assert (first.hour, first.minute) in ((13, 30), (12, 30))
    assert first.date() == after[0].local_date
    upcoming = client.get("/api/v1/me/reminders/upcoming", headers=headers).get_json()
    assert upcoming["items"][0]["local_time"].startswith(f"{after[0].local_date}T08:30:00.000-0")
    assert upcoming["items"][0]["time_zone"] == "America/New_York"


def test_the_change_is_audited_and_staff_see_it(client, session, oslo):
    patient, headers, staff = oslo
    assert _patch(client, {"reminder_channels": ["email"]}, headers).status_code == 200
    event = session.scalar(
        select(AuditEvent).where(AuditEvent.method == "PATCH").order_by(AuditEvent.id.desc())
    )
    assert event is not None
    assert (event.resource_type, event.outcome, event.status_code) == ("user", "success", 200)
    record = client.get(f"/api/v1/patients/{patient.id}", headers=staff).get_json()
    assert record["reminder_channels"] == ["email"]


def test_a_stale_or_missing_if_match_is_refused(client, session, oslo):
    patient, headers, staff = oslo
    etag = client.get(ME, headers=headers).headers["ETag"]
    # Staff change the record meanwhile: the patient's copy is stale.
    staff_etag = client.get(f"/api/v1/patients/{patient.id}", headers=staff).headers["ETag"]
    changed = client.patch(
        f"/api/v1/patients/{patient.id}",
        json={"reminder_time": "10:00"},
        headers={**staff, "If-Match": staff_etag},
    )
    assert changed.status_code == 200

    stale = client.patch(ME, json={"reminder_time": "08:00"}, headers={**headers, "If-Match": etag})
    missing = client.patch(ME, json={"reminder_time": "08:00"}, headers=headers)

    assert stale.status_code == 412
    assert missing.status_code == 428
    assert stale.content_type == missing.content_type == "application/problem+json"
    session.refresh(patient)
    assert patient.reminder_time == time(10, 0)


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({"time_zone": "US/Eastern"}, {"time_zone"}),
        ({"time_zone": "Etc/GMT+5", "reminder_time": "25:00"}, {"time_zone", "reminder_time"}),
        ({"reminder_channels": ["sms"]}, {"reminder_channels"}),
        ({"dose_lead_days": [90]}, {"dose_lead_days"}),
        ({"mrn": "NEW-1"}, {"mrn"}),
        (
            {"given_name": "Eve", "can_become_pregnant": False},
            {"given_name", "can_become_pregnant"},
        ),
        ({"version": 7}, {"version"}),
    ],
)
def test_bad_or_staff_only_fields_are_422_per_field(client, session, oslo, body, fields):
    patient, headers, _ = oslo
    version = patient.version
    response = _patch(client, body, headers)
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    assert response.get_json()["code"] == "validation_failed"
    assert set(response.get_json()["errors"]) == fields
    session.refresh(patient)
    assert (patient.version, patient.time_zone, patient.mrn) == (
        version,
        "Europe/Oslo",
        patient.mrn,
    )


def test_staff_have_no_preferences_to_change(client, session, settings):
    clinic = make_clinic(session)
    headers = auth_headers(settings, make_user(session, settings, clinic, "admin"))
    body = client.get(ME, headers=headers).get_json()
    assert "time_zone" not in body
    response = _patch(client, {"reminder_time": "08:00"}, headers)
    assert response.status_code == 403
    assert response.get_json()["code"] == "forbidden"


def test_quiet_hours_hold_a_reminder_that_would_fire_inside_them(client, session, oslo):
    patient, headers, _ = oslo
    response = _patch(
        client, {"reminder_time": "06:00", "quiet_start": "22:00", "quiet_end": "07:15"}, headers
    )
    assert response.status_code == 200, response.get_json()
    session.expire_all()
    for reminder in _pending(session, patient):
        local = reminder.fire_at.astimezone(ZoneInfo("Europe/Oslo"))
        assert local.time() >= time(7, 15), datetime.isoformat(local)

"""Calendar feeds through the HTTP API, read back with `icalendar` and `recurring-ical-events`:
events per dose and task, time zones across a DST week in two zones, stable UIDs with rising
SEQUENCE, cancellations, alarms, the secret feed URL (once, revocable, 404 after), ETag and 304,
the chair schedule, rate limits and the audit trail."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import recurring_ical_events
from icalendar import Calendar
from sqlalchemy import select

from service.app import create_app
from service.models import AuditEvent, CalendarFeed
from service.protocols import expected_chair_minutes, get_regimen
from tests.factories import (
    auth_headers,
    book_dose,
    make_clinic,
    make_patient,
    make_plan,
    make_user,
)

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"
ME_ICS = "/api/v1/me/calendar.ics"
FEED = "/api/v1/me/calendar-feed"


def _world(session, settings, zone=BERLIN, start=date(2027, 3, 15), **patient_fields):
    clinic = make_clinic(session, time_zone=zone, name=f"Clinic in {zone}")
    staff = make_user(session, settings, clinic, "clinician")
    patient = make_patient(session, clinic, time_zone=zone, **patient_fields)
    user = make_user(session, settings, clinic, "patient", patient=patient)
    # First doses months ahead: screening results (dated this week) must stay current that long.
    plan = make_plan(
        session,
        patient,
        staff,
        start_date=start,
        cleared=True,
        settings={"screening_validity_days": "one_hundred_eighty_days"},
    )
    return clinic, staff, patient, user, plan


def _calendar(response) -> Calendar:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == "text/calendar"
    return Calendar.from_ical(response.get_data())


def _events(calendar: Calendar) -> dict[str, object]:
    return {str(event["UID"]): event for event in calendar.walk("VEVENT")}


# Each zone's spring-forward: Berlin on 2027-03-28 (CET -> CEST), New York on 2027-03-14
# (EST -> EDT). A 10:00 appointment the week before and the day after the change: the same wall
# clock time, UTC hours an hour apart.
DST_WEEKS = [
    (BERLIN, date(2027, 3, 22), date(2027, 3, 29), (9, 8), {"CET", "CEST"}),
    (NEW_YORK, date(2027, 3, 8), date(2027, 3, 15), (15, 14), {"EST", "EDT"}),
]


@pytest.mark.parametrize(("zone_name", "before_day", "after_day", "utc_hours", "names"), DST_WEEKS)
def test_a_booked_dose_is_a_timed_event_in_the_clinics_zone_across_a_dst_change(
    client, session, settings, zone_name, before_day, after_day, utc_hours, names
):
    _clinic, _staff, patient, user, plan = _world(session, settings, zone=zone_name)
    first, second = plan.doses[0], plan.doses[1]
    zone = ZoneInfo(zone_name)
    before = datetime.combine(before_day, time(10), zone)
    after = datetime.combine(after_day, time(10), zone)
    book_dose(session, first, before, zone=zone_name, location="Chair 3")
    book_dose(session, second, after, zone=zone_name, location="Chair 4")

    calendar = _calendar(client.get(ME_ICS, headers=auth_headers(settings, user)))
    events = _events(calendar)
    regimen = get_regimen(plan.regimen_code)
    for dose, utc_hour in zip((first, second), utc_hours, strict=True):
        event = events[f"dose-{dose.id}@cd20-monitor"]
        start = event.decoded("DTSTART")
        assert str(start.tzinfo) == zone_name
        assert (start.hour, start.minute) == (10, 0)
        assert start.astimezone(UTC).hour == utc_hour
        minutes = expected_chair_minutes(regimen, dose.as_planned())
        assert minutes is not None
        assert event.decoded("DURATION") == timedelta(minutes=minutes)
        assert str(event["STATUS"]) == "CONFIRMED"
        assert str(event["SUMMARY"]) == f"Ocrelizumab infusion, dose {dose.sequence}"
        assert str(event["LOCATION"]).startswith(dose.location)
    # The zone is defined in the document itself, with both of its offsets.
    (zone_component,) = calendar.walk("VTIMEZONE")
    assert str(zone_component["TZID"]) == zone_name
    assert {str(part["TZNAME"]) for part in zone_component.subcomponents} >= names

    # Planned doses not yet booked are all-day events on their due date.
    later = plan.doses[2]
    event = events[f"dose-{later.id}@cd20-monitor"]
    assert event.decoded("DTSTART") == later.due_date
    assert str(event["STATUS"]) == "TENTATIVE"
    # Nothing that identifies the patient or their diagnosis.
    body = client.get(ME_ICS, headers=auth_headers(settings, user)).get_data(as_text=True)
    for secret in (patient.mrn, patient.family_name, "sclerosis", "MS "):
        assert secret not in body


def test_a_dst_week_in_new_york_on_the_chair_schedule(client, session, settings):
    """New York moves to summer time on 2027-03-14 (two weeks before Berlin)."""
    clinic, staff, patient, _user, plan = _world(session, settings, zone=NEW_YORK)
    other_clinic, *_rest, other_plan = _world(session, settings)
    zone = ZoneInfo(NEW_YORK)
    book_dose(session, plan.doses[0], datetime(2027, 3, 12, 9, 0, tzinfo=zone), zone=NEW_YORK)
    book_dose(session, plan.doses[1], datetime(2027, 3, 15, 9, 0, tzinfo=zone), zone=NEW_YORK)
    book_dose(session, other_plan.doses[0], datetime(2027, 3, 15, 9, 0, tzinfo=ZoneInfo(BERLIN)))

    response = client.get(
        "/api/v1/staff/schedule.ics?from=2027-03-10&to=2027-03-17",
        headers=auth_headers(settings, staff),
    )
    events = sorted(_calendar(response).walk("VEVENT"), key=lambda e: e.decoded("DTSTART"))
    assert [str(e["UID"]) for e in events] == [
        f"chair-dose-{plan.doses[0].id}@cd20-monitor",
        f"chair-dose-{plan.doses[1].id}@cd20-monitor",
    ]
    starts = [event.decoded("DTSTART") for event in events]
    assert all(str(start.tzinfo) == NEW_YORK and start.hour == 9 for start in starts)
    assert [start.astimezone(UTC).hour for start in starts] == [14, 13]  # EST, then EDT
    assert patient.given_name in str(events[0]["SUMMARY"])

    bad = client.get(
        "/api/v1/staff/schedule.ics?from=2027-03-10&to=2027-03-10",
        headers=auth_headers(settings, staff),
    )
    assert bad.status_code == 422
    assert bad.mimetype == "application/problem+json"
    assert set(bad.get_json()["errors"]) == {"to"}
    assert other_clinic.id != clinic.id


def test_rescheduling_keeps_the_uid_and_raises_sequence(client, session, settings):
    _clinic, staff, _patient, user, plan = _world(session, settings, start=date.today())
    headers, staff_headers = auth_headers(settings, user), auth_headers(settings, staff)
    dose = plan.doses[1]
    uid = f"dose-{dose.id}@cd20-monitor"
    before = _events(_calendar(client.get(ME_ICS, headers=headers)))

    url = f"/api/v1/doses/{dose.id}"
    etag = client.get(url, headers=staff_headers).headers["ETag"]
    new_day = dose.due_date + timedelta(days=3)
    moved = client.patch(
        url,
        json={"due_date": new_day.isoformat()},
        headers={**staff_headers, "If-Match": etag},
    )
    assert moved.status_code == 200, moved.get_json()

    after = _events(_calendar(client.get(ME_ICS, headers=headers)))
    assert set(after) == set(before)  # updated in place: no duplicate, nothing lost
    assert after[uid].decoded("DTSTART") == new_day
    assert int(after[uid]["SEQUENCE"]) > int(before[uid]["SEQUENCE"])
    assert after[uid].decoded("LAST-MODIFIED") >= before[uid].decoded("LAST-MODIFIED")

    # A cancelled dose stays, marked cancelled, with the same UID and no alarms.
    session.refresh(dose)
    dose.status = "cancelled"
    session.flush()
    cancelled = _events(_calendar(client.get(ME_ICS, headers=headers)))[uid]
    assert str(cancelled["STATUS"]) == "CANCELLED"
    assert int(cancelled["SEQUENCE"]) > int(after[uid]["SEQUENCE"])
    assert cancelled.walk("VALARM") == []


def test_alarms_follow_the_patients_lead_times(client, session, settings):
    _clinic, _staff, patient, user, plan = _world(session, settings, start=date.today())
    headers = auth_headers(settings, user)
    uid = f"dose-{plan.doses[1].id}@cd20-monitor"

    def triggers() -> list[timedelta]:
        event = _events(_calendar(client.get(ME_ICS, headers=headers)))[uid]
        return sorted(alarm.decoded("TRIGGER") for alarm in event.walk("VALARM"))

    assert triggers() == [timedelta(days=-7), timedelta(days=-1)]  # the default 7 and 1 days
    patient.dose_lead_days = [3]
    session.flush()
    assert triggers() == [timedelta(days=-3)]


def test_a_calendar_client_sees_the_next_three_doses_of_the_plan(client, session, settings):
    _clinic, _staff, _patient, user, plan = _world(session, settings, start=date.today())
    calendar = _calendar(client.get(ME_ICS, headers=auth_headers(settings, user)))
    window = (date.today(), date.today() + timedelta(days=400))
    occurrences = recurring_ical_events.of(calendar).between(*window)
    dose_days = sorted(
        event.decoded("DTSTART") for event in occurrences if str(event["UID"]).startswith("dose-")
    )
    planned = sorted(d.due_date for d in plan.doses if window[0] <= d.due_date < window[1])
    assert dose_days[:3] == planned[:3]
    assert len(planned) >= 3


def test_monitoring_tasks_are_all_day_events(client, session, settings):
    _clinic, _staff, _patient, user, plan = _world(session, settings, start=date.today())
    events = _events(_calendar(client.get(ME_ICS, headers=auth_headers(settings, user))))
    for task in plan.monitoring_tasks:
        event = events[f"task-{task.id}@cd20-monitor"]
        assert event.decoded("DTSTART") == task.due_date
        assert event.decoded("DTEND") == task.due_date + timedelta(days=1)
        assert str(event["SUMMARY"]).startswith("Due: ")


def test_the_secret_feed_url_is_shown_once_works_without_login_and_dies_on_revocation(
    client, session, settings
):
    _clinic, staff, patient, user, _plan = _world(session, settings)
    headers = auth_headers(settings, user)
    made = client.post(FEED, headers=headers)
    assert made.status_code == 201, made.get_json()
    url = made.get_json()["url"]
    assert made.get_json()["webcal_url"].startswith("webcal://")
    token = url.rsplit("/", 2)[-2]
    assert len(token) >= 43
    # Only the hash is stored.
    stored = session.scalars(select(CalendarFeed).where(CalendarFeed.patient_id == patient.id))
    (feed,) = stored.all()
    assert feed.token_hash == hashlib.sha256(token.encode()).hexdigest()
    assert token not in feed.token_hash

    by_url = client.get(url)
    by_login = client.get(ME_ICS, headers=headers)
    assert set(_events(_calendar(by_url))) == set(_events(_calendar(by_login)))
    # Pollers: the same document has the same ETag, and If-None-Match gets a 304.
    etag = by_url.headers["ETag"]
    assert etag == by_login.headers["ETag"]
    unchanged = client.get(url, headers={"If-None-Match": etag})
    assert unchanged.status_code == 304
    assert unchanged.get_data() == b""

    # Every fetch is audited: the patient, the feed, never the token.
    events = session.scalars(
        select(AuditEvent).where(AuditEvent.path_template.like("%/feeds/%"))
    ).all()
    assert len(events) == 2
    assert {e.patient_id for e in events} == {patient.id}
    assert {e.details["calendar_feed_id"] for e in events} == {feed.id}
    assert all(token not in str(e.details) + str(e.resource_id) for e in events)

    # A new URL replaces the old one; the patient revokes it; both are 404 after.
    again = client.post(FEED, headers=headers).get_json()["url"]
    assert client.get(url).status_code == 404
    assert client.get(again).status_code == 200
    assert client.delete(FEED, headers=headers).status_code == 204
    gone = client.get(again)
    assert gone.status_code == 404
    assert gone.mimetype == "application/problem+json"
    assert gone.get_json()["code"] == "not_found"

    # Staff of the clinic revoke a patient's feed too.
    third = client.post(FEED, headers=headers).get_json()["url"]
    revoked = client.delete(
        f"/api/v1/patients/{patient.id}/calendar-feed", headers=auth_headers(settings, staff)
    )
    assert revoked.status_code == 204
    assert client.get(third).status_code == 404


def test_a_feed_stops_when_its_owner_is_deactivated(client, session, settings):
    _clinic, _staff, _patient, user, _plan = _world(session, settings)
    url = client.post(FEED, headers=auth_headers(settings, user)).get_json()["url"]
    assert client.get(url).status_code == 200
    user.is_active = False
    session.flush()
    assert client.get(url).status_code == 404


def test_staff_chair_schedule_by_secret_url(client, session, settings):
    clinic, staff, _patient, _user, plan = _world(session, settings)
    appointment = datetime.combine(date.today() + timedelta(days=2), time(9), ZoneInfo(BERLIN))
    book_dose(session, plan.doses[0], appointment)
    made = client.post("/api/v1/staff/calendar-feed", headers=auth_headers(settings, staff))
    assert made.status_code == 201
    url = made.get_json()["url"]
    events = _events(_calendar(client.get(url)))
    event = events[f"chair-dose-{plan.doses[0].id}@cd20-monitor"]
    # By login the chair list names the patient; by a URL a hosted calendar fetches, it does not.
    assert str(event["SUMMARY"]).startswith(f"Patient #{_patient.id}: ")
    assert _patient.family_name not in _calendar(client.get(url)).to_ical().decode()
    by_login = client.get("/api/v1/staff/schedule.ics", headers=auth_headers(settings, staff))
    assert _patient.family_name in _calendar(by_login).to_ical().decode()
    assert client.delete("/api/v1/staff/calendar-feed", headers=auth_headers(settings, staff))
    assert client.get(url).status_code == 404
    assert clinic.id == staff.clinic_id


@pytest.fixture
def limited_app(settings, session):
    app = create_app(settings, rate_limits_enabled=True, calendar_feed_limit="2/hour")
    app.config["TESTING"] = True
    return app


def test_the_secret_url_is_rate_limited_per_feed(limited_app, session, settings):
    _clinic, _staff, _patient, user, _plan = _world(session, settings)
    client = limited_app.test_client()
    headers = auth_headers(settings, user)
    url = client.post(FEED, headers=headers).get_json()["url"]
    assert [client.get(url).status_code for _ in range(2)] == [200, 200]
    limited = client.get(url)
    assert limited.status_code == 429
    assert limited.get_json()["code"] == "rate_limited"
    # Another patient's feed, fetched from the same address, is not affected.
    _c, _s, _p, other, _pl = _world(session, settings)
    other_url = client.post(FEED, headers=auth_headers(settings, other)).get_json()["url"]
    assert client.get(other_url).status_code == 200

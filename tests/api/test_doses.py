"""Doses through the HTTP API: booking, the gate, rescheduling with the minimum interval,
recording a given dose, access and malformed input."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from dateutil.relativedelta import relativedelta
from sqlalchemy import func, select

from service.models import DoseAdministration, PremedicationGiven
from tests.factories import (
    auth_headers,
    clear_checklist,
    make_clinic,
    make_patient,
    make_plan,
    make_user,
)

BERLIN = ZoneInfo("Europe/Berlin")
TODAY = date.today()
# The schedule the rescheduling tests spell out date by date. Moving a planned dose never looks
# at the clock; tests that do (booking, giving a dose) pass a start relative to TODAY.
SCHEDULE_START = date(2027, 1, 4)


def at(day: date, hour: int = 10, minute: int = 0) -> str:
    """An instant on the clinic's (Berlin) wall clock, ISO with offset."""
    return datetime.combine(day, time(hour, minute), BERLIN).isoformat()


def _setup(session, settings, *, role="clinician", **plan_fields):
    clinic = make_clinic(session, time_zone="Europe/Berlin")
    staff = make_user(session, settings, clinic, role)
    patient = make_patient(session, clinic)
    plan = make_plan(session, patient, staff, **{"start_date": SCHEDULE_START, **plan_fields})
    return staff, plan, auth_headers(settings, staff)


def _doses(client, plan_id, headers):
    response = client.get(f"/api/v1/plans/{plan_id}/doses", headers=headers)
    assert response.status_code == 200
    return response.get_json()["items"]


def _patch(client, dose_id, body, headers):
    url = f"/api/v1/doses/{dose_id}"
    etag = client.get(url, headers=headers).headers["ETag"]
    return client.patch(url, json=body, headers={**headers, "If-Match": etag})


def _answer_infection(client, dose_id, headers, day=None):
    """Staff record "no active infection" before the dose (its readiness item)."""
    url = f"/api/v1/doses/{dose_id}/readiness/active_infection"
    item = client.get(url, headers=headers)
    if item.status_code != 200 or item.get_json().get("result") is not None:
        return item
    on = min(day or TODAY, TODAY).isoformat()
    return client.put(
        url,
        json={"result": "negative", "result_date": on},
        headers={**headers, "If-Match": item.headers["ETag"]},
    )


def _complete_course_labs(client, dose_id, headers):
    """Record the immunoglobulin task before a maintenance course as done (in range)."""
    dose = client.get(f"/api/v1/doses/{dose_id}", headers=headers)
    if dose.status_code != 200:
        return
    plan_id = dose.get_json()["plan_id"]
    tasks = client.get(f"/api/v1/plans/{plan_id}/monitoring", headers=headers).get_json()
    for task in tasks["items"]:
        if task["dose_id"] == dose_id and task["status"] in ("due", "overdue"):
            url = f"/api/v1/monitoring/{task['id']}"
            etag = client.get(url, headers=headers).headers["ETag"]
            done = client.patch(url, json={"status": "done"}, headers={**headers, "If-Match": etag})
            assert done.status_code == 200, done.get_json()


def _give(client, dose_id, headers, day, **extra):
    if extra.pop("answer_infection", True):
        _answer_infection(client, dose_id, headers, day)
        _complete_course_labs(client, dose_id, headers)
    body = {
        "administered_at": at(day, 10),
        "amount_mg": extra.pop("amount_mg", 300),
        "premedications": [
            {
                "drug": "methylprednisolone",
                "given_at": at(day, 9, 30),
                "dose_mg": 100,
                "route": "IV",
            },
            {"drug": "diphenhydramine", "given_at": at(day, 9, 15)},
        ],
        **extra,
    }
    return client.post(f"/api/v1/doses/{dose_id}/administration", json=body, headers=headers)


def _administrations(session):
    return session.scalar(select(func.count()).select_from(DoseAdministration))


def test_list_and_read_doses(client, session, settings):
    _, plan, headers = _setup(session, settings)
    page = client.get(f"/api/v1/plans/{plan.id}/doses", headers=headers).get_json()
    assert page["total"] == 4
    assert page["page_size"] == 50
    assert [d["sequence"] for d in page["items"]] == [1, 2, 3, 4]
    assert page["items"][0]["needs_review"] is False
    assert page["items"][0]["administration"] is None
    small = client.get(f"/api/v1/plans/{plan.id}/doses?page=2&page_size=3", headers=headers)
    assert [d["sequence"] for d in small.get_json()["items"]] == [4]
    read = client.get(f"/api/v1/doses/{page['items'][0]['id']}", headers=headers)
    assert read.status_code == 200
    assert read.headers["ETag"]
    assert read.get_json()["rule_key"] == "initial_day1"


def test_booking_is_tentative_and_confirming_needs_the_gate(client, session, settings):
    staff, plan, headers = _setup(session, settings)
    first = _doses(client, plan.id, headers)[0]
    booked = _patch(
        client,
        first["id"],
        {"appointment_at": "2027-01-04T08:30:00+01:00", "location": "Chair 3"},
        headers,
    )
    assert booked.status_code == 200, booked.get_json()
    body = booked.get_json()
    assert (body["status"], body["booking"], body["location"]) == ("booked", "tentative", "Chair 3")
    assert body["appointment_at"] == "2027-01-04T07:30:00.000Z"
    assert (
        booked.headers["ETag"]
        == client.get(f"/api/v1/doses/{first['id']}", headers=headers).headers["ETag"]
    )

    refused = _patch(client, first["id"], {"booking": "confirmed"}, headers)
    assert refused.status_code == 409
    problem = refused.get_json()
    assert problem["code"] == "screening_not_cleared"
    assert {"code": "anti_hbc", "outcome": "pending"} in problem["blocking_items"]
    assert client.get(f"/api/v1/doses/{first['id']}", headers=headers).get_json()["booking"] == (
        "tentative"
    )

    clear_checklist(session, plan, staff)
    confirmed = _patch(client, first["id"], {"booking": "confirmed"}, headers)
    assert confirmed.status_code == 200, confirmed.get_json()
    assert confirmed.get_json()["booking"] == "confirmed"
    unbooked = _patch(client, first["id"], {"appointment_at": None}, headers)
    assert unbooked.get_json()["status"] == "planned"
    assert unbooked.get_json()["booking"] is None


def test_an_appointment_on_another_day_moves_the_due_date_in_clinic_time(client, session, settings):
    _, plan, headers = _setup(session, settings)
    doses = _doses(client, plan.id, headers)
    # 23:30 UTC on the 5th is 01:30 on the 6th in Berlin: the dose moves two days.
    response = _patch(client, doses[2]["id"], {"appointment_at": "2027-07-05T23:30:00Z"}, headers)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["due_date"] == "2027-07-06"
    assert response.get_json()["warnings"][0]["code"] == "dose_moved"
    assert [d["due_date"] for d in _doses(client, plan.id, headers)] == [
        "2027-01-04",
        "2027-01-18",
        "2027-07-06",
        "2028-01-06",
    ]
    clash = _patch(
        client,
        doses[1]["id"],
        {"appointment_at": "2027-01-19T09:00:00+01:00", "due_date": "2027-01-18"},
        headers,
    )
    assert clash.status_code == 422
    assert "appointment_at" in clash.get_json()["errors"]


def test_reschedule_cascades_to_later_doses(client, session, settings):
    _, plan, headers = _setup(session, settings)
    doses = _doses(client, plan.id, headers)
    moved = _patch(client, doses[2]["id"], {"due_date": "2027-07-20"}, headers)
    assert moved.status_code == 200, moved.get_json()
    after = _doses(client, plan.id, headers)
    assert [d["due_date"] for d in after] == [
        "2027-01-04",
        "2027-01-18",
        "2027-07-20",
        "2028-01-20",
    ]
    # The last dose's earliest date now counts from the moved course.
    assert after[3]["earliest_date"] == "2027-12-20"
    assert [d["id"] for d in after] == [d["id"] for d in doses]


def test_reschedule_before_the_earliest_date_is_refused(client, session, settings):
    _, plan, headers = _setup(session, settings)
    doses = _doses(client, plan.id, headers)
    assert doses[2]["earliest_date"] == "2027-06-18"
    refused = _patch(client, doses[2]["id"], {"due_date": "2027-06-01"}, headers)
    assert refused.status_code == 409
    body = refused.get_json()
    assert body["code"] == "minimum_interval"
    assert body["earliest_date"] == "2027-06-18"
    assert _doses(client, plan.id, headers) == doses
    allowed = _patch(client, doses[2]["id"], {"due_date": "2027-06-18"}, headers)
    assert allowed.status_code == 200
    # Within a course only the order counts: Day 15 cannot come before Day 1.
    day15 = _patch(client, doses[1]["id"], {"due_date": "2027-01-04"}, headers)
    assert day15.status_code == 409
    assert day15.get_json()["earliest_date"] == "2027-01-05"


def test_reschedule_without_cascade_keeps_later_doses_and_their_spacing(client, session, settings):
    _, plan, headers = _setup(session, settings)
    doses = _doses(client, plan.id, headers)
    too_late = _patch(client, doses[2]["id"], {"due_date": "2027-09-01", "cascade": False}, headers)
    assert too_late.status_code == 409
    body = too_late.get_json()
    assert body["code"] == "minimum_interval"
    assert body["next_dose"] == {
        "sequence": 4,
        "due_date": "2028-01-04",
        "earliest_date": "2028-02-01",
    }
    ok = _patch(client, doses[2]["id"], {"due_date": "2027-07-10", "cascade": False}, headers)
    assert ok.status_code == 200, ok.get_json()
    after = _doses(client, plan.id, headers)
    assert [d["due_date"] for d in after] == [
        "2027-01-04",
        "2027-01-18",
        "2027-07-10",
        "2028-01-04",
    ]
    assert after[3]["earliest_date"] == "2027-12-10"


def test_a_booked_dose_is_moved_through_its_appointment(client, session, settings):
    _, plan, headers = _setup(session, settings)
    dose = _doses(client, plan.id, headers)[2]
    _patch(client, dose["id"], {"appointment_at": "2027-07-04T09:00:00+02:00"}, headers)
    refused = _patch(client, dose["id"], {"due_date": "2027-07-08"}, headers)
    assert refused.status_code == 422
    assert "due_date" in refused.get_json()["errors"]
    both = _patch(client, dose["id"], {"due_date": "2027-07-08", "appointment_at": None}, headers)
    assert both.status_code == 200
    assert (both.get_json()["status"], both.get_json()["due_date"]) == ("planned", "2027-07-08")


def test_a_later_booking_is_dropped_when_the_cascade_moves_it(client, session, settings):
    _, plan, headers = _setup(session, settings)
    doses = _doses(client, plan.id, headers)
    _patch(client, doses[3]["id"], {"appointment_at": "2028-01-04T09:00:00+01:00"}, headers)
    moved = _patch(client, doses[2]["id"], {"due_date": "2027-07-11"}, headers)
    assert moved.status_code == 200
    assert "booking_dropped" in {w["code"] for w in moved.get_json()["warnings"]}
    last = _doses(client, plan.id, headers)[3]
    assert (last["status"], last["due_date"], last["appointment_at"]) == (
        "planned",
        "2028-01-11",
        None,
    )


def test_administration_needs_the_gate(client, session, settings):
    _, plan, headers = _setup(session, settings, start_date=TODAY - timedelta(days=30))
    first = _doses(client, plan.id, headers)[0]
    refused = _give(client, first["id"], headers, TODAY - timedelta(days=30))
    assert refused.status_code == 409
    body = refused.get_json()
    assert body["code"] == "screening_not_cleared"
    assert {b["code"] for b in body["blocking_items"]} >= {"hbsag", "anti_hbc"}
    assert _administrations(session) == 0
    assert _doses(client, plan.id, headers)[0]["status"] == "planned"


def test_given_doses_activate_the_plan_and_a_late_dose_moves_the_rest(client, session, settings):
    start = TODAY - timedelta(days=30)
    staff, plan, headers = _setup(session, settings, start_date=start, cleared=True)
    doses = _doses(client, plan.id, headers)

    given = _give(client, doses[0]["id"], headers, start, notes="Uneventful")
    assert given.status_code == 201, given.get_json()
    body = given.get_json()
    stored = client.get(f"/api/v1/doses/{doses[0]['id']}", headers=headers).get_json()
    assert {k: v for k, v in body.items() if k not in ("plan_status", "warnings")} == stored
    assert body["status"] == "administered"
    assert body["plan_status"] == "active"
    assert body["warnings"] == []
    administration = body["administration"]
    assert administration["amount_mg"] == 300
    assert administration["recorded_by"] == staff.id
    assert administration["recorded_at"]
    assert administration["reaction"]["grade"] == "none"
    assert [p["drug"] for p in administration["premedications"]] == [
        "diphenhydramine",
        "methylprednisolone",
    ]
    assert administration["premedications"][1]["minutes_before"] == 30

    late = start + timedelta(days=17)  # Day 15 given three days late
    second = _give(client, doses[1]["id"], headers, late)
    assert second.status_code == 201, second.get_json()
    assert second.get_json()["due_date"] == late.isoformat()
    # The label counts the first maintenance dose from infusion 1 (6 months), not from Day 15,
    # and 5 months after the late Day 15 still comes before it: nothing else moves.
    assert second.get_json()["warnings"] == []
    after = _doses(client, plan.id, headers)
    assert [d["due_date"] for d in after[2:]] == [d["due_date"] for d in doses[2:]]

    again = _give(client, doses[0]["id"], headers, start)
    assert again.status_code == 409
    assert again.get_json()["code"] == "invalid_transition"
    edited = _patch(client, doses[0]["id"], {"location": "Chair 9"}, headers)
    assert edited.status_code == 409
    assert edited.get_json()["code"] == "invalid_transition"


def test_a_dose_cannot_be_given_before_its_earliest_date(client, session, settings):
    start = TODAY - timedelta(days=200)
    _, plan, headers = _setup(session, settings, start_date=start, cleared=True)
    doses = _doses(client, plan.id, headers)
    assert _give(client, doses[0]["id"], headers, start).status_code == 201
    assert _give(client, doses[1]["id"], headers, start + timedelta(days=14)).status_code == 201
    earliest = start + timedelta(days=14) + relativedelta(months=5)
    too_soon = _give(client, doses[2]["id"], headers, earliest - timedelta(days=3), amount_mg=600)
    assert too_soon.status_code == 409
    assert too_soon.get_json()["code"] == "minimum_interval"
    assert too_soon.get_json()["earliest_date"] == earliest.isoformat()
    assert _administrations(session) == 2
    ok = _give(client, doses[2]["id"], headers, earliest, amount_mg=600)
    assert ok.status_code == 201, ok.get_json()


def test_earlier_open_doses_must_be_settled_first(client, session, settings):
    start = TODAY - timedelta(days=30)
    _, plan, headers = _setup(session, settings, start_date=start, cleared=True)
    doses = _doses(client, plan.id, headers)
    skipped = _give(client, doses[1]["id"], headers, start + timedelta(days=14))
    assert skipped.status_code == 409
    assert skipped.get_json()["open_doses"] == [1]


def test_a_life_threatening_reaction_puts_the_plan_on_hold(client, session, settings):
    start = TODAY - timedelta(days=30)
    _, plan, headers = _setup(session, settings, start_date=start, cleared=True)
    doses = _doses(client, plan.id, headers)
    reaction = {
        "grade": "life_threatening",
        "onset_at": at(start, 10, 40),
        "action": "stopped",
        "notes": "Anaphylaxis; adrenaline given",
    }
    response = _give(client, doses[0]["id"], headers, start, reaction=reaction)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["plan_status"] == "on_hold"
    assert body["warnings"][0]["code"] == "plan_on_hold"
    assert body["administration"]["reaction"]["grade"] == "life_threatening"
    plan_url = f"/api/v1/plans/{plan.id}"
    plan_body = client.get(plan_url, headers=headers)
    assert plan_body.get_json()["hold_reason"] == "life_threatening_infusion_reaction"

    next_dose = _give(
        client, doses[1]["id"], headers, start + timedelta(days=14), answer_infection=False
    )
    assert next_dose.status_code == 409
    assert next_dose.get_json()["code"] == "plan_on_hold"
    resume = client.patch(
        plan_url,
        json={"status": "active"},
        headers={**headers, "If-Match": plan_body.headers["ETag"]},
    )
    assert resume.status_code == 409
    assert resume.get_json()["allowed"] == ["discontinued"]


def test_miss_and_cancel(client, session, settings):
    start = TODAY - timedelta(days=30)
    _, plan, headers = _setup(session, settings, start_date=start)
    doses = _doses(client, plan.id, headers)
    missed = _patch(client, doses[0]["id"], {"status": "missed"}, headers)
    assert missed.status_code == 200
    assert missed.get_json()["status"] == "missed"
    future = _patch(client, doses[3]["id"], {"status": "missed"}, headers)
    assert future.status_code == 422
    cancelled = _patch(client, doses[3]["id"], {"status": "cancelled"}, headers)
    assert cancelled.get_json()["status"] == "cancelled"
    assert _patch(client, doses[3]["id"], {"status": "missed"}, headers).status_code == 409


def test_patch_dose_needs_the_current_etag(client, session, settings):
    _, plan, headers = _setup(session, settings)
    dose = _doses(client, plan.id, headers)[0]
    url = f"/api/v1/doses/{dose['id']}"
    etag = client.get(url, headers=headers).headers["ETag"]
    assert client.patch(url, json={"location": "A"}, headers=headers).status_code == 428
    assert (
        client.patch(url, json={"location": "A"}, headers={**headers, "If-Match": etag}).status_code
        == 200
    )
    stale = client.patch(url, json={"location": "B"}, headers={**headers, "If-Match": etag})
    assert stale.status_code == 412
    assert client.get(url, headers=headers).get_json()["location"] == "A"


def test_dose_access(client, session, settings):
    start = TODAY - timedelta(days=30)
    _, plan, headers = _setup(session, settings, start_date=start, cleared=True)
    dose = _doses(client, plan.id, headers)[0]
    url = f"/api/v1/doses/{dose['id']}"
    stranger = auth_headers(settings, make_user(session, settings, make_clinic(session)))
    assert client.get(url, headers=stranger).status_code == 404
    assert client.get(f"/api/v1/plans/{plan.id}/doses", headers=stranger).status_code == 404
    assert _give(client, dose["id"], stranger, start).status_code == 404

    clinic = plan.patient.clinic
    own = auth_headers(
        settings, make_user(session, settings, clinic, "patient", patient=plan.patient)
    )
    other_patient = make_patient(session, clinic)
    other = auth_headers(
        settings, make_user(session, settings, clinic, "patient", patient=other_patient)
    )
    read = client.get(url, headers=own)
    assert read.status_code == 200
    assert client.get(url, headers=other).status_code == 404
    patched = client.patch(
        url, json={"location": "Home"}, headers={**own, "If-Match": read.headers["ETag"]}
    )
    assert patched.status_code == 403
    assert _give(client, dose["id"], own, start).status_code == 403
    assert _administrations(session) == 0


def _good_administration(day):
    return {
        "administered_at": at(day, 10),
        "amount_mg": 300,
        "premedications": [
            {"drug": "methylprednisolone", "given_at": at(day, 9, 30)},
            {"drug": "cetirizine", "given_at": at(day, 9, 15)},
        ],
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"administered_at": "2026-01-04T10:00:00"}, "administered_at"),
        ({"administered_at": "yesterday"}, "administered_at"),
        ({"administered_at": None}, "administered_at"),
        ({"amount_mg": -300}, "amount_mg"),
        ({"amount_mg": 0}, "amount_mg"),
        ({"amount_mg": 2001}, "amount_mg"),
        ({"amount_mg": "300"}, "amount_mg"),
        ({"amount_mg": 300.5}, "amount_mg"),
        ({"premedications": "steroid"}, "premedications"),
        (
            {"premedications": [{"drug": "x" * 101, "given_at": "2026-01-01T09:00:00Z"}]},
            "premedications",
        ),
        ({"premedications": [{"drug": "paracetamol"}]}, "premedications"),
        (
            {"premedications": [{"drug": "paracetamol", "given_at": "2026-01-01T09:00"}]},
            "premedications",
        ),
        ({"reaction": {"grade": "mild"}}, "reaction"),
        ({"reaction": {"onset_at": "2026-01-01T10:00:00Z"}}, "reaction"),
        ({"notes": "n" * 2001}, "notes"),
        ({"nurse": "Kim"}, "nurse"),
        ({"status": "administered"}, "status"),
    ],
)
def test_malformed_administration_is_422_and_stores_nothing(
    client, session, settings, change, field
):
    start = TODAY - timedelta(days=30)
    _, plan, headers = _setup(session, settings, start_date=start, cleared=True)
    dose = _doses(client, plan.id, headers)[0]
    body = {**_good_administration(start), **change}
    response = client.post(f"/api/v1/doses/{dose['id']}/administration", json=body, headers=headers)
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    assert field in response.get_json()["errors"]
    assert _administrations(session) == 0
    assert session.scalar(select(func.count()).select_from(PremedicationGiven)) == 0


def test_administration_times_are_checked(client, session, settings):
    start = TODAY - timedelta(days=30)
    _, plan, headers = _setup(session, settings, start_date=start, cleared=True)
    dose = _doses(client, plan.id, headers)[0]
    url = f"/api/v1/doses/{dose['id']}/administration"
    premed_after = {
        **_good_administration(start),
        "premedications": [{"drug": "methylprednisolone", "given_at": at(start, 11)}],
    }
    response = client.post(url, json=premed_after, headers=headers)
    assert response.status_code == 422
    assert response.get_json()["errors"]["premedications"] == {
        "0": {"given_at": ["Must not be after administered_at."]}
    }
    future = {**_good_administration(start), "administered_at": at(TODAY + timedelta(days=2))}
    response = client.post(url, json=future, headers=headers)
    assert response.status_code == 422
    assert "administered_at" in response.get_json()["errors"]
    early_onset = {
        **_good_administration(start),
        "reaction": {"grade": "mild_moderate", "onset_at": at(start, 8)},
    }
    response = client.post(url, json=early_onset, headers=headers)
    assert response.status_code == 422
    assert "reaction" in response.get_json()["errors"]
    assert _administrations(session) == 0


def test_a_different_amount_is_recorded_with_a_warning(client, session, settings):
    start = TODAY - timedelta(days=30)
    _, plan, headers = _setup(session, settings, start_date=start, cleared=True)
    dose = _doses(client, plan.id, headers)[0]
    _answer_infection(client, dose["id"], headers, start)
    body = {**_good_administration(start), "amount_mg": 250}
    response = client.post(f"/api/v1/doses/{dose['id']}/administration", json=body, headers=headers)
    assert response.status_code == 201
    assert response.get_json()["warnings"][0]["code"] == "amount_differs"
    assert response.get_json()["administration"]["amount_mg"] == 250


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"appointment_at": "2027-01-04T09:00:00"}, "appointment_at"),
        ({"appointment_at": 1798963200}, "appointment_at"),
        ({"due_date": "2027-13-01"}, "due_date"),
        ({"booking": "maybe"}, "booking"),
        ({"status": "administered"}, "status"),
        ({"status": "cancelled", "location": "A"}, "status"),
        ({"cascade": False}, "cascade"),
        ({"cascade": "sometimes", "due_date": "2027-01-05"}, "cascade"),
        ({"location": "L" * 201}, "location"),
        ({"amount_mg": 600}, "amount_mg"),
        ({}, "_schema"),
    ],
)
def test_malformed_dose_patch_is_422(client, session, settings, body, field):
    _, plan, headers = _setup(session, settings)
    dose = _doses(client, plan.id, headers)[0]
    response = _patch(client, dose["id"], body, headers)
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    assert field in response.get_json()["errors"]
    assert _doses(client, plan.id, headers)[0] == dose

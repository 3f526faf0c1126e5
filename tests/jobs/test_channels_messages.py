"""What reminders say: inbox wording per kind, sensible with missing or odd payloads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.reminders.messages import GENERIC_TEXT, KINDS, render

PATIENT_KINDS = (
    "dose_upcoming",
    "infection_checkin",
    "morning_of",
    "self_injection_due",
    "dose_missed",
    "labs_due",
    "symptom_checkin",
)
STAFF_KINDS = (
    "checklist_not_cleared",
    "dose_overdue",
    "monitoring_overdue",
    "patient_reported",
    "reminder_dead",
)
FULL = {
    "dose_sequence": 3,
    "amount_mg": 600,
    "drug": "ocrelizumab",
    "due_date": "2027-01-04",
    "appointment_at": "2027-01-04T08:30:00+00:00",
    "location": "Infusion unit 2",
    "lead_days": 1,
    "task_kind": "ig_quant",
}


def test_every_required_kind_has_its_own_wording():
    assert set(PATIENT_KINDS + STAFF_KINDS) <= set(KINDS)


@pytest.mark.parametrize("kind", PATIENT_KINDS + STAFF_KINDS)
@pytest.mark.parametrize(
    "payload",
    [
        FULL,
        {},
        None,
        {
            "dose_sequence": "x",
            "amount_mg": [1],
            "due_date": "soon",
            "appointment_at": 5,
            "lead_days": "two",
            "drug": {"a": 1},
            "task_kind": None,
            "location": "  ",
        },
    ],
)
def test_any_payload_gives_a_sentence(kind, payload):
    audience = "patient" if kind in PATIENT_KINDS else "staff"
    title, body = render(kind, payload, audience=audience, time_zone="Europe/Berlin")
    assert 0 < len(title) <= 200
    assert body.endswith(".")
    assert "None" not in body
    assert "{" not in body


def test_dose_upcoming_in_the_patients_own_time():
    title, body = render("dose_upcoming", FULL, audience="patient", time_zone="Europe/Berlin")
    assert title == "Upcoming appointment"
    assert body == (
        "Your appointment for the next ocrelizumab dose (dose 3, 600 mg) is tomorrow,"
        " Monday 4 January 2027, at 09:30 (Infusion unit 2)."
    )
    _, in_new_york = render("dose_upcoming", FULL, audience="patient", time_zone="America/New_York")
    assert "at 03:30" in in_new_york


def test_unbooked_dose_and_lead_days():
    payload = {"drug": "rituximab", "amount_mg": 500.0, "due_date": "2027-07-05", "lead_days": 7}
    assert render("dose_upcoming", payload, audience="patient") == (
        "Upcoming dose",
        "Your next rituximab dose (500 mg) is due in 7 days, Monday 5 July 2027.",
    )


def test_labs_and_overdue_wording():
    assert render(
        "labs_due", {"task_kind": "hbv_dna", "due_date": "2027-02-01"}, audience="patient"
    )[1].startswith("Your hepatitis B (HBV DNA) test is due on Monday 1 February 2027.")
    title, body = render("dose_overdue", {"due_date": "2027-01-04"}, audience="staff")
    assert (title, body) == (
        "Dose overdue",
        "The dose was due on Monday 4 January 2027 and is not recorded as given.",
    )


def test_unknown_kind_is_generic():
    assert render("brand_new_kind", {"drug": "x"}, audience="patient") == (
        "A message from your clinic",
        f"{GENERIC_TEXT}.",
    )


def test_a_late_reminder_counts_the_days_from_when_it_is_delivered():
    payload = {
        "drug": "ocrelizumab",
        "dose_sequence": 1,
        "amount_mg": 300,
        "appointment_at": "2027-01-04T08:30:00+00:00",
        "lead_days": 7,
    }
    # Booked late: the 7-day reminder is delivered the evening before, Berlin time.
    _, body = render(
        "dose_upcoming",
        payload,
        audience="patient",
        time_zone="Europe/Berlin",
        now=datetime(2027, 1, 3, 19, 0, tzinfo=UTC),
    )
    assert "tomorrow, Monday 4 January 2027, at 09:30" in body
    assert "7 days" not in body
    title, _ = render(
        "morning_of",
        payload,
        audience="patient",
        time_zone="Europe/Berlin",
        now=datetime(2027, 1, 3, 19, 0, tzinfo=UTC),
    )
    assert title == "Your treatment is tomorrow"

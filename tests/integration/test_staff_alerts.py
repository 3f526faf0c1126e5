"""Staff alerts are raised in one place, and refuse free text in their details."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from service.models import StaffAlert
from service.staff.alerts import NotACode, codes_only, raise_alert
from tests.factories import make_clinic, make_patient


def test_codes_numbers_dates_and_nested_codes_pass_unchanged():
    details = {
        "reminder_kind": "infection_checkin",
        "symptoms": ["fever", "cough"],
        "dose_flagged_for_review": 12,
        "about": {"type": "dose", "id": 7},
        "due_date": "2027-01-04",
        "appointment_at": "2027-01-04T08:30:00+00:00",
        "value": 4.2,
        "done": False,
        "missing": None,
    }
    assert codes_only(details) == details


@pytest.mark.parametrize(
    "details",
    [
        {"notes": "patient says she feels feverish"},
        {"symptoms": ["fever", "really bad cough"]},
        {"about": {"note": "Maria Keller"}},
        {"free text key": "x"},
        {"blob": b"bytes"},
        {"long": "x" * 65},
    ],
)
def test_free_text_is_refused(details):
    with pytest.raises(NotACode):
        codes_only(details)


def test_raise_alert_once_keeps_one_alert_per_kind_and_subject(session):
    clinic = make_clinic(session)
    patient = make_patient(session, clinic)
    first = raise_alert(
        session,
        clinic_id=clinic.id,
        patient_id=patient.id,
        kind="dose_overdue",
        subject=("reminder", 41),
        once=True,
    )
    again = raise_alert(
        session,
        clinic_id=clinic.id,
        patient_id=patient.id,
        kind="dose_overdue",
        subject=("reminder", 41),
        once=True,
    )
    session.flush()
    assert first is not None
    assert again is None
    count = session.scalar(
        select(func.count()).select_from(StaffAlert).where(StaffAlert.subject_id == 41)
    )
    assert count == 1


def test_a_refused_detail_adds_nothing(session):
    clinic = make_clinic(session)
    patient = make_patient(session, clinic)
    with pytest.raises(NotACode):
        raise_alert(
            session,
            clinic_id=clinic.id,
            patient_id=patient.id,
            kind="patient_reported",
            subject=("reminder", 99),
            details={"words": "I have a fever since Tuesday"},
        )
    session.flush()
    assert session.scalar(select(func.count()).select_from(StaffAlert)) == 0

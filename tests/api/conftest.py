"""Fixtures most API tests share: a clinic, a clinician of it, and their auth headers."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from tests.factories import auth_headers, make_clinic, make_patient, make_plan, make_user


@pytest.fixture
def clinic(session):
    # Tests that reckon the clinic's local day name this zone (e.g. test_stored_*.py's ZONE).
    return make_clinic(session, time_zone="Europe/Berlin")


@pytest.fixture
def staff(session, settings, clinic):
    return make_user(session, settings, clinic)


@pytest.fixture
def headers(settings, staff):
    return auth_headers(settings, staff)


@pytest.fixture
def app_user(session, settings):
    """A patient with the app and a plan starting in 30 days, their clinician: both headers."""
    clinic = make_clinic(session)
    staff = make_user(session, settings, clinic, "clinician")
    patient = make_patient(session, clinic)
    user = make_user(session, settings, clinic, "patient", patient=patient)
    plan = make_plan(session, patient, staff, start_date=date.today() + timedelta(days=30))
    return {
        "patient": patient,
        "plan": plan,
        "me": auth_headers(settings, user),
        "staff": auth_headers(settings, staff),
    }

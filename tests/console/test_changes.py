"""The console's changes: each commits with its audit event; the plan's and doses' status
changes, demographics, staff accounts, ended sessions and the hepatitis B forms."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from service.models import AuditEvent, Patient
from service.trust import audit
from tests.console.helpers import post, sign_in
from tests.factories import make_clinic, make_patient, make_user, start_plan


@pytest.fixture
def clinic(session):
    return make_clinic(session)


@pytest.fixture
def clinician(session, settings, clinic):
    return make_user(session, settings, clinic, "clinician")


@pytest.fixture
def plan(session, clinic, clinician):
    patient = make_patient(session, clinic)
    return start_plan(session, clinician, patient, start_date=date.today() + timedelta(days=10))


def _enrol(client, mrn: str):
    return post(
        client,
        "/console/patients",
        {
            "mrn": mrn,
            "given_name": "Robin",
            "family_name": "Audit",
            "birth_date": "1980-05-01",
            "time_zone": "Europe/Paris",
        },
        token_from="/console/patients",
    )


def test_a_change_is_stored_with_its_audit_event(client, session, clinician):
    sign_in(client, clinician.email)
    response = _enrol(client, "MRN-AUDITED")
    assert response.status_code == 302
    patient = session.scalars(select(Patient).where(Patient.mrn == "MRN-AUDITED")).one()
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.method == "POST", AuditEvent.patient_id == patient.id)
    ).one()
    assert event.outcome == "success"
    assert event.details["via"] == "console"
    assert event.actor_id == clinician.id


def test_a_change_whose_audit_event_cannot_be_written_is_not_stored(
    client, session, clinician, monkeypatch
):
    sign_in(client, clinician.email)
    before = session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))

    def refuse(*args, **kwargs):
        raise RuntimeError("audit trail unavailable")

    monkeypatch.setattr(audit, "record_event", refuse)
    response = _enrol(client, "MRN-UNAUDITED")
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Nothing was saved" in page
    session.expire_all()
    assert session.scalars(select(Patient).where(Patient.mrn == "MRN-UNAUDITED")).first() is None
    after = session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
    assert after == before

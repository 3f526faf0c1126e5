"""The demo clinic shows the states a clinic meets: per-dose readiness and the hepatitis B
pathway (what `cd20 demo` seeds)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import select

from service.clinics.demo import CLINIC_ZONE, seed_demo
from service.models import Patient, TreatmentPlan


def _plan(session, mrn):
    patient = session.scalar(select(Patient).where(Patient.mrn == mrn))
    return session.scalar(select(TreatmentPlan).where(TreatmentPlan.patient_id == patient.id))


def test_the_demo_shows_readiness_and_the_hepatitis_b_pathway(session, settings):
    today = datetime.now(ZoneInfo(CLINIC_ZONE)).date()
    result = seed_demo(session, settings, password="cd20-demo-password", today=today)
    assert result.created

    # Anna: booked tomorrow, blocked by the open infection check.
    anna = _plan(session, "DEMO-001").doses[0].readiness
    assert not anna.ready
    assert {"code": "active_infection", "outcome": "pending"} in anna.blocking_items

    # Clara: anti-HBc positive, HBV DNA recorded, the consult pending: not overridable.
    clara = _plan(session, "DEMO-003").checklist
    assert clara.hbv_pathway.path == "anti_hbc_positive"
    assert {item["code"] for item in clara.not_overridable} == {"anti_hbc", "hepatology_consult"}

    # David: the next self-injection cleared by his own check-in.
    david = _plan(session, "DEMO-004")
    assert [d.status for d in david.doses[:2]] == ["administered", "administered"]
    check = david.doses[2].readiness.item("active_infection")
    assert (check.answered_by, check.outcome) == ("patient", "cleared")

    # Eva: the second infusion missed (still owed), with a clinician's override.
    eva = _plan(session, "DEMO-005")
    missed = eva.doses[1]
    assert missed.status == "missed"
    assert missed.readiness.override_in_effect
    assert missed.readiness.ready
    assert eva.doses[0].status == "administered"

    again = seed_demo(session, settings, password="cd20-demo-password", today=today)
    assert not again.created

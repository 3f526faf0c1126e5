"""The stamps behind polled reads move with every kind of row a plan's or patient's answer
shows, and stay put when nothing changed."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from psycopg import _queries as psycopg_queries
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.orm import object_session

from service.models import DoseCheck, LabResult, ScreeningOverride
from service.patients import freshness
from tests.factories import make_clinic, make_patient, make_plan, make_user


@pytest.fixture
def plan(session, settings):
    clinic = make_clinic(session)
    staff = make_user(session, settings, clinic, "clinician")
    patient = make_patient(session, clinic)
    made = make_plan(session, patient, staff, start_date=date.today() + timedelta(days=30))
    made.prescriber_id = staff.id
    session.flush()
    return made


def _lab(plan):
    return LabResult(
        clinic_id=plan.clinic_id,
        patient_id=plan.patient_id,
        code="igg",
        value=8.1,
        unit="g/L",
        flag="normal",
        taken_at=datetime.now(UTC),
        recorded_by_id=plan.prescriber_id,
    )


def _check(plan):
    return DoseCheck(
        dose_id=plan.doses[0].id,
        code="active_infection",
        result="negative",
        result_date=date.today(),
        answered_by="staff",
    )


def _override(plan):
    return ScreeningOverride(
        plan_id=plan.id,
        reason="clinical judgement",
        outcome_overridden="pending",
        clinician_id=plan.prescriber_id,
    )


CHANGES = {
    "plan": lambda plan: setattr(plan, "notes", "changed"),
    "dose": lambda plan: setattr(plan.doses[0], "location", "Chair 9"),
    "screening item": lambda plan: setattr(plan.screening_items[0], "notes", "seen"),
    "monitoring task": lambda plan: setattr(plan.monitoring_tasks[0], "notes", "called"),
    "patient": lambda plan: setattr(plan.patient, "phone", "+47 555 0199"),
    "lab result": lambda plan: _add(plan, _lab(plan)),
    "dose check": lambda plan: _add(plan, _check(plan)),
    "checklist override": lambda plan: _add(plan, _override(plan)),
}


def _add(plan, row):
    object_session(plan).add(row)
    return row


@pytest.mark.parametrize("change", CHANGES)
def test_a_change_moves_the_stamps(session, plan, change):
    before = (
        freshness.plan_stamp(session, plan),
        freshness.patient_plans_stamp(session, plan.patient_id),
    )
    assert before == (
        freshness.plan_stamp(session, plan),
        freshness.patient_plans_stamp(session, plan.patient_id),
    )

    CHANGES[change](plan)
    session.flush()

    after = (
        freshness.plan_stamp(session, plan),
        freshness.patient_plans_stamp(session, plan.patient_id),
    )
    assert after[0] != before[0]
    assert after[1] != before[1]


def test_the_day_is_part_of_the_stamp(session, plan):
    today = datetime.now(UTC)
    assert freshness.plan_stamp(session, plan, now=today) != freshness.plan_stamp(
        session, plan, now=today + timedelta(days=1)
    )


@pytest.mark.parametrize(
    "statement",
    [
        freshness._INBOX_SEQ,
        freshness._UPCOMING,
        freshness._my_plans(),
        freshness._plan_by_id(),
        freshness._patient_by_id(),
    ],
    ids=["inbox", "upcoming", "my_plans", "plan", "patient"],
)
def test_a_polled_stamp_is_short_enough_for_the_driver_to_keep_it_parsed(statement):
    # psycopg parses a statement longer than this again on every execution: for a plan's stamp
    # that was about 0.2 ms of CPU on each poll. Its constants are written into the SQL.
    compiled = statement.compile(dialect=psycopg_dialect())
    assert len(str(compiled)) <= psycopg_queries.MAX_CACHED_STATEMENT_LENGTH
    assert len(compiled.params) <= 4

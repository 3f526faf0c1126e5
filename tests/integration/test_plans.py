"""Plan, screening and dose use cases on the real database: rolling horizon, preview, gate."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from service.errors import ScreeningNotCleared
from service.models import Dose, TreatmentPlan
from service.treatment.doses import extend_rolling_schedules, update_dose
from service.treatment.plans import PlanRequest, preview_plan, update_plan
from service.treatment.screening import (
    blocking_items_of,
    override_screening,
    record_screening_result,
)
from tests.factories import (
    actor_of,
    clear_checklist,
    make_clinic,
    make_patient,
    make_plan,
    make_user,
)

YESTERDAY = date.today() - timedelta(days=1)
# Rolling-horizon arithmetic takes its own `today`, never the clock's: a fixed start is fine.
ROLLING_START = date(2027, 1, 4)


@pytest.fixture
def staff(session, settings):
    return make_user(session, settings, make_clinic(session), "clinician")


def _patient(session, staff):
    return make_patient(session, staff.clinic)


def _dates(plan):
    return [d.due_date for d in sorted(plan.doses, key=lambda d: d.sequence)]


def test_rolling_schedule_keeps_monthly_injections_a_horizon_ahead(session, staff):
    plan = make_plan(
        session, _patient(session, staff), staff, regimen="ofatumumab-sc", start_date=ROLLING_START
    )
    assert len(plan.doses) == 15
    assert _dates(plan)[-1] == date(2028, 1, 1)

    added = extend_rolling_schedules(session, today=date(2027, 6, 15))
    assert added == 5
    session.refresh(plan)
    assert _dates(plan)[-5:] == [date(2028, m, 1) for m in range(2, 7)]
    assert [d.sequence for d in plan.doses] == list(range(1, 21))
    assert all(d.status == "planned" and d.amount_mg == 20 for d in plan.doses[-5:])
    # Run again the same day: nothing more to add.
    assert extend_rolling_schedules(session, today=date(2027, 6, 15)) == 0


def test_rolling_schedule_continues_a_shifted_plan(session, staff):
    plan = make_plan(
        session, _patient(session, staff), staff, regimen="ocrelizumab-iv", start_date=ROLLING_START
    )
    last = max(plan.doses, key=lambda d: d.sequence)
    update_dose(session, actor_of(staff), last, {"due_date": date(2028, 1, 14)})
    assert extend_rolling_schedules(session, today=date(2027, 6, 1)) == 0
    assert extend_rolling_schedules(session, today=date(2027, 8, 1)) == 1
    session.refresh(plan)
    new = max(plan.doses, key=lambda d: d.sequence)
    # Six months after the moved dose, and at least five months after it.
    assert (new.sequence, new.due_date, new.kind, new.amount_mg) == (
        5,
        date(2028, 7, 14),
        "maintenance",
        600,
    )
    assert new.earliest_date == date(2028, 6, 14)
    monitoring_doses = {t.dose_id for t in plan.monitoring_tasks if t.kind == "ig_quant"}
    assert new.id in monitoring_doses


def test_rolling_schedule_skips_closed_and_held_plans(session, staff):
    held = make_plan(
        session,
        _patient(session, staff),
        staff,
        regimen="ofatumumab-sc",
        start_date=ROLLING_START,
        cleared=True,
    )
    update_plan(session, actor_of(staff), held, {"status": "on_hold", "hold_reason": "Pregnancy"})
    ended = make_plan(
        session, _patient(session, staff), staff, regimen="ofatumumab-sc", start_date=ROLLING_START
    )
    update_plan(session, actor_of(staff), ended, {"status": "discontinued"})
    assert extend_rolling_schedules(session, today=date(2027, 6, 15)) == 0


def test_fixed_course_variants_are_not_extended(session, staff):
    make_plan(
        session,
        _patient(session, staff),
        staff,
        regimen="rituximab-iv",
        variant="hermes",
        start_date=ROLLING_START,
    )
    assert extend_rolling_schedules(session, today=date(2028, 6, 1)) == 0


def test_preview_adds_nothing_to_the_session(session, staff):
    patient = _patient(session, staff)
    before = session.scalar(select(func.count()).select_from(Dose))
    plan = preview_plan(
        session,
        actor_of(staff),
        patient.id,
        PlanRequest(regimen="ocrelizumab-iv", start_date=date(2027, 1, 4)),
    )
    assert plan not in session
    assert not session.new
    session.flush()
    assert session.scalar(select(func.count()).select_from(Dose)) == before
    assert session.scalar(select(func.count()).select_from(TreatmentPlan)) == 0
    assert [m.kind for m in plan.monitoring_tasks]


def test_override_covers_only_what_it_listed(session, staff):
    plan = make_plan(session, _patient(session, staff), staff)
    clear_checklist(session, plan, staff)
    items = {i.code: i for i in plan.screening_items}
    record_screening_result(
        session, actor_of(staff), items["ig_quant"], result="low", result_date=YESTERDAY
    )
    assert blocking_items_of(plan) == ["ig_quant"]
    checklist = override_screening(
        session, actor_of(staff), plan.id, reason="Immunology consulted; IgG 5.9 g/L acceptable"
    )
    assert checklist.passes_gate
    assert blocking_items_of(plan) == []
    assert checklist.override.blocking_items == [{"code": "ig_quant", "outcome": "needs_review"}]

    # Correcting to normal keeps the gate open; a new finding closes it.
    record_screening_result(
        session, actor_of(staff), items["anti_hbc"], result="positive", result_date=YESTERDAY
    )
    # anti-HBc positive brings the hepatitis B pathway's items (issue 8).
    assert sorted(blocking_items_of(plan)) == [
        "anti_hbc",
        "hbv_dna",
        "hepatology_consult",
        "ig_quant",
    ]
    with pytest.raises(ScreeningNotCleared) as refused:
        plan.checklist.ensure_passes("make the plan ready")
    assert {"code": "anti_hbc", "outcome": "needs_review"} in refused.value.extra["blocking_items"]


def test_a_worse_result_on_an_overridden_item_is_not_covered(session, staff):
    plan = make_plan(session, _patient(session, staff), staff)
    clear_checklist(session, plan, staff)
    items = {i.code: i for i in plan.screening_items}
    items["ig_quant"].result = None  # results still to come
    session.flush()
    override_screening(session, actor_of(staff), plan.id, reason="Ig results by fax tomorrow")
    assert plan.checklist.passes_gate
    record_screening_result(
        session, actor_of(staff), items["ig_quant"], result="low", result_date=YESTERDAY
    )
    assert not plan.checklist.passes_gate


def test_start_date_change_keeps_dose_rows(session, staff):
    plan = make_plan(session, _patient(session, staff), staff, regimen="ofatumumab-sc")
    ids = [d.id for d in plan.doses]
    update_plan(session, actor_of(staff), plan, {"start_date": date(2027, 1, 31)})
    assert [d.id for d in plan.doses][: len(ids)] == ids
    # Month ends clip: monthly from week 4 (2027-02-28), then the 28th onwards.
    assert _dates(plan)[:5] == [
        date(2027, 1, 31),
        date(2027, 2, 7),
        date(2027, 2, 14),
        date(2027, 2, 28),
        date(2027, 3, 28),
    ]
    assert len({d.sequence for d in plan.doses}) == len(plan.doses)


def test_invalid_clinic_settings_fall_back_to_the_catalog(session, staff):
    staff.clinic.settings = {"ocrelizumab-iv": {"min_interval": "retired_option", "x": "y"}}
    session.flush()
    plan = make_plan(session, _patient(session, staff), staff)
    assert plan.settings["min_interval"] == "five_months"
    assert "x" not in plan.settings

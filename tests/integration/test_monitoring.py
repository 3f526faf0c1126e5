"""Monitoring use cases on the real database: derivation from the catalog, re-derivation after
screening and dose changes, and the nightly overdue run across clinic time zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import select

from service.errors import InvalidTransition, ValidationFailed
from service.models import MonitoringTask, StaffAlert
from service.treatment.labs import record_lab
from service.treatment.monitoring import derive_monitoring_tasks, mark_overdue, update_task
from tests.factories import actor_of, make_clinic, make_patient, make_user, start_plan

START = date(2027, 1, 4)


def _tasks(session, plan):
    session.expire(plan, ["monitoring_tasks"])
    return sorted(plan.monitoring_tasks, key=lambda t: (t.kind, t.due_date))


def _summary(session, plan):
    return [(t.kind, t.due_date, t.status) for t in _tasks(session, plan)]


@pytest.fixture
def staff(session, settings):
    return make_user(session, settings, make_clinic(session))


def _new_plan(session, staff, regimen="ocrelizumab-iv", start_date=START, **patient_fields):
    patient = make_patient(session, staff.clinic, **patient_fields)
    return start_plan(session, staff, patient, regimen, start_date)


def test_new_ocrelizumab_plan_has_ig_before_each_course_and_mri(session, staff):
    plan = _new_plan(session, staff)
    maintenance = [d for d in plan.doses if d.kind == "maintenance"]
    assert [d.due_date for d in maintenance] == [date(2027, 7, 4), date(2028, 1, 4)]

    tasks = _tasks(session, plan)
    ig = [t for t in tasks if t.kind == "ig_quant"]
    # 14 days (the catalog's default lead) before each maintenance course, tied to its dose.
    assert [(t.due_date, t.dose_id) for t in ig] == [
        (date(2027, 6, 20), maintenance[0].id),
        (date(2027, 12, 21), maintenance[1].id),
    ]
    assert [(t.kind, t.due_date) for t in tasks if t.kind == "mri"] == [("mri", date(2027, 7, 4))]
    assert not [t for t in tasks if t.kind == "hbv_dna"]
    assert {t.status for t in tasks} == {"due"}


def test_rederiving_is_idempotent(session, staff):
    plan = _new_plan(session, staff)
    before = [(t.id, t.kind, t.due_date, t.version) for t in _tasks(session, plan)]
    derive_monitoring_tasks(session, plan)
    derive_monitoring_tasks(session, plan)
    assert [(t.id, t.kind, t.due_date, t.version) for t in _tasks(session, plan)] == before


def test_hbv_dna_tasks_follow_the_anti_hbc_result(session, staff):
    plan = _new_plan(session, staff)
    anti_hbc = next(i for i in plan.screening_items if i.code == "anti_hbc")

    anti_hbc.result = "positive"
    derive_monitoring_tasks(session, plan)
    hbv = [t for t in _tasks(session, plan) if t.kind == "hbv_dna"]
    # Issue 8: every 3 months (guidelines: 1-3) from the start while no baseline HBV DNA is
    # recorded, until the planned stop: the last planned dose (2028-01-04) plus 12 months.
    assert [t.due_date for t in hbv][:3] == [date(2027, 4, 4), date(2027, 7, 4), date(2027, 10, 4)]
    assert hbv[-1].due_date == date(2029, 1, 4)
    alt = [t.due_date for t in _tasks(session, plan) if t.kind == "alt"]
    assert alt == [t.due_date for t in hbv]

    # The first one is done; then the result is corrected to negative.
    actor = actor_of(staff)
    update_task(session, actor, hbv[0], {"status": "done"})
    anti_hbc.result = "negative"
    derive_monitoring_tasks(session, plan)
    left = [(t.due_date, t.status) for t in _tasks(session, plan) if t.kind == "hbv_dna"]
    assert left == [(date(2027, 4, 4), "done")]


def test_tasks_move_with_their_dose_and_history_stays(session, staff):
    plan = _new_plan(session, staff)
    first, second = (d for d in plan.doses if d.kind == "maintenance")
    ig_first = next(t for t in _tasks(session, plan) if t.dose_id == first.id)
    ig_second = next(t for t in _tasks(session, plan) if t.dose_id == second.id)
    update_task(session, actor_of(staff), ig_first, {"status": "done"})

    # The dose is moved a month later (as the doses use case does: this and every later dose).
    first.due_date += timedelta(days=31)
    second.due_date += timedelta(days=31)
    derive_monitoring_tasks(session, plan)

    session.refresh(ig_first)
    session.refresh(ig_second)
    assert (ig_first.status, ig_first.due_date) == ("done", date(2027, 6, 20))
    assert ig_second.due_date == second.due_date - timedelta(days=14)
    assert ig_second.dose_id == second.id
    assert len([t for t in _tasks(session, plan) if t.kind == "ig_quant"]) == 2


def test_a_date_staff_moved_survives_rederivation_until_the_dose_moves(session, staff):
    plan = _new_plan(session, staff)
    dose = next(d for d in plan.doses if d.kind == "maintenance")
    task = next(t for t in _tasks(session, plan) if t.dose_id == dose.id)
    update_task(session, actor_of(staff), task, {"due_date": date(2027, 6, 1)})

    derive_monitoring_tasks(session, plan)
    session.refresh(task)
    assert (task.due_date, task.rule_date) == (date(2027, 6, 1), date(2027, 6, 20))

    dose.due_date = date(2027, 8, 1)
    derive_monitoring_tasks(session, plan)
    session.refresh(task)
    assert task.due_date == date(2027, 7, 18)


def test_cancelled_dose_takes_its_open_task_away(session, staff):
    plan = _new_plan(session, staff)
    last = max((d for d in plan.doses if d.kind == "maintenance"), key=lambda d: d.sequence)
    last.status = "cancelled"
    derive_monitoring_tasks(session, plan)
    assert last.id not in {t.dose_id for t in _tasks(session, plan)}


def test_administered_dose_counts_at_its_actual_day(session, staff):
    from service.models import DoseAdministration

    plan = _new_plan(session, staff)
    dose = next(d for d in plan.doses if d.kind == "maintenance")
    # Given 22:30 UTC on 9 July = 00:30 on 10 July in Berlin (the clinic's zone).
    given = datetime(2027, 7, 9, 22, 30, tzinfo=UTC)
    dose.status = "administered"
    dose.administration = DoseAdministration(
        administered_at=given, amount_mg=600, recorded_by_id=staff.id
    )
    derive_monitoring_tasks(session, plan)
    task = next(t for t in _tasks(session, plan) if t.dose_id == dose.id)
    assert task.due_date == date(2027, 6, 26)


def test_mark_overdue_uses_each_clinics_own_today(session, settings):
    auckland = make_user(session, settings, make_clinic(session, time_zone="Pacific/Auckland"))
    los_angeles = make_user(
        session, settings, make_clinic(session, time_zone="America/Los_Angeles")
    )
    nz_plan = _new_plan(session, auckland)
    la_plan = _new_plan(session, los_angeles)
    # 12:30 UTC on 20 June: already 21 June in Auckland, still 20 June in Los Angeles.
    counts = mark_overdue(session, now=datetime(2027, 6, 20, 12, 30, tzinfo=UTC))
    assert counts["overdue"] >= 1
    nz = {t.kind: t.status for t in _tasks(session, nz_plan) if t.due_date == date(2027, 6, 20)}
    la = {t.kind: t.status for t in _tasks(session, la_plan) if t.due_date == date(2027, 6, 20)}
    assert nz == {"ig_quant": "overdue"}
    assert la == {"ig_quant": "due"}

    # Later that day (UTC) it is 21 June in Los Angeles too.
    mark_overdue(session, now=datetime(2027, 6, 21, 8, 0, tzinfo=UTC))
    la = {t.kind: t.status for t in _tasks(session, la_plan) if t.due_date == date(2027, 6, 20)}
    assert la == {"ig_quant": "overdue"}


def test_mark_overdue_with_a_fixed_date_leaves_done_and_closed_plans(session, staff):
    open_plan = _new_plan(session, staff)
    closed_plan = _new_plan(session, staff)
    closed_plan.status = "discontinued"
    done = next(t for t in _tasks(session, open_plan) if t.kind == "mri")
    update_task(session, actor_of(staff), done, {"status": "done"})

    counts = mark_overdue(session, today=date(2027, 7, 5))
    statuses = _summary(session, open_plan)
    assert ("ig_quant", date(2027, 6, 20), "overdue") in statuses
    assert ("mri", date(2027, 7, 4), "done") in statuses
    assert ("ig_quant", date(2027, 12, 21), "due") in statuses
    assert {s for _, _, s in _summary(session, closed_plan)} == {"due"}
    # Issue 8 added the blood count at baseline (4 Jan) and 6 months (4 Jul): overdue as well.
    assert ("cbc", date(2027, 1, 4), "overdue") in statuses
    assert counts["overdue"] == 3
    # Running it again finds nothing new.
    assert mark_overdue(session, today=date(2027, 7, 5))["overdue"] == 0


def test_lab_with_task_completes_it_and_low_result_alerts(session, staff):
    plan = _new_plan(session, staff)
    task = next(t for t in _tasks(session, plan) if t.kind == "ig_quant")
    result = record_lab(
        session,
        actor_of(staff),
        plan.patient_id,
        code="igg",
        value=5.9,
        unit="g/L",
        taken_at=datetime(2026, 6, 18, 8, 0, tzinfo=UTC),
        task_id=task.id,
    )
    session.refresh(task)
    assert (task.status, task.lab_result_id) == ("done", result.id)
    assert (result.flag, result.range_source, result.ref_low) == ("low", "default", 6.7)
    alert = session.scalar(select(StaffAlert).where(StaffAlert.subject_id == result.id))
    assert alert is not None
    assert (alert.kind, alert.details) == ("lab_low", {"code": "igg", "flag": "low"})

    # A done task cannot be completed a second time.
    with pytest.raises(InvalidTransition):
        record_lab(
            session,
            actor_of(staff),
            plan.patient_id,
            code="igg",
            value=7.0,
            unit="g/L",
            taken_at=datetime(2026, 6, 19, 8, 0, tzinfo=UTC),
            task_id=task.id,
        )


def test_an_mri_task_is_not_completed_by_a_lab(session, staff):
    plan = _new_plan(session, staff)
    mri = next(t for t in _tasks(session, plan) if t.kind == "mri")
    with pytest.raises(ValidationFailed) as refused:
        record_lab(
            session,
            actor_of(staff),
            plan.patient_id,
            code="igg",
            value=8.0,
            unit="g/L",
            taken_at=datetime(2026, 6, 18, 8, 0, tzinfo=UTC),
            task_id=mri.id,
        )
    assert "task_id" in refused.value.errors
    assert session.get(MonitoringTask, mri.id).status == "due"

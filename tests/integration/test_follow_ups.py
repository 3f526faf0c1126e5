"""The after-stop mechanism other use cases hook into: a follow-up given an end date (as a
hepatology consult's planned stop will be) asks for no task after it."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from dateutil.relativedelta import relativedelta

from service.reminders.derive import sync_plan_reminders
from service.treatment.doses import record_administration
from service.treatment.monitoring import set_follow_up_until, update_task
from service.treatment.plans import update_plan
from service.treatment.readiness import record_readiness_answer
from tests.factories import actor_of, make_clinic, make_patient, make_plan, make_user

BERLIN = ZoneInfo("Europe/Berlin")


def _stopped(session, settings):
    clinic = make_clinic(session, time_zone="Europe/Berlin")
    staff = make_user(session, settings, clinic, "clinician")
    actor = actor_of(staff)
    start = date.today() - timedelta(days=400)
    plan = make_plan(session, make_patient(session, clinic), staff, start_date=start, cleared=True)
    first = plan.doses[0]
    given_at = datetime.combine(start, time(10), BERLIN)
    record_readiness_answer(
        session, actor, first.id, "active_infection", result="negative", result_date=start
    )
    record_administration(
        session,
        actor,
        first.id,
        administered_at=given_at,
        amount_mg=first.amount_mg,
        premedications=[
            {"drug": "methylprednisolone", "given_at": given_at - timedelta(minutes=30)},
            {"drug": "diphenhydramine", "given_at": given_at - timedelta(minutes=45)},
        ],
    )
    update_plan(session, actor, plan, {"status": "discontinued"})
    return plan, actor, start


def _open(plan):
    return [t for t in plan.monitoring_tasks if t.follow_up_id is not None and t.is_open]


def test_a_follow_up_stops_asking_after_its_end_date(session, settings):
    plan, actor, start = _stopped(session, settings)
    (follow_up,) = plan.follow_ups
    # Stopped 400 days after the only dose: the first task is due the day the plan ended.
    assert [t.due_date for t in _open(plan)] == [date.today()]

    until = date.today() + relativedelta(months=7)
    assert set_follow_up_until(session, plan, "ig_quant", until) is follow_up
    sync_plan_reminders(session, plan)
    update_task(session, actor, _open(plan)[0], {"status": "done"})
    (second,) = _open(plan)
    assert second.due_date == start + relativedelta(months=18)
    assert second.due_date <= until
    update_task(session, actor, second, {"status": "done"})
    assert _open(plan) == []  # the next one would fall after the end date
    assert follow_up.is_active  # ended by its date, not by a clinician
    assert set_follow_up_until(session, plan, "hbv_dna", until) is None

"""Reminders derived from the schedule: kinds, local fire times across DST, re-derivation."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from service.models import Reminder
from service.patients.records import update_patient
from service.treatment.doses import record_administration, update_dose
from service.treatment.plans import update_plan
from tests.factories import (
    actor_of,
    answer_infection_check,
    clear_checklist,
    make_clinic,
    make_patient,
    make_plan,
    make_user,
    next_clock_change,
)

NEW_YORK = "America/New_York"
# The Monday after New York next springs forward, late enough for the checklist reminders two
# weeks ahead. Europe changes two weeks after New York at the earliest, so Berlin is still on CET.
SPRING_FORWARD = next_clock_change(NEW_YORK, after=date.today() + timedelta(days=15))
DST_MONDAY = SPRING_FORWARD + timedelta(days=1)
# A first dose close enough that a screening result recorded today is still current on its day.
SOON = date.today() + timedelta(days=28 - date.today().weekday())


def reminders(session, plan, *, status="pending") -> dict[tuple[str, str], Reminder]:
    session.expire_all()
    rows = session.scalars(
        select(Reminder).where(Reminder.plan_id == plan.id, Reminder.status == status)
    )
    return {(r.kind, r.idempotency_key): r for r in rows}


def kinds_for(session, plan, dose_id, *, status="pending") -> list[str]:
    return sorted(
        r.kind
        for r in reminders(session, plan, status=status).values()
        if (r.subject_type, r.subject_id) == ("dose", dose_id)
    )


def setup(session, settings, *, zone=NEW_YORK, clinic_zone=NEW_YORK, start=DST_MONDAY):
    clinic = make_clinic(session, time_zone=clinic_zone)
    staff = make_user(session, settings, clinic, "clinician")
    patient = make_patient(session, clinic, time_zone=zone)
    # The first dose may be months ahead (a DST weekend): results recorded today stay current.
    plan = make_plan(
        session,
        patient,
        staff,
        start_date=start,
        settings={"screening_validity_days": "one_hundred_eighty_days"},
    )
    return clinic, staff, patient, plan


def test_a_new_plan_gets_its_patient_and_staff_reminders(session, settings):
    _, _, _, plan = setup(session, settings)
    first = plan.doses[0]
    assert kinds_for(session, plan, first.id) == [
        "dose_overdue",
        "dose_upcoming",
        "dose_upcoming",
        "infection_checkin",
    ]
    # The checklist is still pending: staff hear of it 14 and 7 days before the first dose.
    checklist = [k for (kind, k) in reminders(session, plan) if kind == "checklist_not_cleared"]
    assert len(checklist) == 2
    labs = [r for (kind, _), r in reminders(session, plan).items() if kind == "labs_due"]
    assert labs, "immunoglobulins before the maintenance course are reminded"


def test_fire_times_are_nine_in_the_patients_zone_across_the_dst_change(session, settings):
    # New York springs forward the day before the first dose.
    _, _, _, plan = setup(session, settings)
    week_before, day_before = DST_MONDAY - timedelta(days=7), DST_MONDAY - timedelta(days=1)
    first = plan.doses[0]
    upcoming = sorted(
        (
            r
            for (kind, _), r in reminders(session, plan).items()
            if kind == "dose_upcoming" and (r.subject_type, r.subject_id) == ("dose", first.id)
        ),
        key=lambda r: r.fire_at,
    )
    assert [(r.local_date, r.local_time) for r in upcoming] == [
        (week_before, time(9, 0)),
        (day_before, time(9, 0)),
    ]
    assert [r.fire_at for r in upcoming] == [
        datetime.combine(week_before, time(14, 0), UTC),  # 09:00 EST
        datetime.combine(day_before, time(13, 0), UTC),  # 09:00 EDT, the morning after the change
    ]
    assert all(r.time_zone == NEW_YORK for r in upcoming)


def test_staff_reminders_are_anchored_in_the_clinics_zone(session, settings):
    _, _, _, plan = setup(session, settings, zone="Asia/Kolkata", clinic_zone="Europe/Berlin")
    overdue = next(
        r
        for (kind, _), r in reminders(session, plan).items()
        if kind == "dose_overdue" and (r.subject_type, r.subject_id) == ("dose", plan.doses[0].id)
    )
    # The morning after the due day, 08:00 in Berlin (still CET in March then).
    assert overdue.fire_at == datetime.combine(DST_MONDAY + timedelta(days=1), time(7, 0), UTC)
    assert overdue.audience == "staff"


def test_rescheduling_cancels_the_old_reminders_and_adds_new_ones(session, settings):
    _, staff, _, plan = setup(session, settings)
    first = plan.doses[0]
    before = {
        r.idempotency_key
        for r in reminders(session, plan).values()
        if (r.subject_type, r.subject_id) == ("dose", first.id)
    }
    update_dose(session, actor_of(staff), first, {"due_date": DST_MONDAY + timedelta(days=7)})
    after = {
        r.idempotency_key
        for r in reminders(session, plan).values()
        if (r.subject_type, r.subject_id) == ("dose", first.id)
    }
    cancelled = {
        r.idempotency_key
        for r in reminders(session, plan, status="cancelled").values()
        if (r.subject_type, r.subject_id) == ("dose", first.id)
    }
    assert before == cancelled
    assert after
    assert after.isdisjoint(before)
    one_day = next(
        r
        for r in reminders(session, plan).values()
        if (r.subject_type, r.subject_id) == ("dose", first.id) and r.payload.get("lead_days") == 1
    )
    assert one_day.local_date == DST_MONDAY + timedelta(days=6)


def test_a_sent_reminder_is_never_changed_or_resent(session, settings):
    _, staff, _, plan = setup(session, settings)
    first = plan.doses[0]
    sent = next(
        r
        for r in reminders(session, plan).values()
        if (r.subject_type, r.subject_id) == ("dose", first.id)
    )
    sent.status = "sent"
    session.flush()
    update_dose(session, actor_of(staff), first, {"due_date": DST_MONDAY + timedelta(days=7)})
    session.refresh(sent)
    assert sent.status == "sent"
    # Moving back to the original day brings back the same reminders, except the one sent.
    update_dose(session, actor_of(staff), first, {"due_date": DST_MONDAY})
    keys = [r.idempotency_key for r in reminders(session, plan).values()]
    assert sent.idempotency_key not in keys


def test_a_new_time_zone_recomputes_future_reminders(session, settings):
    _, staff, patient, plan = setup(session, settings)
    update_patient(session, actor_of(staff), patient, {"time_zone": "Europe/Berlin"})
    first = plan.doses[0]
    upcoming = [
        r
        for (kind, _), r in reminders(session, plan).items()
        if kind == "dose_upcoming" and (r.subject_type, r.subject_id) == ("dose", first.id)
    ]
    assert {r.time_zone for r in upcoming} == {"Europe/Berlin"}
    assert sorted(r.fire_at for r in upcoming) == [
        datetime.combine(DST_MONDAY - timedelta(days=7), time(8, 0), UTC),  # 09:00 CET
        datetime.combine(DST_MONDAY - timedelta(days=1), time(8, 0), UTC),
    ]


def test_a_later_preferred_time_and_quiet_hours_move_reminders(session, settings):
    _, staff, patient, plan = setup(session, settings)
    update_patient(session, actor_of(staff), patient, {"reminder_time": time(22, 30)})
    first = plan.doses[0]
    one_day = next(
        r
        for r in reminders(session, plan).values()
        if (r.subject_type, r.subject_id) == ("dose", first.id) and r.payload.get("lead_days") == 1
    )
    # 22:30 falls in the default quiet hours (21:00-08:00): pushed to 08:00 the next morning.
    assert (one_day.local_date, one_day.local_time) == (DST_MONDAY, time(8, 0))


def test_booking_adds_morning_of_instructions_and_an_early_slot_moves_them_to_the_evening_before(
    session, settings
):
    _, staff, _, plan = setup(session, settings, start=SOON)
    clear_checklist(session, plan, staff)
    first = plan.doses[0]
    at = datetime.combine(SOON, time(7, 30), ZoneInfo(NEW_YORK))
    update_dose(session, actor_of(staff), first, {"appointment_at": at})
    morning = next(
        r
        for (kind, _), r in reminders(session, plan).items()
        if kind == "morning_of" and (r.subject_type, r.subject_id) == ("dose", first.id)
    )
    # 09:00 would be after the 07:30 slot and 06:00 is in quiet hours: 20:00 the evening before.
    assert (morning.local_date, morning.local_time) == (SOON - timedelta(days=1), time(20, 0))
    assert morning.expires_at == at.astimezone(UTC)


def test_clearing_the_checklist_cancels_the_staff_warning(session, settings):
    _, staff, _, plan = setup(session, settings, start=SOON)
    clear_checklist(session, plan, staff)
    assert not [k for (kind, k) in reminders(session, plan) if kind == "checklist_not_cleared"]


def test_an_infusion_brings_a_symptom_check_in_24_hours_later(session, settings):
    _, staff, _, plan = make_ready(session, settings)
    first = plan.doses[0]
    given = datetime.combine(SOON, time(14, 0), ZoneInfo(NEW_YORK))
    answer_infection_check(session, first, staff)
    record_administration(
        session,
        actor_of(staff),
        first.id,
        administered_at=given,
        amount_mg=300,
        premedications=[
            {"drug": "methylprednisolone", "given_at": given - timedelta(minutes=30)},
            {"drug": "diphenhydramine", "given_at": given - timedelta(minutes=45)},
        ],
        now=given + timedelta(hours=4),
    )
    kinds = kinds_for(session, plan, first.id)
    assert kinds == ["symptom_checkin"]
    checkin = next(
        r for (kind, _), r in reminders(session, plan).items() if kind == "symptom_checkin"
    )
    assert checkin.fire_at == (given + timedelta(hours=24)).astimezone(UTC)
    assert checkin.local_time == time(14, 0)


def test_a_plan_on_hold_keeps_only_its_monitoring_reminders(session, settings):
    # Issue 8: a hold stops the doses, not the monitoring (labs stay due while on hold).
    _, staff, _, plan = make_ready(session, settings)
    update_plan(session, actor_of(staff), plan, {"status": "on_hold", "hold_reason": "infection"})
    kinds = {kind for kind, _ in reminders(session, plan)}
    assert kinds == {"labs_due", "monitoring_overdue"}
    subjects = {r.subject_type for r in reminders(session, plan).values()}
    assert subjects == {"monitoring_task"}


def make_ready(session, settings):
    clinic = make_clinic(session, time_zone=NEW_YORK)
    staff = make_user(session, settings, clinic, "clinician")
    patient = make_patient(session, clinic, time_zone=NEW_YORK)
    plan = make_plan(
        session,
        patient,
        staff,
        start_date=SOON,
        cleared=True,
        settings={"screening_validity_days": "one_hundred_eighty_days"},
    )
    return clinic, staff, patient, plan

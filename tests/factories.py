"""Builders for test data, written straight to the database through the models."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from service.accounts.passwords import hash_password
from service.accounts.tokens import create_access_token
from service.config import Settings
from service.core.access import Actor
from service.models import Clinic, Patient, RefreshToken, User

PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)
# The Monday five weeks ahead (4 January 2027 when these tests were written): far enough that
# reminders and checklist warnings still lie ahead, near enough that results dated today stay
# current on the day.
FIRST_DOSE = date.today() + timedelta(days=35 - date.today().weekday())


def next_clock_change(zone: str, *, after: date, forward: bool = True) -> date:
    """The first day after `after` on which the clocks in `zone` go forward (or back).

    Tests about a DST change take the next one after today, so they never drift into the past."""
    tz = ZoneInfo(zone)
    day = after
    for _ in range(400):
        day += timedelta(days=1)
        before = datetime.combine(day, time(0), tz).utcoffset()
        later = datetime.combine(day + timedelta(days=1), time(0), tz).utcoffset()
        assert before is not None
        assert later is not None
        if later != before and (later > before) == forward:
            return day
    raise ValueError(f"{zone} has no clock change within a year of {after}")


def make_clinic(session: Session, **fields: Any) -> Clinic:
    n = next(_counter)
    clinic = Clinic(
        name=fields.pop("name", f"Clinic {n}"),
        time_zone=fields.pop("time_zone", "Europe/Berlin"),
        **fields,
    )
    session.add(clinic)
    session.flush()
    return clinic


def make_patient(session: Session, clinic: Clinic, **fields: Any) -> Patient:
    n = next(_counter)
    values: dict[str, Any] = {
        "mrn": f"MRN{n:05d}",
        "given_name": "Alex",
        "family_name": f"Doe{n}",
        "birth_date": date(1985, 3, 14),
        "time_zone": "Europe/Berlin",
        "email": f"patient{n}@example.org",
    }
    values.update(fields)
    patient = Patient(clinic_id=clinic.id, **values)
    session.add(patient)
    session.flush()
    return patient


def make_user(
    session: Session,
    settings: Settings,
    clinic: Clinic,
    role: str = "clinician",
    *,
    patient: Patient | None = None,
    email: str | None = None,
    password: str = PASSWORD,
) -> User:
    n = next(_counter)
    user = User(
        clinic_id=clinic.id,
        email=(email or f"{role}{n}@example.org").lower(),
        password_hash=hash_password(settings, password),
        role=role,
        patient_id=patient.id if patient else None,
    )
    session.add(user)
    session.flush()
    return user


def actor_of(user: User) -> Actor:
    return Actor(
        user_id=user.id, role=user.role, clinic_id=user.clinic_id, patient_id=user.patient_id
    )


def auth_headers(settings: Settings, user: User, **extra: str) -> dict[str, str]:
    token = create_access_token(settings, user_id=user.id, generation=user.token_generation)
    return {"Authorization": f"Bearer {token}", **extra}


def start_plan(
    session: Session,
    staff: User,
    patient: Patient,
    regimen: str = "ocrelizumab-iv",
    start_date: date = FIRST_DOSE,
    **fields: Any,
) -> Any:
    """make_plan with the staff member first (the order the staff-view tests read best in)."""
    return make_plan(session, patient, staff, regimen=regimen, start_date=start_date, **fields)


def book_dose(
    session: Session, dose: Any, at: Any, *, zone: str = "Europe/Berlin", location: str = "Chair 1"
) -> Any:
    """Give a dose an appointment directly (status booked, due_date = the local day)."""
    from zoneinfo import ZoneInfo

    dose.status, dose.booking = "booked", "confirmed"
    dose.appointment_at = at
    dose.due_date = at.astimezone(ZoneInfo(zone)).date()
    dose.location = location
    session.flush()
    return dose


def make_reminder(session: Session, patient: Patient, **fields: Any) -> Any:
    """A pending patient reminder row (dose_upcoming by default), straight through the model."""
    from datetime import UTC, datetime, time

    from service.models import Reminder

    n = next(_counter)
    fire_at = fields.pop(
        "fire_at", datetime.combine(FIRST_DOSE - timedelta(days=1), time(8, 0), UTC)
    )
    values: dict[str, Any] = {
        "clinic_id": patient.clinic_id,
        "patient_id": patient.id,
        "audience": "patient",
        "kind": "dose_upcoming",
        "subject_type": "dose",
        "subject_id": n,
        "idempotency_key": f"test:{n}",
        "local_date": fire_at.date(),
        "local_time": time(9, 0),
        "time_zone": patient.time_zone,
        "fire_at": fire_at,
        "due_at": fire_at,
        "channels": ["inbox"],
        "payload": {},
    }
    values.update(fields)
    reminder = Reminder(**values)
    session.add(reminder)
    session.flush()
    return reminder


def make_plan(
    session: Session,
    patient: Patient,
    by: User,
    *,
    regimen: str = "ocrelizumab-iv",
    start_date: date | None = None,
    cleared: bool = False,
    **fields: Any,
) -> Any:
    """A treatment plan made by the create_plan use case (doses, checklist, monitoring).

    With cleared=True every required checklist item gets a result that clears it, and the plan
    is made ready. `by` must be a staff user of the patient's clinic.
    """
    from service.treatment.plans import PlanRequest, create_plan, update_plan

    plan = create_plan(
        session,
        actor_of(by),
        patient.id,
        PlanRequest(regimen=regimen, start_date=start_date or FIRST_DOSE, **fields),
    )
    if cleared:
        clear_checklist(session, plan, by)
        update_plan(session, actor_of(by), plan, {"status": "ready"})
    return plan


NORMAL_LIVER_TESTS = [
    {"code": "alt", "value": 22, "unit": "U/L", "ref_low": 7, "ref_high": 56},
    {"code": "ast", "value": 25, "unit": "U/L", "ref_low": 8, "ref_high": 48},
    {"code": "alp", "value": 80, "unit": "U/L", "ref_low": 40, "ref_high": 129},
    {"code": "bilirubin", "value": 10, "unit": "umol/L", "ref_low": 3, "ref_high": 21},
]


def clear_checklist(session: Session, plan: Any, by: User) -> None:
    """Record a clearing result on every required item that has none."""
    from datetime import timedelta

    from service.treatment.screening import record_screening_result

    session.expire_all()  # the API may have changed the plan since this session read it
    # Two days ago, but never after the first dose (a result cannot be dated after it).
    day = date.today() - timedelta(days=2)
    if plan.first_dose_day is not None:
        day = min(day, plan.first_dose_day)
    for item in plan.screening_items:
        rule = item.rule
        if not item.is_required or item.result is not None or rule is None:
            continue
        if item.code == "lft":
            record_screening_result(
                session, actor_of(by), item, result_date=day, values=NORMAL_LIVER_TESTS
            )
            continue
        result = next(r for r in rule.allowed_results if rule.outcome_for(r) == "cleared")
        record_screening_result(session, actor_of(by), item, result=result, result_date=day)


def answer_infection_check(
    session: Session, dose: Any, by: User, *, on: date | None = None
) -> None:
    """Staff record "no active infection" for the dose (its readiness item), as at the chair.

    The default day is yesterday: today in UTC may still be tomorrow in the clinic's zone."""
    from datetime import timedelta

    from service.treatment.readiness import record_readiness_answer

    record_readiness_answer(
        session,
        actor_of(by),
        dose.id,
        "active_infection",
        result="negative",
        result_date=on or date.today() - timedelta(days=1),
    )


def past_refresh_grace(session: Session, settings: Settings) -> None:
    """Every rotation so far happened longer ago than the refresh grace window."""
    grace = timedelta(seconds=settings.refresh_grace_s + 1)
    for token in session.scalars(select(RefreshToken).where(RefreshToken.used_at.is_not(None))):
        assert token.used_at is not None
        token.used_at -= grace
    session.flush()


@contextmanager
def sql_statements(session: Session) -> Iterator[list[str]]:
    """The SQL the session's connection runs inside the block (the app's requests share it)."""
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    bind = session.connection()
    event.listen(bind, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(bind, "before_cursor_execute", count)

"""A demo clinic: staff, and one patient on every regimen in a telling state.

- Anna (ocrelizumab IV): cleared, first infusion booked tomorrow, blocked by its open infection
  check (a dose blocked by an open readiness item).
- Ben (ocrelizumab SC): screening still pending.
- Clara (rituximab): anti-HBc positive, baseline HBV DNA recorded, hepatology consult pending
  (the hepatitis B pathway; the checklist says why, and an override is refused).
- David (ofatumumab): first injections given; the next self-injection cleared by his own
  pre-dose check-in ("no symptoms").
- Eva (ublituximab): first infusion given, the second missed (still owed, overdue), and a
  clinician's readiness override on it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts import users
from service.clinics.settings import create_clinic
from service.config import Settings
from service.core.access import Actor
from service.models import Dose, Reminder, TreatmentPlan, User
from service.patients import records
from service.reminders.acknowledgements import acknowledge
from service.treatment import doses, plans, readiness, screening

DEMO_ADMIN = "admin@demo.cd20.example"
DEMO_CLINICIAN = "clinician@demo.cd20.example"
CLINIC_ZONE = "Europe/Berlin"


@dataclass(frozen=True)
class DemoPatient:
    mrn: str
    given_name: str
    family_name: str
    time_zone: str
    regimen: str
    variant: str | None
    # Screening results to record, by item code; "clear" records a clearing result for every
    # required item first.
    clear: bool
    results: dict[str, str] = field(default_factory=dict)
    book_tomorrow: bool = False
    # Days from today to the plan's start (negative: started in the past).
    start_in: int = 21
    # Doses (by sequence) given on their day, and the state to leave the plan in.
    given: tuple[int, ...] = ()
    missed: int | None = None
    checkin: int | None = None  # the dose whose pre-dose check-in the patient answered
    shows: str = ""


# Normal values for the liver tests the catalog asks for (with the laboratory's ranges).
DEMO_LIVER_TESTS = [
    {"code": "alt", "value": 24.0, "unit": "U/L", "ref_low": 7.0, "ref_high": 56.0},
    {"code": "ast", "value": 22.0, "unit": "U/L", "ref_low": 8.0, "ref_high": 48.0},
    {"code": "alp", "value": 71.0, "unit": "U/L", "ref_low": 40.0, "ref_high": 129.0},
    {"code": "bilirubin", "value": 9.0, "unit": "umol/L", "ref_low": 3.0, "ref_high": 21.0},
]


PATIENTS = (
    DemoPatient(
        "DEMO-001",
        "Anna",
        "Becker",
        "Europe/Berlin",
        "ocrelizumab-iv",
        None,
        True,
        book_tomorrow=True,
        shows="booked tomorrow, blocked by the open infection check",
    ),
    DemoPatient(
        "DEMO-002",
        "Ben",
        "Okafor",
        "Europe/London",
        "ocrelizumab-sc",
        None,
        False,
        shows="screening pending",
    ),
    DemoPatient(
        "DEMO-003",
        "Clara",
        "Lindqvist",
        "Europe/Stockholm",
        "rituximab-iv",
        "rifund",
        True,
        {"anti_hbc": "positive", "hbv_dna": "negative"},
        shows="hepatitis B pathway: anti-HBc positive, consult pending",
    ),
    DemoPatient(
        "DEMO-004",
        "David",
        "Hernández",
        "America/New_York",
        "ofatumumab-sc",
        None,
        True,
        start_in=-9,
        given=(1, 2),
        checkin=3,
        shows="next self-injection cleared by his own check-in",
    ),
    DemoPatient(
        "DEMO-005",
        "Eva",
        "Nguyen",
        "Australia/Sydney",
        "ublituximab-iv",
        None,
        True,
        start_in=-20,
        given=(1,),
        missed=2,
        shows="second infusion missed, with a clinician's override",
    ),
)


@dataclass
class DemoResult:
    created: bool
    clinic_id: int
    logins: list[tuple[str, str, str]]  # (role, e-mail, what they can see)


def _patient_email(mrn: str) -> str:
    return f"{mrn.lower()}@demo.cd20.example"


def seed_demo(session: Session, settings: Settings, *, password: str, today: date) -> DemoResult:
    """Create the demo clinic once; on later runs, say where it is."""
    existing = session.scalar(select(User).where(User.email == DEMO_ADMIN))
    if existing is not None:
        return DemoResult(False, existing.clinic_id, _logins())
    clinic, _admin = create_clinic(
        session,
        settings,
        name="Demo MS Infusion Clinic",
        time_zone=CLINIC_ZONE,
        admin_email=DEMO_ADMIN,
        admin_password=password,
    )
    clinician = users.create_user_in_clinic(
        session,
        settings,
        clinic_id=clinic.id,
        email=DEMO_CLINICIAN,
        role="clinician",
        password=password,
    )
    staff = Actor(user_id=clinician.id, role="clinician", clinic_id=clinic.id)
    for demo in PATIENTS:
        _enrol(session, settings, staff, demo, password=password, today=today)
    return DemoResult(True, clinic.id, _logins())


def _enrol(
    session: Session,
    settings: Settings,
    staff: Actor,
    demo: DemoPatient,
    *,
    password: str,
    today: date,
) -> None:
    patient = records.enrol_patient(
        session,
        staff,
        mrn=demo.mrn,
        given_name=demo.given_name,
        family_name=demo.family_name,
        birth_date=date(1984, 5, 2),
        time_zone=demo.time_zone,
        email=_patient_email(demo.mrn),
        reminder_channels=[],
    )
    start = today + timedelta(days=1 if demo.book_tomorrow else demo.start_in)
    request = plans.PlanRequest(regimen=demo.regimen, start_date=start, variant=demo.variant)
    plan = plans.create_plan(session, staff, patient.id, request)
    results = dict(demo.results)
    if demo.clear:
        results = {**_clearing_results(plan), **results}
    # Results are dated before the first dose they clear.
    result_date = min(today, start - timedelta(days=3))
    for item in plan.screening_items:
        if item.code not in results:
            continue
        extra: dict[str, Any] = {}
        if item.code == "lft":
            extra["values"] = DEMO_LIVER_TESTS
        if item.code == "hbv_dna":
            extra.update(value="0", unit="IU/mL")
        screening.record_screening_result(
            session, staff, item, result=results[item.code], result_date=result_date, **extra
        )
    if demo.given:
        plans.update_plan(session, staff, plan, {"status": "ready"})
    for sequence in demo.given:
        _give(session, staff, plan.doses[sequence - 1])
    if demo.book_tomorrow:
        first = plan.doses[0]
        appointment = datetime.combine(start, time(9, 30), tzinfo=ZoneInfo(CLINIC_ZONE))
        doses.update_dose(
            session,
            staff,
            first,
            {"appointment_at": appointment, "location": "Chair 3", "booking": "confirmed"},
        )
    if demo.missed is not None:
        dose = plan.doses[demo.missed - 1]
        doses.update_dose(session, staff, dose, {"status": "missed"})
        readiness.record_readiness_answer(
            session, staff, dose.id, "pregnancy", result="negative", result_date=today
        )
        readiness.override_readiness(
            session,
            staff,
            dose.id,
            reason="Called the patient today: no signs of infection; she comes in tomorrow.",
        )
    invitation = users.invite_patient(session, staff, settings, patient_id=patient.id)
    users.activate_account(session, settings, code=invitation.code, password=password)
    if demo.checkin is not None:
        _patient_checks_in(session, staff, patient.id, plan.doses[demo.checkin - 1])


def _give(session: Session, staff: Actor, dose: Dose) -> None:
    """The dose given on its day at 10:00, its pre-dose checks answered, premedication on time."""
    plan = dose.plan
    zone = ZoneInfo(CLINIC_ZONE)
    given = datetime.combine(dose.due_date, time(10, 0), tzinfo=zone)
    for item in dose.readiness.open_items:
        if item.code in ("active_infection", "pregnancy"):
            readiness.record_readiness_answer(
                session, staff, dose.id, item.code, result="negative", result_date=dose.due_date
            )
    premedications = []
    for premedication in plan.regimen.premedications:
        if not premedication.required:
            continue
        window = premedication.minutes_before
        minutes = 30 if window is None else ((window.min or 0) + (window.max or 60)) // 2
        premedications.append(
            {"drug": premedication.drug, "given_at": given - timedelta(minutes=minutes)}
        )
    doses.record_administration(
        session,
        staff,
        dose.id,
        administered_at=given,
        amount_mg=dose.amount_mg,
        premedications=premedications,
        observation_minutes=plan.regimen.observation.minutes_after(dose.sequence),
    )


def _patient_checks_in(session: Session, staff: Actor, patient_id: int, dose: Dose) -> None:
    """The patient answers the dose's infection check-in in the app: no symptoms."""
    user = session.scalar(select(User).where(User.patient_id == patient_id))
    assert user is not None
    reminder = session.scalar(
        select(Reminder).where(
            Reminder.kind == "infection_checkin",
            Reminder.subject_type == "dose",
            Reminder.subject_id == dose.id,
        )
    )
    if reminder is None:
        return
    me = Actor(user_id=user.id, role="patient", clinic_id=staff.clinic_id, patient_id=patient_id)
    acknowledge(session, me, reminder.id, response={"status": "no_symptoms"})


def _clearing_results(plan: TreatmentPlan) -> dict[str, str]:
    """A clearing result for every item the plan requires (by label or clinic setting)."""
    chosen: dict[str, str] = {}
    for item in plan.screening_items:
        rule = item.rule
        if rule is None or not item.is_required:
            continue
        for result in rule.allowed_results:
            if rule.outcome_for(result) == "cleared":
                chosen[rule.code] = result
                break
    return chosen


def _logins() -> list[tuple[str, str, str]]:
    rows = [
        ("admin", DEMO_ADMIN, "clinic settings, staff accounts, audit"),
        ("clinician", DEMO_CLINICIAN, "patients, plans, screening, doses, worklist"),
    ]
    for demo in PATIENTS:
        sees = f"{demo.given_name}: {demo.regimen}, {demo.shows}"
        rows.append(("patient", _patient_email(demo.mrn), sees))
    return rows

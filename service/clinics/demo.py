"""A demo clinic: staff, and one patient on every regimen in a telling state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts import users
from service.clinics.settings import create_clinic
from service.config import Settings
from service.core.access import Actor
from service.models import TreatmentPlan, User
from service.patients import records
from service.treatment import doses, plans, screening

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
    ),
    DemoPatient("DEMO-002", "Ben", "Okafor", "Europe/London", "ocrelizumab-sc", None, False),
    DemoPatient(
        "DEMO-003",
        "Clara",
        "Lindqvist",
        "Europe/Stockholm",
        "rituximab-iv",
        "rifund",
        True,
        {"anti_hbc": "positive"},
    ),
    DemoPatient("DEMO-004", "David", "Hernández", "America/New_York", "ofatumumab-sc", None, True),
    DemoPatient("DEMO-005", "Eva", "Nguyen", "Australia/Sydney", "ublituximab-iv", None, True),
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
    start = today + timedelta(days=1 if demo.book_tomorrow else 21)
    request = plans.PlanRequest(regimen=demo.regimen, start_date=start, variant=demo.variant)
    plan = plans.create_plan(session, staff, patient.id, request)
    results = dict(demo.results)
    if demo.clear:
        results = {**_clearing_results(plan), **results}
    for item in plan.screening_items:
        if item.code in results:
            screening.record_screening_result(
                session, staff, item, result=results[item.code], result_date=today
            )
    if demo.book_tomorrow:
        first = plan.doses[0]
        appointment = datetime.combine(start, time(9, 30), tzinfo=ZoneInfo(CLINIC_ZONE))
        doses.update_dose(
            session,
            staff,
            first,
            {"appointment_at": appointment, "location": "Chair 3", "booking": "confirmed"},
        )
    invitation = users.invite_patient(session, staff, settings, patient_id=patient.id)
    users.activate_account(session, settings, code=invitation.code, password=password)


def _clearing_results(plan: TreatmentPlan) -> dict[str, str]:
    from service.protocols import get_regimen

    regimen = get_regimen(plan.regimen_code)
    chosen: dict[str, str] = {}
    for rule in regimen.screening:
        if not rule.required:
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
        rows.append(("patient", _patient_email(demo.mrn), f"{demo.given_name}: {demo.regimen}"))
    return rows

"""A two-clinic world with every kind of object, for tests that attack the API's access rules.

Clinic 1 has patients A and B, clinic 2 has patient C; each of them is a *party* with an app
account, an open plan (checklist overridden, first dose given), an open dose (B's is booked for
today), a monitoring task, a lab result and the alert it raised, reminders (one to acknowledge,
one answered), an inbox message, a push device, and a second patient record without account or
open plan (the *newcomer*, for invitations and new plans; its one plan was discontinued after a
dose, so its Ig monitoring continues). Every free-text field of a party's records
carries that party's marker, e.g. "MARKER-A-7f3a" (the newcomer's: "MARKER-A2-7f3a"); the
clinic's own texts (its name, its staff's e-mails) carry the clinic's marker, "MARKER-K1-7f3a".
`World.visible_markers(actor)` says which markers an actor may ever read: any other marker in a
response is a leak.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.accounts import users
from service.accounts.tokens import create_access_token
from service.config import Settings
from service.db import utcnow
from service.models import Clinic, Delivery, Patient, StaffAlert, User
from service.patients.devices import register_device
from service.reminders.acknowledgements import acknowledge
from service.reminders.inbox import post_to_inbox
from service.treatment.doses import record_administration, update_dose
from service.treatment.labs import record_lab
from service.treatment.monitoring import update_task
from service.treatment.plans import PlanRequest, create_plan, update_plan
from service.treatment.readiness import record_readiness_answer
from service.treatment.screening import override_screening, record_screening_result
from tests.factories import (
    NORMAL_LIVER_TESTS,
    PASSWORD,
    actor_of,
    auth_headers,
    make_clinic,
    make_patient,
    make_reminder,
    make_user,
)

SUFFIX = "7f3a"
REGIMEN = "ocrelizumab-iv"
ZONE = "Europe/Berlin"
# The party's plan started this long ago: its first dose is given, its second (day 14) is due.
PLAN_AGE = timedelta(days=20)

# Actor kinds, in the order the matrix runs them.
PATIENT_A, PATIENT_B = "patient_a", "patient_b"
CLINICIAN_1, ADMIN_1, ADMIN_2 = "clinician_1", "admin_1", "admin_2"
ANONYMOUS, REVOKED, EXPIRED = "anonymous", "revoked", "expired"
ACTORS = (PATIENT_A, PATIENT_B, CLINICIAN_1, ADMIN_1, ADMIN_2, ANONYMOUS, REVOKED, EXPIRED)
# Whose objects are "own", "same_clinic" (another patient of the actor's clinic) and
# "other_clinic" for each actor. The revoked and expired tokens are admin 1's.
OWNERSHIP: dict[str, dict[str, str]] = {
    PATIENT_A: {"own": "A", "same_clinic": "B", "other_clinic": "C"},
    PATIENT_B: {"own": "B", "same_clinic": "A", "other_clinic": "C"},
    CLINICIAN_1: {"own": "A", "same_clinic": "B", "other_clinic": "C"},
    ADMIN_1: {"own": "A", "same_clinic": "B", "other_clinic": "C"},
    ADMIN_2: {"own": "C", "other_clinic": "A"},
    ANONYMOUS: {"own": "A", "same_clinic": "B", "other_clinic": "C"},
    REVOKED: {"own": "A", "same_clinic": "B", "other_clinic": "C"},
    EXPIRED: {"own": "A", "same_clinic": "B", "other_clinic": "C"},
}


def marker(label: str) -> str:
    return f"MARKER-{label}-{SUFFIX}"


@dataclass
class Party:
    """One patient of a clinic and everything recorded about them."""

    label: str
    clinic: Clinic
    patient: Patient
    user: User
    newcomer: Patient
    plan: Any
    given_dose: Any
    dose: Any
    screening_code: str
    task: Any
    lab: Any
    alert: StaffAlert
    reminder: Any
    answered_reminder: Any
    message: Any
    device: Any
    # The newcomer's earlier plan, discontinued after one dose: its Ig monitoring continues.
    stopped_plan: Any = None

    @property
    def marker(self) -> str:
        return marker(self.label)

    def url_params(self, kind: str) -> dict[str, Any]:
        """The URL parameters that name this party's object of `kind`."""
        ids: dict[str, dict[str, Any]] = {
            "patient": {"patient_id": self.patient.id},
            "newcomer": {"patient_id": self.newcomer.id},
            "plan": {"plan_id": self.plan.id},
            "screening_item": {"plan_id": self.plan.id, "item_code": self.screening_code},
            "dose": {"dose_id": self.dose.id},
            "readiness_item": {"dose_id": self.dose.id, "code": "active_infection"},
            # The dose after the open one: its readiness is still open (nothing answered).
            "later_dose": {"dose_id": self.plan.doses[2].id},
            "task": {"task_id": self.task.id},
            "reminder": {"reminder_id": self.reminder.id},
            "message": {"message_id": self.message.id},
            "device": {"device_id": self.device.id},
            "user": {"user_id": self.user.id},
            "alert": {"alert_id": self.alert.id},
            "stopped_plan": {"plan_id": self.stopped_plan.id, "kind": "ig_quant"},
        }
        return ids[kind]


@dataclass
class World:
    settings: Settings
    clinics: dict[int, Clinic]
    staff: dict[str, User]
    parties: dict[str, Party]
    headers: dict[str, dict[str, str]]
    # Values the matrix's request bodies refer to by name, e.g. "{refresh_token}".
    values: dict[str, Any] = field(default_factory=dict)
    etags: dict[tuple[str, str], str] = field(default_factory=dict)

    def clinic_of(self, actor: str) -> Clinic | None:
        if actor == ADMIN_2:
            return self.clinics[2]
        if actor == ANONYMOUS:
            return None
        return self.clinics[1]

    def visible_markers(self, actor: str) -> set[str]:
        """Markers this actor may read: its own patient's, or all of its clinic's as staff."""
        if actor in (PATIENT_A, PATIENT_B):
            label = "A" if actor == PATIENT_A else "B"
            return {marker(label), marker("K1")}
        if actor in (CLINICIAN_1, ADMIN_1):
            return {marker(x) for x in ("A", "A2", "B", "B2", "K1")}
        if actor == ADMIN_2:
            return {marker(x) for x in ("C", "C2", "K2")}
        return set()  # anonymous, revoked and expired tokens see nobody's data

    @property
    def all_markers(self) -> set[str]:
        return {marker(x) for x in ("A", "A2", "B", "B2", "C", "C2", "K1", "K2")}


@contextmanager
def rolled_back(session: Session) -> Iterator[None]:
    """Whatever a request made inside this block writes (its audit event too) is undone after
    it, so every request meets the same world."""
    savepoint = session.begin_nested()
    session.connection()  # the SAVEPOINT is emitted now, not at the session's next query
    try:
        yield
    finally:
        savepoint.rollback()
        session.expire_all()


def build_world(session: Session, settings: Settings) -> World:
    clinic1 = make_clinic(session, name=f"Clinic one {marker('K1')}", time_zone=ZONE)
    clinic2 = make_clinic(session, name=f"Clinic two {marker('K2')}", time_zone=ZONE)
    staff = {
        ADMIN_1: _staff(session, settings, clinic1, "admin", "K1"),
        CLINICIAN_1: _staff(session, settings, clinic1, "clinician", "K1"),
        ADMIN_2: _staff(session, settings, clinic2, "admin", "K2"),
        "clinician_2": _staff(session, settings, clinic2, "clinician", "K2"),
    }
    parties = {
        "A": _party(session, settings, "A", clinic1, staff[CLINICIAN_1]),
        "B": _party(session, settings, "B", clinic1, staff[CLINICIAN_1], book_today=True),
        "C": _party(session, settings, "C", clinic2, staff["clinician_2"]),
    }

    admin1 = staff[ADMIN_1]
    revoked = auth_headers(settings, admin1)
    admin1.token_generation += 1  # what logging out everywhere does to earlier tokens
    session.flush()
    expired = create_access_token(
        settings,
        user_id=admin1.id,
        generation=admin1.token_generation,
        now=utcnow() - timedelta(seconds=settings.access_token_ttl_s + 3600),
    )
    headers = {
        PATIENT_A: auth_headers(settings, parties["A"].user),
        PATIENT_B: auth_headers(settings, parties["B"].user),
        CLINICIAN_1: auth_headers(settings, staff[CLINICIAN_1]),
        ADMIN_1: auth_headers(settings, admin1),
        ADMIN_2: auth_headers(settings, staff[ADMIN_2]),
        ANONYMOUS: {},
        REVOKED: revoked,
        EXPIRED: {"Authorization": f"Bearer {expired}"},
    }

    party_a = parties["A"]
    login = users.log_in(session, settings, username=party_a.user.email, password=PASSWORD)
    invitation = users.invite_patient(
        session, actor_of(staff[CLINICIAN_1]), settings, patient_id=party_a.newcomer.id
    )
    now = utcnow()
    values = {
        "password": PASSWORD,
        "new_password": "a new password that is long enough",
        "patient_a_email": party_a.user.email,
        "refresh_token": login.tokens().refresh_token,
        "activation_code": invitation.code,
        "yesterday_date": (date.today() - timedelta(days=1)).isoformat(),
        "before_first_dose": (date.today() - PLAN_AGE - timedelta(days=2)).isoformat(),
        "start_date": (date.today() + timedelta(days=7)).isoformat(),
        "an_hour_ago": (now - timedelta(hours=1)).isoformat(),
        # The label's premedication window before a dose given an hour ago.
        "premedicated_at": (now - timedelta(minutes=95)).isoformat(),
        "yesterday": (now - timedelta(days=1)).isoformat(),
        "amount_mg": party_a.dose.amount_mg,
    }
    session.flush()
    return World(
        settings=settings,
        clinics={1: clinic1, 2: clinic2},
        staff=staff,
        parties=parties,
        headers=headers,
        values=values,
    )


def _staff(session: Session, settings: Settings, clinic: Clinic, role: str, label: str) -> User:
    return make_user(
        session, settings, clinic, role, email=f"{role}-{marker(label).lower()}@example.org"
    )


def _party(
    session: Session,
    settings: Settings,
    label: str,
    clinic: Clinic,
    clinician: User,
    *,
    book_today: bool = False,
) -> Party:
    text = marker(label)
    staff = actor_of(clinician)
    patient = make_patient(
        session,
        clinic,
        mrn=text,
        given_name=text,
        family_name=text,
        email=f"{text.lower()}@example.org",
        phone=text,
        time_zone=ZONE,
    )
    user = make_user(session, settings, clinic, "patient", patient=patient, email=patient.email)
    newcomer_text = marker(f"{label}2")
    newcomer = make_patient(
        session,
        clinic,
        mrn=newcomer_text,
        given_name=newcomer_text,
        family_name=newcomer_text,
        email=f"{newcomer_text.lower()}@example.org",
        phone=newcomer_text,
        time_zone=ZONE,
    )

    stopped_plan = _stopped_plan(session, staff, newcomer, newcomer_text)
    start = date.today() - PLAN_AGE
    plan = create_plan(
        session, staff, patient.id, PlanRequest(regimen=REGIMEN, start_date=start, notes=text)
    )
    required = [item for item in plan.screening_items if item.required and item.rule]
    pending, *recorded = required
    for item in recorded:
        rule = item.rule
        result = next(r for r in rule.allowed_results if rule.outcome_for(r) == "cleared")
        record_screening_result(
            session,
            staff,
            item,
            result=None if item.code == "lft" else result,
            result_date=start - timedelta(days=3),
            value=text,
            unit=text,
            notes=text,
            values=NORMAL_LIVER_TESTS if item.code == "lft" else None,
        )
    # One item stays pending: a clinician's override lets treatment go ahead, and another
    # override is still possible (the checklist is not cleared).
    override_screening(session, staff, plan.id, reason=f"Treat anyway: {text}")
    update_plan(session, staff, plan, {"status": "ready"})

    first, second = plan.doses[0], plan.doses[1]
    given_at = datetime.combine(start, time(10, 0), tzinfo=ZoneInfo(ZONE))
    record_readiness_answer(
        session, staff, first.id, "active_infection", result="negative", result_date=start
    )
    record_administration(
        session,
        staff,
        first.id,
        administered_at=given_at,
        amount_mg=first.amount_mg,
        premedications=[{"drug": text, "given_at": given_at - timedelta(minutes=45)}],
        premedication_exception_reason=f"Local protocol premedication: {text}",
        reaction={
            "grade": "mild_moderate",
            "onset_at": given_at + timedelta(minutes=30),
            "action": text,
            "notes": text,
        },
        notes=text,
    )
    changes: dict[str, Any] = {"location": text}
    if book_today:  # so the day's chair list has an entry
        today_at_ten = datetime.combine(date.today(), time(10, 0), tzinfo=ZoneInfo(ZONE))
        changes["appointment_at"] = today_at_ten
    update_dose(session, staff, second, changes)
    # Staff found no infection before the open dose, so recording it is only a question of access.
    record_readiness_answer(
        session,
        staff,
        second.id,
        "active_infection",
        result="negative",
        result_date=date.today() - timedelta(days=1),
    )
    task = next(t for t in plan.monitoring_tasks if t.is_open)
    update_task(session, staff, task, {"notes": text})

    lab = record_lab(
        session,
        staff,
        patient.id,
        code="igg",
        value=4.2,
        unit="g/L",
        taken_at=utcnow() - timedelta(days=1),
        notes=text,
    )
    alert = session.scalars(
        select(StaffAlert).where(
            StaffAlert.subject_type == "lab_result", StaffAlert.subject_id == lab.id
        )
    ).one()

    now = utcnow()
    reminder = make_reminder(
        session,
        patient,
        kind="symptom_checkin",
        subject_type="dose",
        subject_id=first.id,
        plan_id=plan.id,
        fire_at=now + timedelta(days=2),
    )
    answered = make_reminder(
        session,
        patient,
        kind="symptom_checkin",
        subject_type="dose",
        subject_id=first.id,
        plan_id=plan.id,
        fire_at=now - timedelta(days=1),
        status="sent",
        sent_at=now - timedelta(days=1),
    )
    answered.deliveries.append(
        Delivery(channel="push", attempt=1, outcome="failed", response_code=400, error=text)
    )
    acknowledge(
        session,
        actor_of(user),
        answered.id,
        response={"status": "symptoms", "symptoms": ["fever"], "details": text},
    )
    message = post_to_inbox(
        session,
        patient_id=patient.id,
        reminder_id=answered.id,
        kind="symptom_checkin",
        title=text,
        body=text,
    )
    device, _ = register_device(
        session, actor_of(user), platform="android", token=f"push-token-{text}"
    )
    session.flush()
    return Party(
        label=label,
        clinic=clinic,
        patient=patient,
        user=user,
        newcomer=newcomer,
        plan=plan,
        given_dose=first,
        dose=second,
        screening_code=pending.code,
        task=task,
        lab=lab,
        alert=alert,
        reminder=reminder,
        answered_reminder=answered,
        message=message,
        device=device,
        stopped_plan=stopped_plan,
    )


def _stopped_plan(session: Session, staff: Any, patient: Patient, text: str) -> Any:
    """A plan given one dose a year ago and then discontinued: monitoring continues after it."""
    start = date.today() - timedelta(days=365)
    plan = create_plan(
        session, staff, patient.id, PlanRequest(regimen=REGIMEN, start_date=start, notes=text)
    )
    override_screening(session, staff, plan.id, reason=f"Treat anyway: {text}")
    update_plan(session, staff, plan, {"status": "ready"})
    first = plan.doses[0]
    given_at = datetime.combine(start, time(10, 0), tzinfo=ZoneInfo(ZONE))
    record_readiness_answer(
        session, staff, first.id, "active_infection", result="negative", result_date=start
    )
    record_administration(
        session,
        staff,
        first.id,
        administered_at=given_at,
        amount_mg=first.amount_mg,
        premedications=[{"drug": text, "given_at": given_at - timedelta(minutes=45)}],
        premedication_exception_reason=f"Local protocol premedication: {text}",
        notes=text,
    )
    update_plan(session, staff, plan, {"status": "discontinued"})
    return plan

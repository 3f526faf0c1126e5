"""SQL statements per read: bounded, and the same however many doses, items or rows it returns.

Every GET route of the authorization matrix is called by an actor allowed to read it, on the
world of tests/api/world.py, then again after that world has grown (more patients with plans, a
second dose given with its premedication and reaction, more lab results, reminders and inbox
messages). A relationship loaded lazily while the response is serialized shows up here as a
count that grows with the data: eager-load it in the use case instead.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask.testing import FlaskClient
from sqlalchemy import Connection, event
from sqlalchemy.orm import Session

from service.db import utcnow
from service.reminders.inbox import post_to_inbox
from service.treatment.doses import record_administration
from service.treatment.labs import record_lab
from tests.api.test_authorization_matrix import load_matrix
from tests.api.world import (
    ADMIN_1,
    CLINICIAN_1,
    PATIENT_A,
    ZONE,
    World,
    build_world,
    rolled_back,
)
from tests.factories import (
    actor_of,
    answer_infection_check,
    make_patient,
    make_plan,
    make_reminder,
)

MATRIX = load_matrix()  # the API's routes; the staff console is not a JSON read
PARAM = re.compile(r"<(?:[^:<>]+:)?(?P<name>[^<>]+)>")
# Transaction control is not a round trip the route chose (the test's savepoints, BEGIN).
NOT_COUNTED = re.compile(r"^\s*(SAVEPOINT|RELEASE|ROLLBACK|BEGIN|COMMIT)\b", re.IGNORECASE)
# Routes that read no patient data from the database, or whose answer is a fixed document.
NO_DATABASE = frozenset({"/openapi.json", "/docs", "/docs/assets/<path:filename>"})
# Query strings that make a read return something (a list's page, a day of the schedule).
QUERIES = {
    "/api/v1/staff/schedule": {"date": date.today().isoformat()},
    "/api/v1/staff/schedule.ics": {},
    "/api/v1/regimens/<string:code>": {},
}
# The staff views are held to their own bounds by the staff views' tests (tests/api/test_staff.py).
STAFF_VIEWS = frozenset({"/api/v1/staff/schedule", "/api/v1/staff/worklist"})
# The most statements any read may take on SQLite: authentication, the freshness stamp of a
# polled read, the reads, and the audit event's two (the patient it names, the INSERT;
# PostgreSQL adds a SET LOCAL). The reads the mobile app polls, and one object's reads, are
# held to what they take now: one more is a lazy load come back.
CEILING = 20
BOUNDS = {
    "/api/v1/healthz": 0,
    "/api/v1/me/inbox": 4,
    "/api/v1/me/reminders/upcoming": 4,
    "/api/v1/me/plans": 15,
    # Asked again unchanged, one object's read takes two (tests/api/test_rendered_bodies.py).
    "/api/v1/plans/<int:plan_id>": 15,
    "/api/v1/patients/<int:patient_id>": 11,
    "/api/v1/patients": 13,
    "/api/v1/doses/<int:dose_id>": 11,
}
# On PostgreSQL a read's audit event is written in the read's transaction, which still holds
# the plan or patient the read loaded: the event names its patient without the lookup, and
# the SET LOCAL takes its place.
SAME_ON_POSTGRESQL = frozenset({"/api/v1/plans/<int:plan_id>", "/api/v1/patients/<int:patient_id>"})


def _reads() -> list[dict[str, Any]]:
    return [
        entry
        for entry in MATRIX
        if entry["method"] == "GET"
        and entry["rule"] not in NO_DATABASE
        and entry["rule"] not in STAFF_VIEWS
        and _reader(entry) is not None
    ]


def _reader(entry: dict[str, Any]) -> str | None:
    """The first of a clinician, the patient, an admin who may read the route's own object."""
    for actor in (CLINICIAN_1, PATIENT_A, ADMIN_1):
        outcome = entry["expect"].get(actor)
        if isinstance(outcome, dict):
            outcome = outcome.get("own")
        if outcome == "allow":
            return actor
    return None


def _url(world: World, entry: dict[str, Any]) -> str:
    kind = entry["object"]
    params = {} if kind in ("none", "clinic") else world.parties["A"].url_params(kind)
    if entry["rule"] == "/api/v1/regimens/<string:code>":
        params = {"code": "ocrelizumab-iv"}
    return PARAM.sub(lambda m: str(params[m["name"]]), entry["rule"])


@contextmanager
def counting(connection: Connection) -> Iterator[list[str]]:
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not NOT_COUNTED.match(statement):
            statements.append(statement)

    event.listen(connection, "before_cursor_execute", count)
    try:
        yield statements
    finally:
        event.remove(connection, "before_cursor_execute", count)


def _statements(client: FlaskClient, session: Session, world: World) -> dict[str, int]:
    counts: dict[str, int] = {}
    for entry in _reads():
        actor = _reader(entry)
        assert actor is not None
        url = _url(world, entry)  # before counting: it may refresh the test's own objects
        with rolled_back(session), counting(session.connection()) as statements:
            response = client.get(
                url, headers=world.headers[actor], query_string=QUERIES.get(entry["rule"], {})
            )
        assert response.status_code == 200, (entry["rule"], response.get_data(as_text=True))
        counts[entry["rule"]] = len(statements)
    return counts


def _grow(session: Session, world: World) -> None:
    """More of everything party A's reads return, and more patients in the clinic."""
    party = world.parties["A"]
    clinician = world.staff[CLINICIAN_1]
    staff = actor_of(clinician)
    for n in range(4):
        patient = make_patient(session, party.clinic, mrn=f"GROWN-{n}", time_zone=ZONE)
        make_plan(session, patient, clinician, start_date=date.today() + timedelta(days=n))
    given_at = datetime.combine(date.today(), time(9, 0), tzinfo=ZoneInfo(ZONE))
    if given_at > utcnow():
        given_at -= timedelta(days=1)
    record_administration(
        session,
        staff,
        party.dose.id,
        administered_at=given_at,
        amount_mg=party.dose.amount_mg,
        premedications=[{"drug": "grown", "given_at": given_at - timedelta(minutes=45)}],
        premedication_exception_reason="Local protocol premedication",
        reaction={
            "grade": "mild_moderate",
            "onset_at": given_at + timedelta(minutes=20),
            "action": "slowed",
        },
    )
    now = utcnow()
    for n in range(3):
        record_lab(
            session,
            staff,
            party.patient.id,
            code="igg",
            value=7.5 + n,
            unit="g/L",
            taken_at=now - timedelta(days=2 + n),
        )
        reminder = make_reminder(
            session,
            party.patient,
            kind="symptom_checkin",
            plan_id=party.plan.id,
            fire_at=now + timedelta(days=3 + n),
        )
        post_to_inbox(
            session,
            patient_id=party.patient.id,
            reminder_id=reminder.id,
            kind="symptom_checkin",
            title="grown",
            body="grown",
        )
    session.flush()
    session.expire_all()


@pytest.fixture
def world(session: Session, settings: Any) -> World:
    return build_world(session, settings)


def test_every_read_takes_the_same_few_statements_however_much_it_returns(
    client: FlaskClient, session: Session, world: World
) -> None:
    small = _statements(client, session, world)
    _grow(session, world)
    large = _statements(client, session, world)

    grows = {rule: (small[rule], large[rule]) for rule in small if large[rule] != small[rule]}
    assert not grows, f"statements grow with the data (small, large): {grows}"
    # The bounds are SQLite's; PostgreSQL adds the read's SET LOCAL for its audit commit.
    extra = 1 if session.get_bind().dialect.name == "postgresql" else 0
    over = {
        rule: count
        for rule, count in large.items()
        if count > BOUNDS.get(rule, CEILING) + (0 if rule in SAME_ON_POSTGRESQL else extra)
    }
    assert not over, f"reads over their bound: {over} (bounds {BOUNDS}, others {CEILING}, +{extra})"


# Reads of one plan and its patient: the regimen decides how many doses, checklist items and
# monitoring tasks there are.
PLAN_READS = (
    "/api/v1/plans/{plan}",
    "/api/v1/plans/{plan}/doses",
    "/api/v1/plans/{plan}/screening",
    "/api/v1/plans/{plan}/monitoring",
    "/api/v1/doses/{dose}",
    "/api/v1/doses/{dose}/readiness",
    "/api/v1/patients/{patient}",
    "/api/v1/patients/{patient}/plans",
    "/api/v1/patients/{patient}/fhir",
)


def test_reads_of_a_plan_take_as_many_statements_for_many_doses_as_for_few(
    client: FlaskClient, session: Session, clinic: Any, staff: Any, headers: dict[str, str]
) -> None:
    start = date.today() - timedelta(days=40)
    few = make_plan(session, make_patient(session, clinic), staff, start_date=start, cleared=True)
    many = make_plan(
        session,
        make_patient(session, clinic),
        staff,
        regimen="ofatumumab-sc",
        start_date=start,
        cleared=True,
    )
    for plan in (few, many):
        first = plan.doses[0]
        answer_infection_check(session, first, staff, on=start)
        given_at = datetime.combine(start, time(10, 0), tzinfo=ZoneInfo(ZONE))
        record_administration(
            session,
            actor_of(staff),
            first.id,
            administered_at=given_at,
            amount_mg=first.amount_mg,
            # Ocrelizumab's infusion asks for premedication; ofatumumab's injection does not.
            premedication_exception_reason="Local protocol" if plan is few else None,
        )
    session.flush()
    assert len(many.doses) >= len(few.doses) + 3, "the second regimen must have more doses"

    def count(plan: Any) -> dict[str, int]:
        ids = {"plan": plan.id, "dose": plan.doses[0].id, "patient": plan.patient_id}
        counts = {}
        for template in PLAN_READS:
            url = template.format(**ids)
            with rolled_back(session), counting(session.connection()) as statements:
                response = client.get(url, headers=headers)
            assert response.status_code == 200, (url, response.get_data(as_text=True))
            counts[template] = len(statements)
        return counts

    few_counts, many_counts = count(few), count(many)
    differ = {
        t: (few_counts[t], many_counts[t]) for t in PLAN_READS if few_counts[t] != many_counts[t]
    }
    assert not differ, f"statements follow the number of doses (few, many): {differ}"

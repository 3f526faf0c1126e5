"""SQL statements per staff view and per write: bounded, and the same for a bigger clinic.

Each test measures a small and a larger dataset and asserts the same count, so a query per
row (a lazy load in a loop, a re-derivation of every reminder) makes it fail.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from service.db import utcnow
from service.errors import OverrideNotAllowed
from service.models import Reminder, StaffAlert, TreatmentPlan
from service.reminders.derive import sync_plan_reminders
from service.treatment.plans import PlanRequest, create_plan
from service.treatment.screening import override_screening, record_screening_result
from tests.factories import (
    actor_of,
    answer_infection_check,
    book_dose,
    clear_checklist,
    make_clinic,
    make_patient,
    make_plan,
    make_user,
)

ZONE = "Europe/Berlin"
# SQLite gets no multi-row INSERT ... RETURNING from the ORM: each new row is a statement.
BATCHED_INSERTS = "needs PostgreSQL: on SQLite the ORM inserts each new row on its own"


def _statements(session: Session, call: Callable[[], Any]) -> list[str]:
    connection = session.get_bind()
    seen: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith(("SAVEPOINT", "RELEASE", "ROLLBACK")):
            seen.append(statement)

    event.listen(connection, "before_cursor_execute", count)
    try:
        call()
    finally:
        event.remove(connection, "before_cursor_execute", count)
    return seen


def _today() -> date:
    return utcnow().astimezone(ZoneInfo(ZONE)).date()


def _at(day: date, hour: int = 9) -> datetime:
    return datetime.combine(day, time(hour), ZoneInfo(ZONE)).astimezone(UTC)


@pytest.fixture
def batched_inserts(engine):
    if engine.dialect.name != "postgresql":
        pytest.skip(BATCHED_INSERTS)


@pytest.fixture
def berlin(session):
    return make_clinic(session, time_zone=ZONE)


@pytest.fixture
def staff(session, settings, berlin):
    return make_user(session, settings, berlin)


def _fill_worklist(session: Session, staff: Any, clinic: Any, n: int) -> None:
    """n entries on each worklist section that plans feed, and n plans on no list at all."""
    today = _today()
    for _ in range(n):
        # checklists: not cleared, first dose in 5 days.
        make_plan(session, make_patient(session, clinic), staff, start_date=today + timedelta(5))
        # not_made_ready: cleared, still in screening.
        plan = make_plan(
            session, make_patient(session, clinic), staff, start_date=today + timedelta(7)
        )
        clear_checklist(session, plan, staff)
        # overdue_doses: ready, the first dose was due three days ago.
        make_plan(
            session,
            make_patient(session, clinic),
            staff,
            start_date=today - timedelta(3),
            cleared=True,
        )
        # readiness_open: ready and booked tomorrow, the infection check not answered.
        plan = make_plan(
            session,
            make_patient(session, clinic),
            staff,
            start_date=today + timedelta(1),
            cleared=True,
        )
        book_dose(session, plan.doses[0], _at(today + timedelta(1)))
        # On no list: ready, booked in three weeks, its infection check answered.
        plan = make_plan(
            session,
            make_patient(session, clinic),
            staff,
            start_date=today + timedelta(21),
            cleared=True,
        )
        book_dose(session, plan.doses[0], _at(today + timedelta(21)))
        answer_infection_check(session, plan.doses[0], staff)
        session.add(
            StaffAlert(
                clinic_id=clinic.id,
                patient_id=plan.patient_id,
                kind="lab_low",
                subject_type="lab_result",
                subject_id=1,
                details={},
            )
        )
    session.flush()


def test_the_worklist_costs_the_same_statements_for_a_bigger_clinic(
    client, session, headers, staff, berlin
):
    def worklist() -> dict[str, Any]:
        response = client.get("/api/v1/staff/worklist", headers=headers)
        assert response.status_code == 200
        return response.get_json()

    _fill_worklist(session, staff, berlin, 1)
    few = len(_statements(session, worklist))
    small = worklist()["counts"]
    _fill_worklist(session, staff, berlin, 3)
    many = len(_statements(session, worklist))
    counts = worklist()["counts"]
    # Every section fed by the plans above has more entries now.
    for section in ("checklists", "not_made_ready", "overdue_doses", "readiness_open", "alerts"):
        assert counts[section] > small[section] > 0, (section, small, counts)
    assert many == few
    assert few <= 10, few


def test_the_schedule_costs_the_same_statements_for_a_fuller_day(
    client, session, headers, staff, berlin
):
    day = _today() + timedelta(days=10)

    def add(n: int) -> None:
        for k in range(n):
            booked = make_plan(
                session, make_patient(session, berlin), staff, start_date=day, cleared=True
            )
            book_dose(session, booked.doses[0], _at(day, 8 + k % 8))
            make_plan(session, make_patient(session, berlin), staff, start_date=day)

    def schedule() -> dict[str, Any]:
        response = client.get(f"/api/v1/staff/schedule?date={day.isoformat()}", headers=headers)
        assert response.status_code == 200
        return response.get_json()

    add(1)
    statements = _statements(session, schedule)
    few = len(statements)
    add(4)
    many = len(_statements(session, schedule))
    body = schedule()
    assert (len(body["items"]), len(body["unbooked_due"])) == (5, 5)
    assert many == few
    assert few <= 5, few
    # The blocked plans' checklists are read from their rows, not worked out from their items.
    assert not any("FROM screening_item" in s for s in statements), statements


@pytest.mark.usefixtures("batched_inserts")
def test_creating_a_plan_costs_the_same_few_statements_whatever_its_doses(session, staff, berlin):
    start = _today() + timedelta(days=20)

    def create(regimen: str) -> tuple[int, int]:
        patient = make_patient(session, berlin)
        made: list[TreatmentPlan] = []

        def call() -> None:
            made.append(
                create_plan(
                    session,
                    actor_of(staff),
                    patient.id,
                    PlanRequest(regimen=regimen, start_date=start),
                )
            )
            session.flush()

        statements = _statements(session, call)
        return len(statements), len(made[0].doses)

    create("ocrelizumab-iv")  # the clinic is read once per request
    # Neither regimen reads the patient's reaction history (ocrelizumab's label does).
    few, few_doses = create("rituximab-iv")
    many, many_doses = create("ofatumumab-sc")
    assert many_doses > few_doses * 2
    assert many == few
    assert few <= 15, few


@pytest.mark.usefixtures("batched_inserts")
def test_one_screening_result_costs_the_same_statements_whatever_the_plan_holds(
    session, staff, berlin
):
    start = _today() + timedelta(days=20)

    def record(regimen: str) -> list[str]:
        plan = make_plan(session, make_patient(session, berlin), staff, start_date=start)
        session.expire_all()  # as in a request of its own
        item = next(i for i in plan.screening_items if i.code == "ig_quant")
        return _statements(
            session,
            lambda: record_screening_result(
                session, actor_of(staff), item, result="normal", result_date=_today()
            ),
        )

    few = record("ocrelizumab-iv")
    many = record("ofatumumab-sc")
    assert len(many) == len(few)
    assert len(few) <= 12, len(few)
    # Only the checklist's reminders are read again: not the doses', not the monitoring.
    reads = [s for s in few if s.startswith("SELECT")]
    assert not any("FROM monitoring_task" in s for s in reads), reads
    assert all("reminder.kind IN" in s for s in reads if "FROM reminder" in s), reads


def _nothing_left_to_derive(session: Session, plan: TreatmentPlan) -> None:
    counts = sync_plan_reminders(session, plan)
    assert (counts.added, counts.updated, counts.cancelled) == (0, 0, 0), counts


def test_a_result_or_an_override_leaves_the_reminders_a_full_derivation_would(
    session, staff, berlin
):
    plan = make_plan(
        session, make_patient(session, berlin), staff, start_date=_today() + timedelta(days=10)
    )
    stored = {r.kind for r in plan_reminders(session, plan)}
    assert "checklist_not_cleared" in stored
    actor = actor_of(staff)

    def result(code: str, value: str) -> None:
        item = next(i for i in plan.screening_items if i.code == code)
        record_screening_result(session, actor, item, result=value, result_date=_today())
        _nothing_left_to_derive(session, plan)

    result("ig_quant", "normal")  # one blocking item fewer
    result("hbsag", "negative")  # the hepatitis B pathway moves monitoring
    result("anti_hbc", "positive")  # ... and adds tests to it
    with pytest.raises(OverrideNotAllowed):  # the pathway's items only clear by their record
        override_screening(session, actor, plan.id, reason="Treat now, reviewed in clinic")
    result("anti_hbc", "negative")
    override_screening(session, actor, plan.id, reason="Treat now, reviewed in clinic")
    _nothing_left_to_derive(session, plan)
    assert plan.checklist.passes_gate
    assert all(
        r.status == "cancelled"
        for r in plan_reminders(session, plan)
        if r.kind == "checklist_not_cleared"
    )


def plan_reminders(session: Session, plan: TreatmentPlan) -> list[Reminder]:
    return list(session.scalars(select(Reminder).where(Reminder.plan_id == plan.id)))

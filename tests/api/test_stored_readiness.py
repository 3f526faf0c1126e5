"""Each open dose's readiness blocking items stored beside `ready`: every write through the API
leaves them equal to the readiness worked out from the dose's rows, and the worklist shows the
same doses whether the rows hold them or not (rows from before the column existed)."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

from sqlalchemy import select, update

from service.core.wall_clock import local_today, to_utc
from service.models import Dose, MonitoringTask, TreatmentPlan
from service.treatment.readiness import override_readiness, record_readiness_answer
from service.vocabulary import OPEN_DOSE_STATUSES
from tests.factories import (
    actor_of,
    answer_infection_check,
    book_dose,
    make_patient,
    sql_statements,
    start_plan,
)

ZONE = "Europe/Berlin"
REASON = "Assessed by phone this morning: no infection"


def _assert_stored_as_worked_out(session, plan_id: int) -> dict[int, list[dict[str, str]]]:
    """The blocking items each open dose's row holds, checked against the readiness worked
    out from the rows, read again from the database."""
    session.expire_all()
    stored = {
        dose_id: (ready, blocking)
        for dose_id, ready, blocking in session.execute(
            select(Dose.id, Dose.ready, Dose.readiness_blocking).where(
                Dose.plan_id == plan_id, Dose.status.in_(OPEN_DOSE_STATUSES)
            )
        )
    }
    plan = session.get_one(TreatmentPlan, plan_id)
    worked_out = {
        dose.id: (dose.readiness.ready, dose.readiness.blocking_items)
        for dose in plan.doses
        if dose.is_open
    }
    assert stored == worked_out
    return {dose_id: blocking for dose_id, (_, blocking) in stored.items()}


def _etag(client, url, headers):
    read = client.get(url, headers=headers)
    assert read.status_code == 200, read.get_json()
    return read.headers["ETag"]


def _answer(client, dose_id, result, headers):
    url = f"/api/v1/doses/{dose_id}/readiness/active_infection"
    body = {"result": result, "result_date": (local_today(ZONE) - timedelta(1)).isoformat()}
    etag = _etag(client, url, headers)
    response = client.put(url, json=body, headers={**headers, "If-Match": etag})
    assert response.status_code == 200, response.get_json()


def test_each_write_through_the_api_stores_the_readiness_it_leaves(
    client, session, headers, staff, clinic
):
    yesterday = local_today(ZONE) - timedelta(1)
    plan = start_plan(
        session, staff, make_patient(session, clinic), start_date=yesterday, cleared=True
    )
    first, second, maintenance = sorted(plan.doses, key=lambda d: d.sequence)[:3]
    pending = {"code": "active_infection", "outcome": "pending"}
    stored = _assert_stored_as_worked_out(session, plan.id)
    assert stored[first.id] == [pending]

    # Booking the second dose.
    url = f"/api/v1/doses/{second.id}"
    booked = client.patch(
        url,
        json={"appointment_at": to_utc(second.due_date, time(10), ZONE).isoformat()},
        headers={**headers, "If-Match": _etag(client, url, headers)},
    )
    assert booked.status_code == 200, booked.get_json()
    _assert_stored_as_worked_out(session, plan.id)

    # The pre-dose infection check: a reported infection blocks, a negative one clears.
    _answer(client, first.id, "positive", headers)
    stored = _assert_stored_as_worked_out(session, plan.id)
    assert stored[first.id] == [{"code": "active_infection", "outcome": "needs_review"}]
    _answer(client, first.id, "negative", headers)
    assert _assert_stored_as_worked_out(session, plan.id)[first.id] == []

    # A clinician's override makes the second dose ready; what blocks stays listed.
    signed = client.post(
        f"/api/v1/doses/{second.id}/readiness/override", json={"reason": REASON}, headers=headers
    )
    assert signed.status_code == 201, signed.get_json()
    assert _assert_stored_as_worked_out(session, plan.id)[second.id] == [pending]

    # The infusion is recorded; the doses still open keep theirs.
    given = client.post(
        f"/api/v1/doses/{first.id}/administration",
        json={
            "administered_at": to_utc(yesterday, time(10), ZONE).isoformat(),
            "amount_mg": first.amount_mg,
            "premedications": [
                {
                    "drug": "methylprednisolone",
                    "given_at": to_utc(yesterday, time(9, 30), ZONE).isoformat(),
                },
                {
                    "drug": "diphenhydramine",
                    "given_at": to_utc(yesterday, time(9, 15), ZONE).isoformat(),
                },
            ],
        },
        headers=headers,
    )
    assert given.status_code == 201, given.get_json()
    stored = _assert_stored_as_worked_out(session, plan.id)
    assert first.id not in stored

    # A low immunoglobulin result for the task before the maintenance course.
    task = session.scalars(
        select(MonitoringTask).where(
            MonitoringTask.dose_id == maintenance.id, MonitoringTask.kind == "ig_quant"
        )
    ).one()
    assert {"code": "ig_before_course", "outcome": "pending"} in stored[maintenance.id]
    lab = client.post(
        f"/api/v1/patients/{plan.patient_id}/labs",
        json={
            "code": "igg",
            "value": 5.9,
            "unit": "g/L",
            "ref_low": 7,
            "ref_high": 16,
            "taken_at": to_utc(yesterday, time(8), ZONE).isoformat(),
            "task_id": task.id,
        },
        headers=headers,
    )
    assert lab.status_code == 201, lab.get_json()
    stored = _assert_stored_as_worked_out(session, plan.id)
    assert {"code": "ig_before_course", "outcome": "needs_review"} in stored[maintenance.id]


def _doses_on_the_worklist(session, staff, clinic) -> dict[str, Any]:
    """First doses of the next days: left open, answered with an infection, overridden,
    answered, of a plan whose checklist is not cleared, and one not booked."""
    actor = actor_of(staff)
    tomorrow = local_today(ZONE) + timedelta(1)
    doses = {}
    for name in ("pending", "infection", "overridden", "answered", "unscreened"):
        plan = start_plan(
            session,
            staff,
            make_patient(session, clinic),
            start_date=tomorrow,
            cleared=name != "unscreened",
        )
        doses[name] = book_dose(
            session, plan.doses[0], to_utc(tomorrow, time(8 + len(doses)), ZONE)
        )
    plan = start_plan(
        session, staff, make_patient(session, clinic), start_date=tomorrow, cleared=True
    )
    doses["unbooked"] = plan.doses[0]
    yesterday = local_today(ZONE) - timedelta(1)
    record_readiness_answer(
        session,
        actor,
        doses["infection"].id,
        "active_infection",
        result="positive",
        result_date=yesterday,
    )
    override_readiness(session, actor, doses["overridden"].id, reason=REASON)
    answer_infection_check(session, doses["answered"], staff, on=yesterday)
    session.flush()
    return doses


def _forget(session, **columns: Any) -> None:
    """As rows from before the column existed."""
    session.execute(update(Dose.__table__).values(**columns))
    session.expire_all()


def _worklist(client, session, headers) -> tuple[bytes, list[str]]:
    """The worklist's body, and whether it loaded plans to show it."""
    with sql_statements(session) as statements:
        response = client.get("/api/v1/staff/worklist", headers=headers)
    assert response.status_code == 200, response.get_json()
    loads = [s for s in statements if s.lstrip().startswith("SELECT treatment_plan.")]
    return response.data, loads


def test_the_worklist_shows_the_same_readiness_whether_stored_or_not(
    client, session, headers, staff, clinic
):
    doses = _doses_on_the_worklist(session, staff, clinic)
    stored, loads = _worklist(client, session, headers)
    # Every candidate's readiness is stored: no plan is loaded to show it.
    assert loads == []
    entries = {
        e["dose"]["id"]: e["open_items"]
        for e in client.get("/api/v1/staff/worklist", headers=headers).get_json()["readiness_open"]
    }
    pending = {"code": "active_infection", "outcome": "pending"}
    assert entries == {
        doses["pending"].id: [pending],
        doses["infection"].id: [{"code": "active_infection", "outcome": "needs_review"}],
        doses["unscreened"].id: [pending, {"code": "screening_current", "outcome": "pending"}],
        doses["unbooked"].id: [pending],
    }

    _forget(session, readiness_blocking=None)
    fallback, loads = _worklist(client, session, headers)
    assert loads != []
    assert fallback == stored

    _forget(session, ready=None, readiness_blocking=None)
    assert _worklist(client, session, headers)[0] == stored


def test_a_change_every_open_dose_reads_stores_their_items_in_one_statement(session, staff, clinic):
    patient = make_patient(session, clinic, can_become_pregnant=False)
    plan = start_plan(session, staff, patient, regimen="ublituximab-iv")
    assert len([dose for dose in plan.doses if dose.is_open]) > 3
    with sql_statements(session) as statements:
        patient.can_become_pregnant = True
        session.flush()
    assert len([s for s in statements if s.startswith("UPDATE dose")]) == 1, statements
    stored = _assert_stored_as_worked_out(session, plan.id)
    pregnancy = {"code": "pregnancy", "outcome": "pending"}
    assert all(pregnancy in items for items in stored.values()), stored

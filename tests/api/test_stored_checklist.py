"""Each open plan's checklist state stored beside its gate: every write through the API leaves
it equal to the checklist worked out from the items, and the staff views show the same checklist
whether the plan's row holds it or not (rows from before the columns existed)."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

from sqlalchemy import select, update

from service.core.wall_clock import local_today, to_utc
from service.db import utcnow
from service.models import ScreeningOverride, TreatmentPlan
from service.models.plan import Checklist
from service.treatment.screening import override_screening, record_screening_result
from tests.factories import (
    NORMAL_LIVER_TESTS,
    actor_of,
    book_dose,
    clear_checklist,
    make_patient,
    sql_statements,
    start_plan,
)

ZONE = "Europe/Berlin"
REASON = "Immunology consulted: IgG acceptable to start"


def _stored(session, plan_id: int) -> tuple[Any, ...]:
    """The plan's row as the database holds it."""
    return session.execute(
        select(
            TreatmentPlan.checklist_outcome,
            TreatmentPlan.checklist_blocking,
            TreatmentPlan.checklist_overridden,
        ).where(TreatmentPlan.id == plan_id)
    ).one()


def _worked_out(session, plan_id: int) -> tuple[Any, ...]:
    """The checklist worked out from the plan's rows, read again from the database."""
    session.expire_all()
    checklist = Checklist.of(session.get_one(TreatmentPlan, plan_id))
    return checklist.outcome, checklist.blocking_items, checklist.override_in_effect


def _assert_stored_as_worked_out(session, plan_id: int) -> tuple[Any, ...]:
    stored = tuple(_stored(session, plan_id))
    assert stored == _worked_out(session, plan_id)
    return stored


def _put(client, plan_id, code, body, headers):
    url = f"/api/v1/plans/{plan_id}/screening/{code}"
    read = client.get(url, headers=headers)
    assert read.status_code == 200, read.get_json()
    response = client.put(url, json=body, headers={**headers, "If-Match": read.headers["ETag"]})
    assert response.status_code == 200, response.get_json()


def test_each_write_through_the_api_stores_the_checklist_it_leaves(
    client, session, headers, staff, clinic
):
    patient = make_patient(session, clinic)
    created = client.post(
        f"/api/v1/patients/{patient.id}/plans",
        json={
            "regimen": "ocrelizumab-iv",
            "start_date": (local_today(ZONE) + timedelta(10)).isoformat(),
        },
        headers=headers,
    )
    assert created.status_code == 201, created.get_json()
    plan_id = created.get_json()["id"]
    outcome, blocking, overridden = _assert_stored_as_worked_out(session, plan_id)
    assert (outcome, overridden) == ("pending", False)
    assert {"code": "hbsag", "outcome": "pending"} in blocking

    # Every required item gets a clearing result, one request each.
    recorded_on = (local_today(ZONE) - timedelta(2)).isoformat()
    plan = session.get_one(TreatmentPlan, plan_id)
    for item in plan.screening_items:
        rule = item.rule
        if not item.is_required or rule is None:
            continue
        if item.code == "lft":
            body: dict[str, Any] = {"result_date": recorded_on, "values": NORMAL_LIVER_TESTS}
        else:
            result = next(r for r in rule.allowed_results if rule.outcome_for(r) == "cleared")
            body = {"result": result, "result_date": recorded_on}
        _put(client, plan_id, item.code, body, headers)
    assert _assert_stored_as_worked_out(session, plan_id) == ("cleared", [], False)

    # A finding blocks; the clinician's override covers it.
    _put(client, plan_id, "ig_quant", {"result": "low", "result_date": recorded_on}, headers)
    finding = [{"code": "ig_quant", "outcome": "needs_review"}]
    assert _assert_stored_as_worked_out(session, plan_id) == ("needs_review", finding, False)
    override = client.post(
        f"/api/v1/plans/{plan_id}/screening/override", json={"reason": REASON}, headers=headers
    )
    assert override.status_code == 201, override.get_json()
    assert _assert_stored_as_worked_out(session, plan_id) == ("needs_review", finding, True)

    # The API has no way to revoke an override: the row is changed as a revoking write would.
    signed = session.scalars(
        select(ScreeningOverride).where(ScreeningOverride.plan_id == plan_id)
    ).one()
    signed.revoked_at = utcnow()
    session.flush()
    assert _assert_stored_as_worked_out(session, plan_id) == ("needs_review", finding, False)

    # Moving the first dose beyond the results' validity makes them pending again.
    first = min(session.get_one(TreatmentPlan, plan_id).doses, key=lambda d: d.sequence)
    url = f"/api/v1/doses/{first.id}"
    etag = client.get(url, headers=headers).headers["ETag"]
    moved = client.patch(
        url,
        json={"due_date": (local_today(ZONE) + timedelta(150)).isoformat()},
        headers={**headers, "If-Match": etag},
    )
    assert moved.status_code == 200, moved.get_json()
    outcome, blocking, overridden = _assert_stored_as_worked_out(session, plan_id)
    assert (outcome, overridden) == ("needs_review", False)
    assert {"code": "hbsag", "outcome": "pending"} in blocking


def test_a_write_that_leaves_the_checklist_as_it_was_leaves_the_plan_row_alone(
    session, staff, clinic
):
    plan = start_plan(session, staff, make_patient(session, clinic))
    stored, version = _stored(session, plan.id), plan.version
    item = plan.item("ig_quant")
    assert item is not None
    item.notes = "Sample sent to the reference lab"
    with sql_statements(session) as statements:
        session.flush()
    assert any(s.startswith("UPDATE screening_item") for s in statements), statements
    assert not any(s.startswith("UPDATE treatment_plan") for s in statements), statements
    assert (_stored(session, plan.id), plan.version) == (stored, version)


def _forget_stored_checklists(session) -> None:
    """As rows from before the columns existed."""
    session.execute(
        update(TreatmentPlan.__table__).values(
            checklist_outcome=None, checklist_blocking=None, checklist_overridden=None
        )
    )
    session.expire_all()


def _plans_on_the_staff_views(session, staff, clinic, day):
    """A blocked plan, one a covering override opens, one whose override a later finding no
    longer covers, and a cleared one, each with its first dose booked on `day`."""
    actor = actor_of(staff)
    plans = {}
    for name in ("pending", "overridden", "uncovered", "cleared"):
        plan = start_plan(session, staff, make_patient(session, clinic), start_date=day)
        book_dose(session, plan.doses[0], to_utc(day, time(8 + len(plans)), ZONE))
        plans[name] = plan
    for name in ("overridden", "uncovered", "cleared"):
        clear_checklist(session, plans[name], staff)
    for name in ("overridden", "uncovered"):
        item = plans[name].item("ig_quant")
        record_screening_result(
            session, actor, item, result="low", result_date=local_today(ZONE) - timedelta(1)
        )
        override_screening(session, actor, plans[name].id, reason=REASON)
    hbsag = plans["uncovered"].item("hbsag")
    record_screening_result(
        session, actor, hbsag, result="indeterminate", result_date=local_today(ZONE) - timedelta(1)
    )
    session.flush()
    return plans


def _get(client, headers, url):
    response = client.get(url, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response


def test_the_schedule_shows_the_same_checklists_whether_stored_or_not(
    client, session, headers, staff, clinic
):
    day = local_today(ZONE) + timedelta(5)
    plans = _plans_on_the_staff_views(session, staff, clinic, day)
    url = f"/api/v1/staff/schedule?date={day.isoformat()}"
    stored = _get(client, headers, url)
    screening = {i["plan"]["id"]: i["screening"] for i in stored.get_json()["items"]}
    assert screening[plans["pending"].id]["outcome"] == "pending"
    assert screening[plans["overridden"].id] == {
        "outcome": "needs_review",
        "blocking_items": [{"code": "ig_quant", "outcome": "needs_review"}],
        "overridden": True,
    }
    assert screening[plans["uncovered"].id]["overridden"] is False
    assert {"code": "hbsag", "outcome": "needs_review"} in screening[plans["uncovered"].id][
        "blocking_items"
    ]
    assert screening[plans["cleared"].id] == {
        "outcome": "cleared",
        "blocking_items": [],
        "overridden": False,
    }

    _forget_stored_checklists(session)
    assert _get(client, headers, url).data == stored.data


def test_the_worklist_shows_the_same_checklists_whether_stored_or_not(
    client, session, headers, staff, clinic
):
    plans = _plans_on_the_staff_views(session, staff, clinic, local_today(ZONE) + timedelta(5))
    stored = _get(client, headers, "/api/v1/staff/worklist")
    body = stored.get_json()
    blocked = {e["plan"]["id"]: e["outcome"] for e in body["checklists"]}
    assert blocked == {plans["pending"].id: "pending", plans["uncovered"].id: "needs_review"}
    not_ready = {e["plan"]["id"]: e["outcome"] for e in body["not_made_ready"]}
    assert not_ready == {plans["overridden"].id: "needs_review", plans["cleared"].id: "cleared"}

    _forget_stored_checklists(session)
    assert _get(client, headers, "/api/v1/staff/worklist").data == stored.data

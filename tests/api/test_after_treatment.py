"""Monitoring that outlives the plan, through the HTTP API: a plan on hold after a
life-threatening reaction is discontinued, its immunoglobulin monitoring stays due with its
reminders until a clinician ends it, and the reaction follows the patient to the next plan."""

from __future__ import annotations

from datetime import date, timedelta

from dateutil.relativedelta import relativedelta

from tests.api.test_doses import _doses, _give, at
from tests.factories import auth_headers, make_clinic, make_patient, make_plan, make_user

TODAY = date.today()
LIFE_THREATENING = {"grade": "life_threatening", "action": "stopped", "notes": "Anaphylaxis"}


def _patch_plan(client, plan_id, body, headers):
    url = f"/api/v1/plans/{plan_id}"
    etag = client.get(url, headers=headers).headers["ETag"]
    return client.patch(url, json=body, headers={**headers, "If-Match": etag})


def _stopped_after_reaction(client, session, settings):
    clinic = make_clinic(session, time_zone="Europe/Berlin")
    staff = make_user(session, settings, clinic, "clinician")
    patient = make_patient(session, clinic)
    start = TODAY - timedelta(days=30)
    plan = make_plan(session, patient, staff, start_date=start, cleared=True)
    headers = auth_headers(settings, staff)
    doses = _doses(client, plan.id, headers)
    reaction = {**LIFE_THREATENING, "onset_at": at(start, 10, 40)}
    given = _give(client, doses[0]["id"], headers, start, reaction=reaction)
    assert given.get_json()["plan_status"] == "on_hold"
    return patient, plan, headers, start


def test_a_plan_on_hold_after_a_life_threatening_reaction_can_be_discontinued(
    client, session, settings
):
    _, plan, headers, _ = _stopped_after_reaction(client, session, settings)
    response = _patch_plan(client, plan.id, {"status": "discontinued"}, headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["status"] == "discontinued"
    assert body["ended_on"] == TODAY.isoformat()
    assert [d["status"] for d in body["doses"]][1:] == ["cancelled"] * (len(body["doses"]) - 1)
    # Nothing else may happen to it: it stays discontinued.
    again = _patch_plan(client, plan.id, {"status": "active"}, headers)
    assert again.status_code == 409


def test_immunoglobulin_monitoring_and_its_reminders_continue_after_discontinuation(
    client, session, settings
):
    patient, plan, headers, start = _stopped_after_reaction(client, session, settings)
    body = _patch_plan(client, plan.id, {"status": "discontinued"}, headers).get_json()
    (follow_up,) = body["monitoring_after_treatment"]
    assert follow_up["kind"] == "ig_quant"
    assert follow_up["reason"] == "until_b_cell_repletion"
    assert follow_up["every_months"] == 6
    assert follow_up["last_dose_date"] == start.isoformat()
    due = (start + relativedelta(months=6)).isoformat()
    assert follow_up["next_due"] == due
    assert follow_up["source"]

    open_tasks = [t for t in body["monitoring"] if t["status"] in ("due", "overdue")]
    assert [(t["kind"], t["due_date"], t["after_treatment"]) for t in open_tasks] == [
        ("ig_quant", due, True)
    ]
    reminders = client.get(f"/api/v1/patients/{patient.id}/reminders", headers=headers)
    pending = [
        (r["kind"], r["audience"])
        for r in reminders.get_json()["items"]
        if r["status"] == "pending" and r["subject"]["type"] == "monitoring_task"
    ]
    assert sorted(pending) == [("labs_due", "patient"), ("monitoring_overdue", "staff")]
    assert not [
        r
        for r in reminders.get_json()["items"]
        if r["status"] == "pending" and r["subject"]["type"] == "dose"
    ]

    # The patient record says what is still monitored and why.
    record = client.get(f"/api/v1/patients/{patient.id}", headers=headers).get_json()
    (still,) = record["monitoring_after_treatment"]
    assert (still["plan_id"], still["kind"], still["reason"], still["next_due"]) == (
        plan.id,
        "ig_quant",
        "until_b_cell_repletion",
        due,
    )
    assert record["reaction_history"][0]["grade"] == "life_threatening"


def test_the_next_follow_up_task_comes_when_one_is_done_and_a_clinician_ends_it(
    client, session, settings
):
    patient, plan, headers, start = _stopped_after_reaction(client, session, settings)
    body = _patch_plan(client, plan.id, {"status": "discontinued"}, headers).get_json()
    task = next(t for t in body["monitoring"] if t["after_treatment"])
    url = f"/api/v1/monitoring/{task['id']}"
    etag = client.get(url, headers=headers).headers["ETag"]
    done = client.patch(url, json={"status": "done"}, headers={**headers, "If-Match": etag})
    assert done.status_code == 200
    plan_body = client.get(f"/api/v1/plans/{plan.id}", headers=headers).get_json()
    open_tasks = [t for t in plan_body["monitoring"] if t["status"] in ("due", "overdue")]
    assert [t["due_date"] for t in open_tasks] == [(start + relativedelta(months=12)).isoformat()]

    end_url = f"/api/v1/plans/{plan.id}/follow-ups/ig_quant/end"
    vague = client.post(end_url, json={"reason": "other"}, headers=headers)
    assert vague.status_code == 422
    assert "notes" in vague.get_json()["errors"]
    ended = client.post(end_url, json={"reason": "b_cell_repletion"}, headers=headers)
    assert ended.status_code == 200, ended.get_json()
    assert ended.get_json()["end_reason"] == "b_cell_repletion"
    assert (
        client.post(end_url, json={"reason": "b_cell_repletion"}, headers=headers).status_code
        == 409
    )

    plan_body = client.get(f"/api/v1/plans/{plan.id}", headers=headers).get_json()
    assert [t for t in plan_body["monitoring"] if t["status"] in ("due", "overdue")] == []
    assert [t["status"] for t in plan_body["monitoring"] if t["after_treatment"]] == ["done"]
    record = client.get(f"/api/v1/patients/{patient.id}", headers=headers).get_json()
    assert record["monitoring_after_treatment"] == []
    reminders = client.get(f"/api/v1/patients/{patient.id}/reminders", headers=headers)
    assert not [r for r in reminders.get_json()["items"] if r["status"] == "pending"]


def test_a_plan_stopped_before_any_dose_leaves_nothing_to_monitor(client, session, settings):
    clinic = make_clinic(session)
    staff = make_user(session, settings, clinic, "clinician")
    plan = make_plan(session, make_patient(session, clinic), staff, start_date=TODAY)
    headers = auth_headers(settings, staff)
    body = _patch_plan(client, plan.id, {"status": "discontinued"}, headers).get_json()
    assert body["monitoring_after_treatment"] == []
    assert [t for t in body["monitoring"] if t["status"] in ("due", "overdue")] == []


def test_a_switch_after_a_life_threatening_reaction(client, session, settings):
    patient, plan, headers, _ = _stopped_after_reaction(client, session, settings)
    url = f"/api/v1/patients/{patient.id}/plans"
    start = (TODAY + timedelta(days=7)).isoformat()
    still_open = client.post(
        url, json={"regimen": "ofatumumab-sc", "start_date": start}, headers=headers
    )
    assert still_open.status_code == 409
    assert still_open.get_json()["code"] == "already_exists"
    _patch_plan(client, plan.id, {"status": "discontinued"}, headers)

    for regimen in ("ocrelizumab-iv", "ocrelizumab-sc"):
        refused = client.post(url, json={"regimen": regimen, "start_date": start}, headers=headers)
        assert refused.status_code == 409, regimen
        problem = refused.get_json()
        assert problem["code"] == "contraindicated"
        assert problem["contraindication"] == "life_threatening_infusion_reaction"
        assert problem["history"][0]["plan_id"] == plan.id

    switched = client.post(
        url, json={"regimen": "ofatumumab-sc", "start_date": start}, headers=headers
    )
    assert switched.status_code == 201, switched.get_json()
    history = switched.get_json()["patient_history"]
    assert [(h["plan_id"], h["drug"], h["grade"]) for h in history] == [
        (plan.id, "ocrelizumab", "life_threatening")
    ]
    # The old plan's Ig monitoring goes on beside the new plan.
    record = client.get(f"/api/v1/patients/{patient.id}", headers=headers).get_json()
    assert [f["plan_id"] for f in record["monitoring_after_treatment"]] == [plan.id]

"""Screening results have an age (issue 7, item 3), through the HTTP API: a result older than its
validity on the first dose's day no longer clears, moving the first dose re-checks, vaccines
count by their date, and no result may be dated after the dose it clears."""

from __future__ import annotations

from datetime import date, timedelta

from tests.factories import auth_headers, clear_checklist, make_clinic, make_patient, make_user

TODAY = date.today()
RESULTS_ON = TODAY - timedelta(days=2)  # the day clear_checklist dates its results


def _world(client, session, settings, *, start):
    clinic = make_clinic(session)
    staff = make_user(session, settings, clinic, "clinician")
    patient = make_patient(session, clinic)
    headers = auth_headers(settings, staff)
    created = client.post(
        f"/api/v1/patients/{patient.id}/plans",
        json={"regimen": "ocrelizumab-iv", "start_date": start.isoformat()},
        headers=headers,
    )
    assert created.status_code == 201, created.get_json()
    from service.models import TreatmentPlan

    plan = session.get(TreatmentPlan, created.get_json()["id"])
    return staff, plan, headers


def _patch_plan(client, plan_id, body, headers):
    url = f"/api/v1/plans/{plan_id}"
    etag = client.get(url, headers=headers).headers["ETag"]
    return client.patch(url, json=body, headers={**headers, "If-Match": etag})


def _put(client, plan_id, code, body, headers):
    url = f"/api/v1/plans/{plan_id}/screening/{code}"
    etag = client.get(url, headers=headers).headers["ETag"]
    return client.put(url, json=body, headers={**headers, "If-Match": etag})


def _checklist(client, plan_id, headers):
    response = client.get(f"/api/v1/plans/{plan_id}/screening", headers=headers)
    assert response.status_code == 200
    return response.get_json()


def _item(checklist, code):
    return next(item for item in checklist["items"] if item["code"] == code)


def test_hbsag_result_expires_when_the_first_dose_moves_beyond_its_validity(
    client, session, settings
):
    staff, plan, headers = _world(client, session, settings, start=TODAY + timedelta(days=10))
    clear_checklist(session, plan, staff)
    checklist = _checklist(client, plan.id, headers)
    assert checklist["outcome"] == "cleared"
    hbsag = _item(checklist, "hbsag")
    # The catalog's default (a clinic setting: no source states one) is 90 days.
    assert hbsag["validity_days"] == 90
    assert hbsag["valid_until"] == (RESULTS_ON + timedelta(days=90)).isoformat()

    # The first dose moves to the last day the results are current: still cleared.
    last_day = RESULTS_ON + timedelta(days=90)
    assert (
        _patch_plan(client, plan.id, {"start_date": last_day.isoformat()}, headers).status_code
        == 200
    )
    assert _checklist(client, plan.id, headers)["outcome"] == "cleared"

    # One day later the HBsAg result (and the others of that day) no longer clears.
    later = last_day + timedelta(days=1)
    moved = _patch_plan(client, plan.id, {"start_date": later.isoformat()}, headers)
    assert moved.status_code == 200, moved.get_json()
    checklist = _checklist(client, plan.id, headers)
    assert checklist["outcome"] == "pending"
    assert {"code": "hbsag", "outcome": "pending"} in checklist["blocking_items"]
    hbsag = _item(checklist, "hbsag")
    assert (hbsag["status"], hbsag["outcome"], hbsag["result"]) == (
        "expired",
        "pending",
        "negative",
    )
    assert "90 days" in hbsag["reason"]
    assert later.isoformat() in hbsag["reason"]
    # The first dose's readiness says the screening is no longer current.
    first = client.get(f"/api/v1/plans/{plan.id}", headers=headers).get_json()["doses"][0]
    current = next(i for i in first["readiness"]["items"] if i["code"] == "screening_current")
    assert current["outcome"] == "pending"
    # The plan cannot become ready on an expired result.
    refused = _patch_plan(client, plan.id, {"status": "ready"}, headers)
    assert refused.status_code == 409
    assert refused.get_json()["code"] == "screening_not_cleared"

    # A new HBsAg result clears the item again (the other results of that day too are renewed).
    again = _put(
        client, plan.id, "hbsag", {"result": "negative", "result_date": TODAY.isoformat()}, headers
    )
    assert again.status_code == 200, again.get_json()
    assert again.get_json()["status"] == "done"
    assert again.get_json()["outcome"] == "cleared"


def test_moving_the_first_dose_itself_rechecks(client, session, settings):
    staff, plan, headers = _world(client, session, settings, start=TODAY + timedelta(days=10))
    clear_checklist(session, plan, staff)
    first = plan.doses[0]
    url = f"/api/v1/doses/{first.id}"
    etag = client.get(url, headers=headers).headers["ETag"]
    later = RESULTS_ON + timedelta(days=120)
    moved = client.patch(
        url, json={"due_date": later.isoformat()}, headers={**headers, "If-Match": etag}
    )
    assert moved.status_code == 200, moved.get_json()
    checklist = _checklist(client, plan.id, headers)
    assert checklist["outcome"] == "pending"
    assert _item(checklist, "hbsag")["status"] == "expired"


def test_a_result_cannot_be_dated_after_the_dose_it_clears(client, session, settings):
    _, plan, headers = _world(client, session, settings, start=TODAY - timedelta(days=3))
    late = _put(
        client,
        plan.id,
        "hbsag",
        {"result": "negative", "result_date": (TODAY - timedelta(days=1)).isoformat()},
        headers,
    )
    assert late.status_code == 422
    assert late.content_type == "application/problem+json"
    message = late.get_json()["errors"]["result_date"][0]
    assert (TODAY - timedelta(days=3)).isoformat() in message
    on_the_day = _put(
        client,
        plan.id,
        "hbsag",
        {"result": "negative", "result_date": (TODAY - timedelta(days=3)).isoformat()},
        headers,
    )
    assert on_the_day.status_code == 200


def test_live_vaccines_clear_only_four_weeks_before_the_first_dose(client, session, settings):
    given = TODAY - timedelta(days=1)
    _, plan, headers = _world(client, session, settings, start=given + timedelta(days=20))
    body = {"result": "done", "result_date": given.isoformat(), "notes": "MMR"}
    recorded = _put(client, plan.id, "vaccines_live", body, headers)
    assert recorded.status_code == 200, recorded.get_json()
    item = recorded.get_json()
    assert item["outcome"] == "needs_review"
    assert "20 days" in item["reason"]
    assert item["overridable"] is True

    # The first dose moves to 28 days after the vaccine: the window holds.
    start = given + timedelta(days=28)
    assert (
        _patch_plan(client, plan.id, {"start_date": start.isoformat()}, headers).status_code == 200
    )
    item = _item(_checklist(client, plan.id, headers), "vaccines_live")
    assert (item["outcome"], item["reason"]) == ("cleared", None)
    # And back to 27 days: needs review again.
    earlier = given + timedelta(days=27)
    assert (
        _patch_plan(client, plan.id, {"start_date": earlier.isoformat()}, headers).status_code
        == 200
    )
    assert _item(_checklist(client, plan.id, headers), "vaccines_live")["outcome"] == "needs_review"

    # "No live vaccine" is a statement, not a date to count from: it clears.
    none = _put(
        client,
        plan.id,
        "vaccines_live",
        {"result": "negative", "result_date": given.isoformat()},
        headers,
    )
    assert none.get_json()["outcome"] == "cleared"


def test_non_live_vaccines_inside_two_weeks_only_warn(client, session, settings):
    given = TODAY - timedelta(days=1)
    _, plan, headers = _world(client, session, settings, start=given + timedelta(days=5))
    body = {"result": "done", "result_date": given.isoformat()}
    item = _put(client, plan.id, "vaccines_nonlive", body, headers).get_json()
    # The label says "whenever possible": advisory, never blocking.
    assert item["outcome"] == "cleared"
    assert "5 days" in item["warning"]
    checklist = _checklist(client, plan.id, headers)
    assert "vaccines_nonlive" not in {b["code"] for b in checklist["blocking_items"]}
    assert (
        _patch_plan(
            client, plan.id, {"start_date": (given + timedelta(days=14)).isoformat()}, headers
        ).status_code
        == 200
    )
    assert _item(_checklist(client, plan.id, headers), "vaccines_nonlive")["warning"] is None


def test_a_result_that_blocks_keeps_blocking_however_old(client, session, settings):
    staff, plan, headers = _world(client, session, settings, start=TODAY + timedelta(days=10))
    clear_checklist(session, plan, staff)
    body = {"result": "positive", "result_date": RESULTS_ON.isoformat()}
    assert _put(client, plan.id, "tb_igra", body, headers).status_code == 200
    assert _put(client, plan.id, "anti_hbc", body, headers).status_code == 200
    later = RESULTS_ON + timedelta(days=200)
    assert (
        _patch_plan(client, plan.id, {"start_date": later.isoformat()}, headers).status_code == 200
    )
    checklist = _checklist(client, plan.id, headers)
    assert _item(checklist, "tb_igra")["outcome"] == "needs_review"
    anti_hbc = _item(checklist, "anti_hbc")
    assert (anti_hbc["outcome"], anti_hbc["valid_until"]) == ("needs_review", None)
    assert _item(checklist, "hbsag")["status"] == "expired"

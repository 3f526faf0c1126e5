"""Writing from a list: each writable item in a list carries its `version` and the `etag` to
send in If-Match, so a client changes it without reading it first; a stale one is 412."""

from __future__ import annotations

from datetime import date, timedelta

API = "/api/v1"


def _write(client, method, url, body, headers, etag):
    return client.open(url, method=method, json=body, headers={**headers, "If-Match": etag})


def _write_twice(client, method, url, body, headers, etag):
    """The item's list etag works once; after the change it is stale."""
    first = _write(client, method, url, body, headers, etag)
    assert first.status_code == 200, first.get_json()
    again = _write(client, method, url, body, headers, etag)
    assert again.status_code == 412
    assert again.get_json()["code"] == "stale_version"
    return first


def test_doses_from_the_dose_list_and_the_plan_body(client, app_user):
    staff, plan = app_user["staff"], app_user["plan"]
    listed = client.get(f"{API}/plans/{plan.id}/doses", headers=staff).get_json()["items"]
    in_plan = client.get(f"{API}/plans/{plan.id}", headers=staff).get_json()["doses"]
    mine = client.get(f"{API}/me/plans", headers=app_user["me"]).get_json()["items"][0]["doses"]
    first = listed[0]
    assert first["version"] == 1
    assert first["etag"] == in_plan[0]["etag"] == mine[0]["etag"]
    assert len({d["etag"] for d in listed}) == len(listed)

    changed = _write_twice(
        client, "PATCH", f"{API}/doses/{first['id']}", {"location": "Chair 4"}, staff, first["etag"]
    )

    assert changed.get_json()["version"] == 2
    assert changed.get_json()["etag"] != first["etag"]
    # The new etag, from the answer, is the one that works now.
    assert (
        _write(
            client,
            "PATCH",
            f"{API}/doses/{first['id']}",
            {"location": "Chair 5"},
            staff,
            changed.get_json()["etag"],
        ).status_code
        == 200
    )


def test_checklist_items_from_the_checklist(client, app_user):
    staff, plan = app_user["staff"], app_user["plan"]
    items = client.get(f"{API}/plans/{plan.id}/screening", headers=staff).get_json()["items"]
    hbsag = next(i for i in items if i["code"] == "hbsag")
    assert hbsag["version"] == 1

    recorded = _write_twice(
        client,
        "PUT",
        f"{API}/plans/{plan.id}/screening/hbsag",
        {"result": "negative", "result_date": date.today().isoformat()},
        staff,
        hbsag["etag"],
    )

    assert recorded.get_json()["version"] == 2


def test_readiness_items_from_the_dose_readiness_and_the_dose(client, app_user):
    staff, plan = app_user["staff"], app_user["plan"]
    dose = client.get(f"{API}/plans/{plan.id}/doses", headers=staff).get_json()["items"][0]
    items = client.get(f"{API}/doses/{dose['id']}/readiness", headers=staff).get_json()["items"]
    infection = next(i for i in items if i["code"] == "active_infection")
    assert infection["version"] is None  # nothing recorded yet
    in_dose = next(i for i in dose["readiness"]["items"] if i["code"] == "active_infection")
    url = f"{API}/doses/{dose['id']}/readiness/active_infection"
    # The list's etag is the ETag a GET of the item answers.
    assert infection["etag"] == in_dose["etag"] == client.get(url, headers=staff).headers["ETag"]
    assert len({i["etag"] for i in items}) == len(items)

    answer = {"result": "negative", "result_date": date.today().isoformat()}
    answered = _write_twice(client, "PUT", url, answer, staff, infection["etag"]).get_json()

    assert answered["version"] == 1
    assert answered["etag"] != infection["etag"]
    after = client.get(url, headers=staff)
    assert after.headers["ETag"] == answered["etag"] == after.get_json()["etag"]
    again = {"result": "positive", "result_date": date.today().isoformat()}
    assert _write(client, "PUT", url, again, staff, answered["etag"]).status_code == 200


def test_monitoring_tasks_and_plans_and_patients_from_their_lists(client, app_user):
    staff, plan, patient = app_user["staff"], app_user["plan"], app_user["patient"]
    task = client.get(f"{API}/plans/{plan.id}/monitoring", headers=staff).get_json()["items"][0]
    _write_twice(
        client,
        "PATCH",
        f"{API}/monitoring/{task['id']}",
        {"notes": "by phone"},
        staff,
        task["etag"],
    )

    listed_plan = client.get(f"{API}/patients/{patient.id}/plans", headers=staff).get_json()
    _write_twice(
        client,
        "PATCH",
        f"{API}/plans/{plan.id}",
        {"notes": "Premedicate early"},
        staff,
        listed_plan["items"][0]["etag"],
    )

    listed_patient = client.get(f"{API}/patients", headers=staff).get_json()["items"][0]
    assert listed_patient["version"] == patient.version
    _write_twice(
        client,
        "PATCH",
        f"{API}/patients/{patient.id}",
        {"phone": "+47 555 0101"},
        staff,
        listed_patient["etag"],
    )


def test_an_etag_of_another_row_is_no_match(client, app_user):
    staff, plan = app_user["staff"], app_user["plan"]
    doses = client.get(f"{API}/plans/{plan.id}/doses", headers=staff).get_json()["items"]
    wrong = _write(
        client, "PATCH", f"{API}/doses/{doses[0]['id']}", {"location": "X"}, staff, doses[1]["etag"]
    )
    assert wrong.status_code == 412


def test_a_preview_has_no_etags(client, app_user):
    body = {
        "regimen": "ocrelizumab-iv",
        "start_date": (date.today() + timedelta(days=60)).isoformat(),
    }
    for url in ("plans?preview=true", "plans/preview"):
        preview = client.post(
            f"{API}/patients/{app_user['patient'].id}/{url}", json=body, headers=app_user["staff"]
        )
        assert preview.status_code == 200, preview.get_json()
        assert preview.get_json()["etag"] is None
        assert {d["etag"] for d in preview.get_json()["doses"]} == {None}
        readiness = [i for d in preview.get_json()["doses"] for i in d["readiness"]["items"]]
        assert readiness
        assert {i["etag"] for i in readiness} == {None}

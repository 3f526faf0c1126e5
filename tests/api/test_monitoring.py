"""Monitoring tasks through the HTTP API: listing, ETags, completing and waiving, access."""

from __future__ import annotations

from datetime import date

import pytest

from tests.factories import (
    FIRST_DOSE,
    auth_headers,
    make_clinic,
    make_patient,
    make_user,
    start_plan,
)


@pytest.fixture
def plan(session, staff, clinic):
    return start_plan(session, staff, make_patient(session, clinic), start_date=date(2027, 1, 4))


def _task(client, headers, plan, kind):
    items = client.get(f"/api/v1/plans/{plan.id}/monitoring", headers=headers).get_json()["items"]
    return next(item for item in items if item["kind"] == kind)


def test_new_plan_lists_its_monitoring(client, headers, plan):
    response = client.get(f"/api/v1/plans/{plan.id}/monitoring", headers=headers)
    assert response.status_code == 200
    body = response.get_json()
    # Issue 8 adds the blood count with differential at baseline and every 6 months.
    assert body["total"] == 6
    assert [(t["kind"], t["due_date"], t["status"]) for t in body["items"]] == [
        ("cbc", "2027-01-04", "due"),
        ("ig_quant", "2027-06-20", "due"),
        ("cbc", "2027-07-04", "due"),
        ("mri", "2027-07-04", "due"),
        ("ig_quant", "2027-12-21", "due"),
        ("cbc", "2028-01-04", "due"),
    ]
    ig = body["items"][1]
    assert ig["dose_id"] is not None
    assert ig["patient_id"] == plan.patient_id

    filtered = client.get(f"/api/v1/plans/{plan.id}/monitoring?status=done", headers=headers)
    assert filtered.get_json()["total"] == 0
    paged = client.get(f"/api/v1/plans/{plan.id}/monitoring?page_size=1&page=4", headers=headers)
    assert paged.get_json()["items"][0]["kind"] == "mri"


def test_complete_task_with_etag(client, headers, plan):
    task = _task(client, headers, plan, "mri")
    url = f"/api/v1/monitoring/{task['id']}"
    read = client.get(url, headers=headers)
    etag = read.headers["ETag"]

    assert client.patch(url, json={"status": "done"}, headers=headers).status_code == 428
    done = client.patch(url, json={"status": "done"}, headers={**headers, "If-Match": etag})
    assert done.status_code == 200, done.get_json()
    assert done.get_json()["status"] == "done"
    assert done.get_json()["done_at"]
    assert done.headers["ETag"] != etag

    stale = client.patch(url, json={"notes": "x"}, headers={**headers, "If-Match": etag})
    assert stale.status_code == 412
    assert stale.get_json()["code"] == "stale_version"

    again = client.patch(
        url, json={"status": "done"}, headers={**headers, "If-Match": done.headers["ETag"]}
    )
    assert again.status_code == 409
    assert again.get_json()["code"] == "invalid_transition"


def test_waiving_needs_a_reason(client, headers, session, staff, clinic):
    # Reopened, a task still ahead is due again (one already past would be overdue).
    plan = start_plan(session, staff, make_patient(session, clinic), start_date=FIRST_DOSE)
    task = _task(client, headers, plan, "ig_quant")
    url = f"/api/v1/monitoring/{task['id']}"
    etag = client.get(url, headers=headers).headers["ETag"]

    refused = client.patch(url, json={"status": "waived"}, headers={**headers, "If-Match": etag})
    assert refused.status_code == 422
    assert refused.content_type == "application/problem+json"
    assert "notes" in refused.get_json()["errors"]
    blank = client.patch(
        url, json={"status": "waived", "notes": "  "}, headers={**headers, "If-Match": etag}
    )
    assert blank.status_code == 422

    waived = client.patch(
        url,
        json={"status": "waived", "notes": "Tested at the referring hospital"},
        headers={**headers, "If-Match": etag},
    )
    assert waived.status_code == 200, waived.get_json()
    assert waived.get_json()["status"] == "waived"

    reopened = client.patch(
        url, json={"status": "due"}, headers={**headers, "If-Match": waived.headers["ETag"]}
    )
    assert reopened.status_code == 200
    assert reopened.get_json()["status"] == "due"
    assert reopened.get_json()["done_at"] is None


def test_moving_a_task_date(client, headers, plan):
    task = _task(client, headers, plan, "mri")
    url = f"/api/v1/monitoring/{task['id']}"
    etag = client.get(url, headers=headers).headers["ETag"]
    moved = client.patch(
        url, json={"due_date": "2027-08-01"}, headers={**headers, "If-Match": etag}
    )
    assert moved.status_code == 200
    assert (moved.get_json()["due_date"], moved.get_json()["rule_date"]) == (
        "2027-08-01",
        "2027-07-04",
    )


def test_bad_patch_bodies_are_422(client, headers, plan):
    task = _task(client, headers, plan, "mri")
    url = f"/api/v1/monitoring/{task['id']}"
    etag = client.get(url, headers=headers).headers["ETag"]
    for body in (
        {"status": "overdue"},
        {"due_date": "next week"},
        {"lab_result_id": "12"},
        {"kind": "cbc"},
        {},
        {"lab_result_id": 999999},
    ):
        response = client.patch(url, json=body, headers={**headers, "If-Match": etag})
        assert response.status_code == 422, body
        assert response.content_type == "application/problem+json"
    assert client.get(url, headers=headers).headers["ETag"] == etag


def test_patient_reads_own_tasks_but_cannot_change_them(client, session, settings, clinic, plan):
    patient_user = make_user(session, settings, clinic, "patient", patient=plan.patient)
    mine = auth_headers(settings, patient_user)
    listed = client.get(f"/api/v1/plans/{plan.id}/monitoring", headers=mine)
    assert listed.status_code == 200
    task = listed.get_json()["items"][0]
    url = f"/api/v1/monitoring/{task['id']}"
    read = client.get(url, headers=mine)
    assert read.status_code == 200
    refused = client.patch(
        url, json={"status": "done"}, headers={**mine, "If-Match": read.headers["ETag"]}
    )
    assert refused.status_code == 403

    other = make_user(session, settings, clinic, "patient", patient=make_patient(session, clinic))
    theirs = auth_headers(settings, other)
    assert client.get(url, headers=theirs).status_code == 404
    assert client.get(f"/api/v1/plans/{plan.id}/monitoring", headers=theirs).status_code == 404


def test_other_clinic_cannot_see_tasks(client, session, settings, headers, plan):
    task = _task(client, headers, plan, "mri")
    outsider = auth_headers(settings, make_user(session, settings, make_clinic(session)))
    assert client.get(f"/api/v1/monitoring/{task['id']}", headers=outsider).status_code == 404
    assert client.get(f"/api/v1/plans/{plan.id}/monitoring", headers=outsider).status_code == 404
    patched = client.patch(
        f"/api/v1/monitoring/{task['id']}",
        json={"status": "done"},
        headers={**outsider, "If-Match": '"x"'},
    )
    assert patched.status_code == 404
    assert client.get("/api/v1/monitoring/999999", headers=headers).status_code == 404
    assert client.get(f"/api/v1/plans/{plan.id}/monitoring").status_code == 401


def test_linking_a_recorded_lab_completes_the_task(client, headers, plan):
    lab = client.post(
        f"/api/v1/patients/{plan.patient_id}/labs",
        json={"code": "igm", "value": 0.8, "unit": "g/L", "taken_at": "2026-06-01T09:00:00Z"},
        headers=headers,
    ).get_json()
    first, second = (
        t
        for t in client.get(f"/api/v1/plans/{plan.id}/monitoring", headers=headers).get_json()[
            "items"
        ]
        if t["kind"] == "ig_quant"
    )
    url = f"/api/v1/monitoring/{first['id']}"
    etag = client.get(url, headers=headers).headers["ETag"]
    linked = client.patch(
        url, json={"lab_result_id": lab["id"]}, headers={**headers, "If-Match": etag}
    )
    assert linked.status_code == 200, linked.get_json()
    assert (linked.get_json()["status"], linked.get_json()["lab_result_id"]) == ("done", lab["id"])

    url2 = f"/api/v1/monitoring/{second['id']}"
    etag2 = client.get(url2, headers=headers).headers["ETag"]
    twice = client.patch(
        url2,
        json={"status": "done", "lab_result_id": lab["id"]},
        headers={**headers, "If-Match": etag2},
    )
    assert twice.status_code == 422
    assert "lab_result_id" in twice.get_json()["errors"]

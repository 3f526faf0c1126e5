"""Liver tests before starting (issue 8, item 3) through the HTTP API: values with units and
ranges, abnormal needs review and alerts staff, required by label or by a clinic setting."""

from __future__ import annotations

import copy
from datetime import date, timedelta

import pytest

from tests.factories import (
    NORMAL_LIVER_TESTS,
    auth_headers,
    make_clinic,
    make_patient,
    make_plan,
    make_user,
)

BEFORE = (date.today() - timedelta(days=2)).isoformat()


def _world(session, settings, regimen="ocrelizumab-iv", options=None):
    clinic = make_clinic(session)
    staff = make_user(session, settings, clinic, "clinician")
    patient = make_patient(session, clinic)
    plan = make_plan(
        session,
        patient,
        staff,
        regimen=regimen,
        start_date=date.today() + timedelta(days=14),
        settings=options,
    )
    return plan, auth_headers(settings, staff)


def _put(client, plan_id, body, headers):
    url = f"/api/v1/plans/{plan_id}/screening/lft"
    etag = client.get(url, headers=headers).headers["ETag"]
    return client.put(url, json=body, headers={**headers, "If-Match": etag})


def _values(**changes):
    values = copy.deepcopy(NORMAL_LIVER_TESTS)
    for entry in values:
        entry.update(changes.get(entry["code"], {}))
    return values


def test_normal_values_clear_and_are_shown_with_their_flags(client, session, settings):
    plan, headers = _world(session, settings)
    response = _put(client, plan.id, {"result_date": BEFORE, "values": _values()}, headers)
    assert response.status_code == 200, response.get_json()
    item = response.get_json()
    assert (item["result"], item["outcome"]) == ("normal", "cleared")
    assert [v["code"] for v in item["values"]] == ["alt", "ast", "alp", "bilirubin"]
    assert {v["flag"] for v in item["values"]} == {"normal"}
    assert item["values"][3]["unit"] == "umol/L"


def test_an_abnormal_liver_test_is_recorded_needs_review_and_alerts_staff(
    client, session, settings
):
    plan, headers = _world(session, settings)
    values = _values(alt={"value": 180})
    response = _put(client, plan.id, {"result_date": BEFORE, "values": values}, headers)
    assert response.status_code == 200, response.get_json()
    item = response.get_json()
    assert (item["result"], item["outcome"]) == ("abnormal", "needs_review")
    assert item["values"][0]["flag"] == "high"
    checklist = client.get(f"/api/v1/plans/{plan.id}/screening", headers=headers).get_json()
    assert {"code": "lft", "outcome": "needs_review"} in checklist["blocking_items"]
    alerts = client.get("/api/v1/staff/worklist", headers=headers).get_json()["alerts"]
    assert [(a["kind"], a["details"]) for a in alerts] == [("lft_abnormal", {"codes": ["alt"]})]
    # A result that contradicts the values is refused.
    contradicts = _put(
        client, plan.id, {"result": "normal", "result_date": BEFORE, "values": values}, headers
    )
    assert contradicts.status_code == 422
    assert "result" in contradicts.get_json()["errors"]


@pytest.mark.parametrize(
    ("values", "field"),
    [
        (None, "values"),
        (_values()[:3], "values"),
        (_values(alt={"unit": "mmol/L"}), "values.0.unit"),
        (_values(ast={"ref_low": None, "ref_high": None}), "values.1.ref_high"),
        (_values(alp={"ref_low": 200, "ref_high": 100}), "values.2.ref_low"),
    ],
)
def test_liver_tests_need_all_four_values_with_units_and_ranges(
    client, session, settings, values, field
):
    plan, headers = _world(session, settings)
    body = {"result": "normal", "result_date": BEFORE}
    if values is not None:
        body["values"] = values
    response = _put(client, plan.id, body, headers)
    assert response.status_code == 422
    assert field in response.get_json()["errors"]


@pytest.mark.parametrize(
    ("regimen", "required"),
    [
        ("ocrelizumab-iv", True),
        ("ublituximab-iv", True),
        ("ocrelizumab-sc", True),  # clinic setting lft_before_start, default "required"
        ("ofatumumab-sc", True),
        ("rituximab-iv", False),
    ],
)
def test_who_must_have_liver_tests(client, session, settings, regimen, required):
    plan, headers = _world(session, settings, regimen=regimen)
    item = client.get(f"/api/v1/plans/{plan.id}/screening/lft", headers=headers).get_json()
    assert item["required"] is required


def test_a_clinic_may_make_them_optional_where_the_label_is_unconfirmed(client, session, settings):
    plan, headers = _world(
        session, settings, regimen="ofatumumab-sc", options={"lft_before_start": "optional"}
    )
    item = client.get(f"/api/v1/plans/{plan.id}/screening/lft", headers=headers).get_json()
    assert item["required"] is False
    checklist = client.get(f"/api/v1/plans/{plan.id}/screening", headers=headers).get_json()
    assert "lft" not in {b["code"] for b in checklist["blocking_items"]}

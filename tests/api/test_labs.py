"""Lab results through the HTTP API: flags and ranges, alerts, tasks, validation, access."""

from __future__ import annotations

from datetime import date

import pytest

from tests.factories import auth_headers, make_clinic, make_patient, make_user, start_plan

IGG = {"code": "igg", "value": 5.9, "unit": "g/L", "taken_at": "2026-06-18T08:30:00+02:00"}


@pytest.fixture
def patient(session, clinic):
    return make_patient(session, clinic)


def _url(patient):
    return f"/api/v1/patients/{patient.id}/labs"


def test_low_igg_uses_the_cited_default_and_alerts_staff(client, headers, patient):
    created = client.post(_url(patient), json=IGG, headers=headers)
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert (body["flag"], body["range_source"], body["ref_low"]) == ("low", "default", 6.7)
    assert "Hallberg" in body["range_reference"]
    assert "Research definition" in body["range_reference"]
    assert body["taken_at"].startswith("2026-06-18T06:30:00")

    worklist = client.get("/api/v1/staff/worklist", headers=headers).get_json()
    (alert,) = worklist["alerts"]
    assert alert["kind"] == "lab_low"
    assert alert["patient"]["id"] == patient.id
    assert alert["subject"] == {"type": "lab_result", "id": body["id"]}
    assert alert["details"] == {"code": "igg", "flag": "low"}

    resolved = client.post(f"/api/v1/staff/alerts/{alert['id']}/resolve", headers=headers)
    assert resolved.status_code == 200
    assert resolved.get_json()["resolved_at"]
    assert client.get("/api/v1/staff/worklist", headers=headers).get_json()["alerts"] == []


def test_range_from_the_request_wins_and_no_range_means_unknown(client, headers, patient):
    own_range = dict(IGG, value=6.5, ref_low=6.0, ref_high=16.0)
    body = client.post(_url(patient), json=own_range, headers=headers).get_json()
    assert (body["flag"], body["range_source"], body["range_reference"]) == (
        "normal",
        "request",
        None,
    )
    high = client.post(
        _url(patient),
        json={**IGG, "code": "alt", "unit": "U/L", "value": 140, "ref_high": 45},
        headers=headers,
    ).get_json()
    assert high["flag"] == "high"

    # IgG in mg/dL: the cited default is in g/L and nothing is converted.
    mg = client.post(_url(patient), json=dict(IGG, value=590, unit="mg/dL"), headers=headers)
    assert (mg.get_json()["flag"], mg.get_json()["range_source"]) == ("unknown", None)
    iga = client.post(_url(patient), json=dict(IGG, code="iga", value=0.1), headers=headers)
    assert iga.get_json()["flag"] == "unknown"

    alerts = client.get("/api/v1/staff/worklist", headers=headers).get_json()["alerts"]
    assert [a["kind"] for a in alerts] == ["lab_high"]


def test_list_is_newest_first_and_filters_by_code(client, headers, patient):
    for taken, code in (("2026-01-10", "igg"), ("2026-03-10", "igm"), ("2026-02-10", "igg")):
        payload = dict(IGG, code=code, value=8.0, taken_at=f"{taken}T09:00:00Z")
        assert client.post(_url(patient), json=payload, headers=headers).status_code == 201
    listed = client.get(_url(patient), headers=headers).get_json()
    assert listed["total"] == 3
    assert [i["taken_at"][:10] for i in listed["items"]] == [
        "2026-03-10",
        "2026-02-10",
        "2026-01-10",
    ]
    igg = client.get(_url(patient) + "?code=igg", headers=headers).get_json()
    assert [i["code"] for i in igg["items"]] == ["igg", "igg"]
    assert client.get(_url(patient) + "?code=xyz", headers=headers).status_code == 422


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"code": "vitamin_q"}, "code"),
        ({"taken_at": "2026-06-18T08:30:00"}, "taken_at"),
        ({"taken_at": "2999-01-01T00:00:00Z"}, "taken_at"),
        ({"value": "abc"}, "value"),
        ({"value": "5.9"}, "value"),
        ({"value": True}, "value"),
        ({"value": None}, "value"),
        ({"unit": "U/L"}, "unit"),
        ({"unit": ""}, "unit"),
        ({"ref_low": 10, "ref_high": 2}, "ref_low"),
        ({"notes": "x" * 2001}, "notes"),
        ({"colour": "red"}, "colour"),
        ({"value": 1e300}, "value"),
    ],
)
def test_malformed_input_is_422_and_nothing_is_stored(client, headers, patient, change, field):
    response = client.post(_url(patient), json={**IGG, **change}, headers=headers)
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "validation_failed"
    assert field in body["errors"]
    assert client.get(_url(patient), headers=headers).get_json()["total"] == 0
    assert client.get("/api/v1/staff/worklist", headers=headers).get_json()["alerts"] == []


def test_missing_fields_are_named(client, headers, patient):
    response = client.post(_url(patient), json={"code": "igg"}, headers=headers)
    assert response.status_code == 422
    assert {"value", "unit", "taken_at"} <= set(response.get_json()["errors"])


def test_micro_sign_units_are_accepted(client, headers, patient):
    payload = {**IGG, "code": "bilirubin", "unit": "\u00b5mol/L", "value": 9}
    created = client.post(_url(patient), json=payload, headers=headers)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["unit"] == "umol/L"


def test_result_with_task_id_completes_the_task(client, session, headers, staff, patient):
    plan = start_plan(session, staff, patient, start_date=date(2027, 1, 4))
    tasks = client.get(f"/api/v1/plans/{plan.id}/monitoring", headers=headers).get_json()
    ig = next(t for t in tasks["items"] if t["kind"] == "ig_quant")

    created = client.post(
        _url(patient), json=dict(IGG, value=8.1, task_id=ig["id"]), headers=headers
    )
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["task_id"] == ig["id"]
    task = client.get(f"/api/v1/monitoring/{ig['id']}", headers=headers).get_json()
    assert (task["status"], task["lab_result_id"]) == ("done", created.get_json()["id"])
    listed = client.get(_url(patient), headers=headers).get_json()
    assert listed["items"][0]["task_id"] == ig["id"]


def test_task_of_another_patient_is_refused(client, session, headers, staff, clinic, patient):
    other = make_patient(session, clinic)
    plan = start_plan(session, staff, other, start_date=date(2027, 1, 4))
    tasks = client.get(f"/api/v1/plans/{plan.id}/monitoring", headers=headers).get_json()
    response = client.post(
        _url(patient), json=dict(IGG, task_id=tasks["items"][0]["id"]), headers=headers
    )
    assert response.status_code == 422
    assert "task_id" in response.get_json()["errors"]
    assert client.get(_url(patient), headers=headers).get_json()["total"] == 0
    untouched = client.get(f"/api/v1/plans/{plan.id}/monitoring", headers=headers).get_json()
    assert {t["status"] for t in untouched["items"]} == {"due"}


def test_patient_reads_own_labs_only_and_cannot_record(
    client, session, settings, clinic, patient, headers
):
    assert client.post(_url(patient), json=IGG, headers=headers).status_code == 201
    mine = auth_headers(settings, make_user(session, settings, clinic, "patient", patient=patient))
    assert client.get(_url(patient), headers=mine).get_json()["total"] == 1
    assert client.post(_url(patient), json=IGG, headers=mine).status_code == 403
    other = make_patient(session, clinic)
    assert client.get(_url(other), headers=mine).status_code == 404


def test_other_clinic_patient_is_404(client, session, headers):
    foreign = make_patient(session, make_clinic(session))
    assert client.get(_url(foreign), headers=headers).status_code == 404
    assert client.post(_url(foreign), json=IGG, headers=headers).status_code == 404

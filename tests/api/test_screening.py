"""The screening checklist through the HTTP API: results, outcomes, the gate and the override."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from service.models import ScreeningOverride
from tests.factories import (
    NORMAL_LIVER_TESTS,
    auth_headers,
    clear_checklist,
    make_clinic,
    make_patient,
    make_plan,
    make_user,
)

YESTERDAY = (date.today() - timedelta(days=1)).isoformat()


def _plan(session, settings, role="clinician", **kwargs):
    clinic = make_clinic(session)
    staff = make_user(session, settings, clinic, role)
    patient = make_patient(session, clinic)
    plan = make_plan(session, patient, staff, **kwargs)
    return staff, plan, auth_headers(settings, staff)


def _put(client, plan_id, code, body, headers):
    url = f"/api/v1/plans/{plan_id}/screening/{code}"
    read = client.get(url, headers=headers)
    assert read.status_code == 200, read.get_json()
    return client.put(url, json=body, headers={**headers, "If-Match": read.headers["ETag"]})


def _result(result, **extra):
    return {"result": result, "result_date": YESTERDAY, **extra}


def _checklist(client, plan_id, headers):
    response = client.get(f"/api/v1/plans/{plan_id}/screening", headers=headers)
    assert response.status_code == 200
    return response.get_json()


def test_results_drive_the_outcome(client, session, settings):
    staff, plan, headers = _plan(session, settings)
    recorded = _put(
        client,
        plan.id,
        "ig_quant",
        _result("normal", value="IgG 9.1", unit="g/L", notes="baseline"),
        headers,
    )
    assert recorded.status_code == 200, recorded.get_json()
    item = recorded.get_json()
    assert item["status"] == "done"
    assert item["outcome"] == "cleared"
    assert item["value"] == "IgG 9.1"
    assert item["recorded_by"] == staff.id
    assert item["recorded_at"]
    checklist = _checklist(client, plan.id, headers)
    assert checklist["outcome"] == "pending"
    assert "ig_quant" not in {b["code"] for b in checklist["blocking_items"]}

    for code, result in [
        ("hbsag", "negative"),
        ("anti_hbc", "negative"),
        ("vaccines_live", "done"),
        ("active_infection", "negative"),
    ]:
        assert _put(client, plan.id, code, _result(result), headers).status_code == 200
    # Liver tests are values with units and ranges (issue 8): "normal" alone is not enough.
    assert _put(client, plan.id, "lft", _result("normal"), headers).status_code == 422
    lft = _put(client, plan.id, "lft", _result("normal", values=NORMAL_LIVER_TESTS), headers)
    assert lft.status_code == 200, lft.get_json()
    checklist = _checklist(client, plan.id, headers)
    assert checklist["outcome"] == "cleared"
    assert checklist["passes_gate"] is True
    assert checklist["blocking_items"] == []
    # An optional item with a finding needs review again.
    assert _put(client, plan.id, "tb_igra", _result("positive"), headers).status_code == 200
    checklist = _checklist(client, plan.id, headers)
    assert checklist["outcome"] == "needs_review"
    assert checklist["blocking_items"] == [{"code": "tb_igra", "outcome": "needs_review"}]


def test_hbsag_positive_is_contraindicated_and_cannot_be_overridden(client, session, settings):
    _, plan, headers = _plan(session, settings)
    assert _put(client, plan.id, "hbsag", _result("positive"), headers).status_code == 200
    checklist = _checklist(client, plan.id, headers)
    assert checklist["outcome"] == "contraindicated"
    assert {"code": "hbsag", "outcome": "contraindicated"} in checklist["blocking_items"]

    override = client.post(
        f"/api/v1/plans/{plan.id}/screening/override",
        json={"reason": "Hepatology says inactive carrier, start with prophylaxis"},
        headers=headers,
    )
    assert override.status_code == 409
    body = override.get_json()
    assert body["code"] == "contraindicated"
    assert "HBsAg" in body["detail"]
    assert {"code": "hbsag", "outcome": "contraindicated"} in body["blocking_items"]
    assert session.scalar(select(func.count()).select_from(ScreeningOverride)) == 0


def test_anti_hbc_positive_is_cleared_by_the_consult_not_by_an_override(client, session, settings):
    # Issue 8 deliberately changes this test: a free-text override used to clear anti-HBc
    # positive ("reviewed ok" passed); now only the hepatology consult plus HBV DNA do.
    staff, plan, headers = _plan(session, settings)
    clear_checklist(session, plan, staff)
    assert _put(client, plan.id, "anti_hbc", _result("positive"), headers).status_code == 200
    checklist = _checklist(client, plan.id, headers)
    assert checklist["outcome"] == "needs_review"
    assert checklist["blocking_items"] == [
        {"code": "anti_hbc", "outcome": "needs_review"},
        {"code": "hbv_dna", "outcome": "pending"},
        {"code": "hepatology_consult", "outcome": "pending"},
    ]
    assert checklist["hbv_pathway"]["path"] == "anti_hbc_positive"
    # anti-HBc positive: HBV DNA follow-up joins the monitoring.
    plan_body = client.get(f"/api/v1/plans/{plan.id}", headers=headers).get_json()
    assert {"hbv_dna", "alt"} <= {t["kind"] for t in plan_body["monitoring"]}

    override = client.post(
        f"/api/v1/plans/{plan.id}/screening/override",
        json={"reason": "Hepatology consult 2026-11-20: HBV DNA undetectable, monitor"},
        headers=headers,
    )
    assert override.status_code == 409
    assert override.get_json()["code"] == "override_not_allowed"
    assert session.scalar(select(func.count()).select_from(ScreeningOverride)) == 0

    dna = _put(client, plan.id, "hbv_dna", _result("negative", value="0", unit="IU/mL"), headers)
    assert dna.status_code == 200, dna.get_json()
    consult = {"consultant": "Dr Hepa", "decision": "monitor"}
    recorded = _put(
        client,
        plan.id,
        "hepatology_consult",
        {"result_date": YESTERDAY, "consult": consult},
        headers,
    )
    assert recorded.status_code == 200, recorded.get_json()
    checklist = _checklist(client, plan.id, headers)
    assert checklist["outcome"] == "cleared"

    url = f"/api/v1/plans/{plan.id}"
    etag = client.get(url, headers=headers).headers["ETag"]
    ready = client.patch(url, json={"status": "ready"}, headers={**headers, "If-Match": etag})
    assert ready.status_code == 200, ready.get_json()

    # A new finding closes the gate; a clinician may override that one, with a reason.
    assert _put(client, plan.id, "ig_quant", _result("low"), headers).status_code == 200
    checklist = _checklist(client, plan.id, headers)
    assert checklist["passes_gate"] is False
    assert checklist["blocking_items"] == [{"code": "ig_quant", "outcome": "needs_review"}]
    reason = "Immunology consulted: IgG 5.9 g/L acceptable to start"
    override = client.post(
        f"/api/v1/plans/{plan.id}/screening/override", json={"reason": reason}, headers=headers
    )
    assert override.status_code == 201, override.get_json()
    body = override.get_json()
    assert body["passes_gate"] is True
    assert body["override"]["reason"] == reason
    assert body["override"]["clinician_id"] == staff.id
    stored = session.scalars(select(ScreeningOverride)).one()
    assert (stored.clinician_id, stored.reason) == (staff.id, reason)


def test_override_rules(client, session, settings):
    _, plan, headers = _plan(session, settings)
    url = f"/api/v1/plans/{plan.id}/screening/override"
    short = client.post(url, json={"reason": "   because  "}, headers=headers)
    assert short.status_code == 422
    assert "reason" in short.get_json()["errors"]

    admin = make_user(session, settings, plan.patient.clinic, "admin")
    forbidden = client.post(
        url, json={"reason": "Admin tries to override this"}, headers=auth_headers(settings, admin)
    )
    assert forbidden.status_code == 403
    patient_user = make_user(
        session, settings, plan.patient.clinic, "patient", patient=plan.patient
    )
    assert (
        client.post(
            url,
            json={"reason": "Patient tries to override this"},
            headers=auth_headers(settings, patient_user),
        ).status_code
        == 403
    )
    # Pending may be overridden (results to follow), with who and why on record.
    pending = client.post(url, json={"reason": "Results faxed, entry pending"}, headers=headers)
    assert pending.status_code == 201
    assert pending.get_json()["override"]["outcome_overridden"] == "pending"
    assert session.scalar(select(func.count()).select_from(ScreeningOverride)) == 1


def test_cleared_checklist_has_nothing_to_override(client, session, settings):
    staff, plan, headers = _plan(session, settings)
    clear_checklist(session, plan, staff)
    response = client.post(
        f"/api/v1/plans/{plan.id}/screening/override",
        json={"reason": "Nothing to override here"},
        headers=headers,
    )
    assert response.status_code == 409


def test_result_must_fit_the_item(client, session, settings):
    _, plan, headers = _plan(session, settings)
    wrong = _put(client, plan.id, "hbsag", _result("low"), headers)
    assert wrong.status_code == 422
    assert "result" in wrong.get_json()["errors"]
    tomorrow = (date.today() + timedelta(days=2)).isoformat()
    future = _put(
        client, plan.id, "hbsag", {"result": "negative", "result_date": tomorrow}, headers
    )
    assert future.status_code == 422
    assert "result_date" in future.get_json()["errors"]
    item = client.get(f"/api/v1/plans/{plan.id}/screening/hbsag", headers=headers).get_json()
    assert item["result"] is None

    unknown = client.get(f"/api/v1/plans/{plan.id}/screening/cd19_count", headers=headers)
    assert unknown.status_code == 404
    put_unknown = client.put(
        f"/api/v1/plans/{plan.id}/screening/cd19_count",
        json=_result("normal"),
        headers={**headers, "If-Match": '"x"'},
    )
    assert put_unknown.status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"result_date": YESTERDAY}, "result"),
        ({"result": "negative"}, "result_date"),
        ({"result": "reactive", "result_date": YESTERDAY}, "result"),
        ({"result": "negative", "result_date": "yesterday"}, "result_date"),
        ({"result": "negative", "result_date": YESTERDAY, "value": 3.2}, "value"),
        ({"result": "negative", "result_date": YESTERDAY, "notes": "n" * 2001}, "notes"),
        ({"result": "negative", "result_date": YESTERDAY, "recorded_by": 1}, "recorded_by"),
    ],
)
def test_malformed_result_is_422(client, session, settings, body, field):
    _, plan, headers = _plan(session, settings)
    response = _put(client, plan.id, "hbsag", body, headers)
    assert response.status_code == 422
    assert response.content_type == "application/problem+json"
    assert field in response.get_json()["errors"]


def test_put_needs_the_items_etag(client, session, settings):
    _, plan, headers = _plan(session, settings)
    url = f"/api/v1/plans/{plan.id}/screening/hbsag"
    etag = client.get(url, headers=headers).headers["ETag"]
    assert client.put(url, json=_result("negative"), headers=headers).status_code == 428
    first = client.put(url, json=_result("negative"), headers={**headers, "If-Match": etag})
    assert first.status_code == 200
    assert first.headers["ETag"] == client.get(url, headers=headers).headers["ETag"]
    stale = client.put(url, json=_result("positive"), headers={**headers, "If-Match": etag})
    assert stale.status_code == 412
    assert client.get(url, headers=headers).get_json()["result"] == "negative"


def test_checklist_access(client, session, settings):
    _, plan, _ = _plan(session, settings)
    stranger = auth_headers(settings, make_user(session, settings, make_clinic(session)))
    assert client.get(f"/api/v1/plans/{plan.id}/screening", headers=stranger).status_code == 404
    assert (
        client.get(f"/api/v1/plans/{plan.id}/screening/hbsag", headers=stranger).status_code == 404
    )
    patient_user = make_user(
        session, settings, plan.patient.clinic, "patient", patient=plan.patient
    )
    own = auth_headers(settings, patient_user)
    assert client.get(f"/api/v1/plans/{plan.id}/screening", headers=own).status_code == 200
    put = _put(client, plan.id, "hbsag", _result("negative"), own)
    assert put.status_code == 403

"""The hepatitis B pathway (issue 8, item 1) through the HTTP API: the items a positive marker
adds, the structured hepatology consult, what clears and what an override may not, the planned
stop, HBV DNA and ALT monitoring at the consult's cadence, and the staff alerts."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from service.models import ScreeningOverride
from service.protocols import Interval
from service.treatment.doses import record_administration
from service.treatment.readiness import record_readiness_answer
from tests.factories import (
    actor_of,
    auth_headers,
    clear_checklist,
    make_clinic,
    make_patient,
    make_plan,
    make_user,
)

TODAY = date.today()
BEFORE = (TODAY - timedelta(days=3)).isoformat()


def _world(session, settings, *, regimen="ocrelizumab-iv", start=None, zone="Europe/Berlin"):
    clinic = make_clinic(session, time_zone=zone)
    staff = make_user(session, settings, clinic, "clinician")
    patient = make_patient(session, clinic)
    plan = make_plan(
        session, patient, staff, regimen=regimen, start_date=start or TODAY + timedelta(days=14)
    )
    clear_checklist(session, plan, staff)
    return staff, plan, auth_headers(settings, staff)


def _put(client, plan_id, code, body, headers):
    url = f"/api/v1/plans/{plan_id}/screening/{code}"
    etag = client.get(url, headers=headers).headers["ETag"]
    return client.put(url, json=body, headers={**headers, "If-Match": etag})


def _checklist(client, plan_id, headers):
    return client.get(f"/api/v1/plans/{plan_id}/screening", headers=headers).get_json()


def _item(checklist, code):
    return next(item for item in checklist["items"] if item["code"] == code)


def _positive(client, plan_id, code, headers):
    response = _put(client, plan_id, code, {"result": "positive", "result_date": BEFORE}, headers)
    assert response.status_code == 200, response.get_json()


def _dna(client, plan_id, headers, value="0", result="negative", day=BEFORE):
    body = {"result": result, "value": value, "unit": "IU/mL", "result_date": day}
    return _put(client, plan_id, "hbv_dna", body, headers)


def _consult(client, plan_id, headers, day=BEFORE, **consult):
    consult.setdefault("consultant", "Dr A. Hepa, hepatology")
    body = {"result_date": day, "consult": consult}
    return _put(client, plan_id, "hepatology_consult", body, headers)


def _override(client, plan_id, headers, reason="Hepatology reviewed: start with entecavir"):
    return client.post(
        f"/api/v1/plans/{plan_id}/screening/override", json={"reason": reason}, headers=headers
    )


def _monitoring(client, plan_id, headers, kind):
    body = client.get(
        f"/api/v1/plans/{plan_id}/monitoring?page_size=100", headers=headers
    ).get_json()
    return [t["due_date"] for t in body["items"] if t["kind"] == kind]


def test_anti_hbc_positive_adds_the_items_and_only_the_consult_clears_it(client, session, settings):
    _, plan, headers = _world(session, settings)
    before = _checklist(client, plan.id, headers)
    assert before["outcome"] == "cleared"
    assert before["hbv_pathway"]["path"] == "none"
    assert _item(before, "hbv_dna")["required"] is False

    _positive(client, plan.id, "anti_hbc", headers)
    checklist = _checklist(client, plan.id, headers)
    pathway = checklist["hbv_pathway"]
    assert pathway["path"] == "anti_hbc_positive"
    assert "hepatology consult" in pathway["reason"]
    assert {b["code"] for b in checklist["blocking_items"]} == {
        "anti_hbc",
        "hbv_dna",
        "hepatology_consult",
    }
    for code in ("hbv_dna", "hepatology_consult"):
        item = _item(checklist, code)
        assert (item["required"], item["overridable"]) == (True, False)
    assert _item(checklist, "anti_hbc")["overridable"] is False

    # "reviewed ok" passed before: a free-text override is refused now.
    refused = _override(client, plan.id, headers, reason="reviewed ok, fine to go")
    assert refused.status_code == 409
    body = refused.get_json()
    assert body["code"] == "override_not_allowed"
    assert {b["code"] for b in body["blocking_items"]} == {
        "anti_hbc",
        "hbv_dna",
        "hepatology_consult",
    }
    assert session.scalar(select(func.count()).select_from(ScreeningOverride)) == 0

    # The consult alone does not clear anti-HBc: the baseline HBV DNA is missing.
    start = TODAY - timedelta(days=2)
    consult = _consult(
        client,
        plan.id,
        headers,
        decision="prophylaxis",
        prophylaxis={"drug": "entecavir", "start_date": start.isoformat()},
    )
    assert consult.status_code == 200, consult.get_json()
    recorded = consult.get_json()
    assert recorded["result"] == "prophylaxis"
    assert recorded["outcome"] == "cleared"
    assert recorded["consult"]["consultant"] == "Dr A. Hepa, hepatology"
    assert recorded["consult"]["prophylaxis"]["drug"] == "entecavir"
    checklist = _checklist(client, plan.id, headers)
    assert {b["code"] for b in checklist["blocking_items"]} == {"anti_hbc", "hbv_dna"}

    dna = _dna(client, plan.id, headers, value="0")
    assert dna.status_code == 200, dna.get_json()
    checklist = _checklist(client, plan.id, headers)
    assert checklist["outcome"] == "cleared"
    pathway = checklist["hbv_pathway"]
    assert pathway["decision"] == "prophylaxis"
    assert pathway["baseline_date"] == BEFORE
    # Planned stop by default: the last anti-CD20 dose (the last one planned) plus 12 months.
    plan_body = client.get(f"/api/v1/plans/{plan.id}", headers=headers).get_json()
    last = date.fromisoformat(plan_body["doses"][-1]["due_date"])
    assert pathway["planned_stop"] == last.replace(year=last.year + 1).isoformat()
    assert pathway["planned_stop_source"] == "hbv_prophylaxis_after_last_dose"
    assert pathway["monitoring_interval_months"] == 3

    url = f"/api/v1/plans/{plan.id}"
    etag = client.get(url, headers=headers).headers["ETag"]
    ready = client.patch(url, json={"status": "ready"}, headers={**headers, "If-Match": etag})
    assert ready.status_code == 200, ready.get_json()


def test_hbsag_positive_needs_a_prophylaxis_consult_then_a_clinicians_override(
    client, session, settings
):
    _, plan, headers = _world(session, settings)
    _positive(client, plan.id, "hbsag", headers)
    checklist = _checklist(client, plan.id, headers)
    assert checklist["outcome"] == "contraindicated"
    assert checklist["hbv_pathway"]["path"] == "hbsag_positive"
    assert "prophylaxis" in _item(checklist, "hbsag")["reason"]

    assert _dna(client, plan.id, headers, value="120", result="positive").status_code == 200
    # A consult that decides monitoring leaves the contraindication in place.
    assert _consult(client, plan.id, headers, decision="monitor").status_code == 200
    assert _checklist(client, plan.id, headers)["outcome"] == "contraindicated"
    assert _override(client, plan.id, headers).get_json()["code"] == "contraindicated"

    consult = _consult(
        client,
        plan.id,
        headers,
        decision="prophylaxis",
        prophylaxis={
            "drug": "tenofovir",
            "start_date": BEFORE,
            "planned_stop": "2030-06-30",
        },
        monitoring_interval_months=1,
    )
    assert consult.status_code == 200, consult.get_json()
    checklist = _checklist(client, plan.id, headers)
    assert checklist["outcome"] == "needs_review"
    assert checklist["blocking_items"] == [{"code": "hbsag", "outcome": "needs_review"}]
    assert checklist["hbv_pathway"]["planned_stop"] == "2030-06-30"
    assert checklist["hbv_pathway"]["planned_stop_source"] == "consult"

    # Only a clinician, with a reason.
    admin = make_user(session, settings, plan.patient.clinic, "admin")
    assert _override(client, plan.id, auth_headers(settings, admin)).status_code == 403
    override = _override(client, plan.id, headers)
    assert override.status_code == 201, override.get_json()
    assert override.get_json()["passes_gate"] is True


def test_a_consult_that_finds_the_patient_not_eligible_contraindicates(client, session, settings):
    _, plan, headers = _world(session, settings)
    _positive(client, plan.id, "anti_hbc", headers)
    assert _dna(client, plan.id, headers).status_code == 200
    assert _consult(client, plan.id, headers, decision="not_eligible").status_code == 200
    checklist = _checklist(client, plan.id, headers)
    assert checklist["outcome"] == "contraindicated"
    assert _item(checklist, "hepatology_consult")["outcome"] == "contraindicated"


def test_consult_and_hbv_dna_are_structured(client, session, settings):
    _, plan, headers = _world(session, settings)
    _positive(client, plan.id, "anti_hbc", headers)
    free_text = _put(
        client, plan.id, "hepatology_consult", {"result": "monitor", "result_date": BEFORE}, headers
    )
    assert free_text.status_code == 422
    assert "consult" in free_text.get_json()["errors"]
    no_drug = _consult(client, plan.id, headers, decision="prophylaxis")
    assert no_drug.status_code == 422
    assert "consult.prophylaxis" in no_drug.get_json()["errors"]
    wrong_cadence = _consult(
        client, plan.id, headers, decision="monitor", monitoring_interval_months=6
    )
    assert wrong_cadence.status_code == 422
    stop_first = _consult(
        client,
        plan.id,
        headers,
        decision="prophylaxis",
        prophylaxis={"drug": "entecavir", "start_date": BEFORE, "planned_stop": BEFORE},
    )
    assert "consult.prophylaxis.planned_stop" in stop_first.get_json()["errors"]
    no_unit = _put(
        client,
        plan.id,
        "hbv_dna",
        {"result": "negative", "value": "0", "result_date": BEFORE},
        headers,
    )
    assert no_unit.status_code == 422
    assert "unit" in no_unit.get_json()["errors"]
    not_a_number = _dna(client, plan.id, headers, value="undetectable")
    assert "value" in not_a_number.get_json()["errors"]
    # The consult body is for the consult only.
    elsewhere = _put(
        client,
        plan.id,
        "hbsag",
        {
            "result": "negative",
            "result_date": BEFORE,
            "consult": {"consultant": "x", "decision": "monitor"},
        },
        headers,
    )
    assert "consult" in elsewhere.get_json()["errors"]


def test_hbv_dna_and_alt_follow_the_consults_cadence_until_the_planned_stop(
    client, session, settings
):
    _, plan, headers = _world(session, settings)
    _positive(client, plan.id, "anti_hbc", headers)
    baseline = TODAY - timedelta(days=3)
    assert _dna(client, plan.id, headers, day=baseline.isoformat()).status_code == 200
    assert (
        _consult(
            client, plan.id, headers, decision="monitor", monitoring_interval_months=2
        ).status_code
        == 200
    )
    pathway = _checklist(client, plan.id, headers)["hbv_pathway"]
    stop = date.fromisoformat(pathway["planned_stop"])
    dna_dates = _monitoring(client, plan.id, headers, "hbv_dna")
    alt_dates = _monitoring(client, plan.id, headers, "alt")
    assert dna_dates == alt_dates
    assert dna_dates[0] == Interval(months=2).add_to(baseline).isoformat()
    assert date.fromisoformat(dna_dates[-1]) <= stop
    assert date.fromisoformat(dna_dates[-1]) > stop - timedelta(days=62)

    # The plan ends before any dose was given: there is nothing to follow up.
    url = f"/api/v1/plans/{plan.id}"
    etag = client.get(url, headers=headers).headers["ETag"]
    ended = client.patch(
        url, json={"status": "discontinued"}, headers={**headers, "If-Match": etag}
    )
    assert ended.status_code == 200, ended.get_json()
    # No dose was ever given: nothing to follow up after the end.
    assert _monitoring(client, plan.id, headers, "hbv_dna") == []


def test_hbv_monitoring_outlives_the_plan_until_the_planned_stop(client, session, settings):
    start = TODAY - timedelta(days=1)
    staff, plan, headers = _world(session, settings, start=start)
    _positive(client, plan.id, "anti_hbc", headers)
    baseline = TODAY - timedelta(days=3)
    assert _dna(client, plan.id, headers, day=baseline.isoformat()).status_code == 200
    assert _consult(client, plan.id, headers, decision="monitor").status_code == 200
    url = f"/api/v1/plans/{plan.id}"
    etag = client.get(url, headers=headers).headers["ETag"]
    assert (
        client.patch(
            url, json={"status": "ready"}, headers={**headers, "If-Match": etag}
        ).status_code
        == 200
    )

    session.expire_all()
    dose = plan.doses[0]
    given = datetime.combine(start, time(10), ZoneInfo("Europe/Berlin"))
    record_readiness_answer(
        session, actor_of(staff), dose.id, "active_infection", result="negative", result_date=start
    )
    record_administration(
        session,
        actor_of(staff),
        dose.id,
        administered_at=given,
        amount_mg=dose.amount_mg,
        premedications=[
            {"drug": "methylprednisolone", "given_at": given - timedelta(minutes=30)},
            {"drug": "diphenhydramine", "given_at": given - timedelta(minutes=45)},
        ],
    )
    etag = client.get(url, headers=headers).headers["ETag"]
    ended = client.patch(
        url, json={"status": "discontinued"}, headers={**headers, "If-Match": etag}
    )
    assert ended.status_code == 200, ended.get_json()
    pathway = _checklist(client, plan.id, headers)["hbv_pathway"]
    # The only dose given is the last anti-CD20 dose: the planned stop is 12 months after it.
    assert pathway["planned_stop"] == start.replace(year=start.year + 1).isoformat()
    dna_dates = _monitoring(client, plan.id, headers, "hbv_dna")
    assert len(dna_dates) == 4  # every 3 months from the baseline, within the 12 months
    assert dna_dates == _monitoring(client, plan.id, headers, "alt")
    assert all(d <= pathway["planned_stop"] for d in dna_dates)
    # Their reminders go on after the plan too: the patient is asked before each test.
    tasks = client.get(
        f"/api/v1/plans/{plan.id}/monitoring?page_size=100", headers=headers
    ).get_json()["items"]
    hbv_task_ids = {t["id"] for t in tasks if t["kind"] in ("hbv_dna", "alt")}
    reminders = client.get(
        f"/api/v1/patients/{plan.patient_id}/reminders?page_size=100", headers=headers
    ).get_json()["items"]
    reminded = {
        r["subject"]["id"]
        for r in reminders
        if r["subject"]["type"] == "monitoring_task" and r["status"] == "pending"
    }
    assert hbv_task_ids <= reminded
    # The patient record says what is still monitored, why, and until when.
    record = client.get(f"/api/v1/patients/{plan.patient_id}", headers=headers).get_json()
    (hbv,) = record["hepatitis_b_after_treatment"]
    assert hbv["plan_id"] == plan.id
    assert hbv["kinds"] == ["alt", "hbv_dna"]
    assert hbv["path"] == "anti_hbc_positive"
    assert hbv["planned_stop"] == pathway["planned_stop"]
    assert hbv["next_due"] == min(dna_dates)


def test_rituximab_protects_for_24_months_after_the_last_dose(client, session, settings):
    _, plan, headers = _world(session, settings, regimen="rituximab-iv")
    _positive(client, plan.id, "anti_hbc", headers)
    pathway = _checklist(client, plan.id, headers)["hbv_pathway"]
    doses = client.get(f"/api/v1/plans/{plan.id}", headers=headers).get_json()["doses"]
    last = date.fromisoformat(doses[-1]["due_date"])
    assert pathway["planned_stop"] == last.replace(year=last.year + 2).isoformat()


def test_detected_and_rising_hbv_dna_alert_staff(client, session, settings):
    _, plan, headers = _world(session, settings)
    _positive(client, plan.id, "anti_hbc", headers)
    assert _dna(client, plan.id, headers, value="15", result="positive").status_code == 200
    alerts = client.get("/api/v1/staff/worklist", headers=headers).get_json()["alerts"]
    assert [a["kind"] for a in alerts] == ["hbv_dna_detectable"]

    labs = f"/api/v1/patients/{plan.patient_id}/labs"
    taken = datetime.combine(TODAY - timedelta(days=1), time(8), ZoneInfo("Europe/Berlin"))
    higher = client.post(
        labs,
        json={"code": "hbv_dna", "value": 250, "unit": "IU/mL", "taken_at": taken.isoformat()},
        headers=headers,
    )
    assert higher.status_code == 201, higher.get_json()
    alerts = client.get("/api/v1/staff/worklist", headers=headers).get_json()["alerts"]
    kinds = sorted(a["kind"] for a in alerts)
    assert kinds == ["hbv_dna_detectable", "hbv_dna_detectable", "hbv_dna_rising"]
    for alert in alerts:
        assert set(alert["details"]) <= {"code"}

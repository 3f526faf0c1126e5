"""Treatment plans through the HTTP API: label schedules, preview, transitions, access, input."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from service.models import Dose, MonitoringTask, ScreeningItem, TreatmentPlan
from tests.factories import (
    auth_headers,
    clear_checklist,
    make_clinic,
    make_patient,
    make_plan,
    make_user,
)

OCRELIZUMAB = {"regimen": "ocrelizumab-iv", "start_date": "2027-01-04"}


def _staff(session, settings, role="clinician"):
    clinic = make_clinic(session)
    staff = make_user(session, settings, clinic, role)
    patient = make_patient(session, clinic)
    return staff, patient, auth_headers(settings, staff)


def _create(client, patient, headers, body=OCRELIZUMAB):
    response = client.post(f"/api/v1/patients/{patient.id}/plans", json=body, headers=headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def _counts(session):
    return [
        session.scalar(select(func.count()).select_from(model))
        for model in (TreatmentPlan, Dose, ScreeningItem, MonitoringTask)
    ]


def test_ocrelizumab_plan_follows_the_label(client, session, settings):
    _, patient, headers = _staff(session, settings)
    plan = _create(client, patient, headers)

    assert plan["patient_id"] == patient.id
    assert plan["regimen"] == "ocrelizumab-iv"
    assert plan["variant"] == "standard"
    assert plan["status"] == "screening"
    assert plan["start_date"] == "2027-01-04"
    assert plan["settings"]["min_interval"] == "five_months"
    assert [(d["due_date"], d["amount_mg"], d["kind"]) for d in plan["doses"]] == [
        ("2027-01-04", 300, "initial"),
        ("2027-01-18", 300, "initial"),
        ("2027-07-04", 600, "maintenance"),
        ("2028-01-04", 600, "maintenance"),
    ]
    # Day 1 and Day 15 are one course; the first maintenance is >= 5 months after Day 15.
    assert [d["course"] for d in plan["doses"]] == [1, 1, 2, 3]
    assert plan["doses"][2]["earliest_date"] == "2027-06-18"
    assert all(d["status"] == "planned" and d["id"] for d in plan["doses"])
    screening = plan["screening"]
    assert screening["outcome"] == "pending"
    assert screening["override"] is None
    # The twelve screening codes, and the hepatitis B pathway's two (issue 8), not required
    # until a hepatitis B marker is positive.
    assert len(screening["items"]) == 14
    assert not {i["code"]: i for i in screening["items"]}["hepatology_consult"]["required"]
    required = {i["code"] for i in screening["items"] if i["required"]}
    assert {"hbsag", "anti_hbc", "ig_quant", "lft", "active_infection"} <= required
    assert {b["code"] for b in screening["blocking_items"]} == required
    assert plan["monitoring"], "monitoring tasks are derived with the plan"
    assert all(t["id"] and t["status"] == "due" for t in plan["monitoring"])

    read = client.get(f"/api/v1/plans/{plan['id']}", headers=headers)
    assert read.status_code == 200
    assert read.headers["ETag"]
    assert read.get_json()["doses"] == plan["doses"]
    listed = client.get(f"/api/v1/patients/{patient.id}/plans", headers=headers).get_json()
    assert listed["total"] == 1
    assert listed["items"][0]["id"] == plan["id"]


@pytest.mark.parametrize(
    ("regimen", "variant", "amounts"),
    [
        ("ocrelizumab-iv", None, [300, 300, 600, 600]),
        ("ocrelizumab-sc", None, [920, 920, 920]),
        ("rituximab-iv", None, [1000, 500, 500]),
        ("rituximab-iv", "hermes", [1000, 1000]),
        ("ofatumumab-sc", None, [20] * 15),
        ("ublituximab-iv", None, [150, 450, 450, 450]),
    ],
)
def test_every_regimen_plans_the_label_amounts(
    client, session, settings, regimen, variant, amounts
):
    _, patient, headers = _staff(session, settings)
    body = {"regimen": regimen, "start_date": "2027-01-04"}
    if variant:
        body["variant"] = variant
    plan = _create(client, patient, headers, body)
    assert [d["amount_mg"] for d in plan["doses"]] == amounts
    assert plan["doses"][0]["due_date"] == "2027-01-04"


def test_ublituximab_and_ofatumumab_dates(client, session, settings):
    _, patient, headers = _staff(session, settings)
    plan = _create(
        client, patient, headers, {"regimen": "ublituximab-iv", "start_date": "2027-01-04"}
    )
    # Day 1, Day 15, then every 24 weeks from the first infusion.
    assert [d["due_date"] for d in plan["doses"]] == [
        "2027-01-04",
        "2027-01-18",
        "2027-06-21",
        "2027-12-06",
    ]
    other = make_patient(session, patient.clinic)
    plan = _create(client, other, headers, {"regimen": "ofatumumab-sc", "start_date": "2027-01-04"})
    # Weeks 0, 1, 2, then monthly from week 4 (no injection in week 3).
    assert [d["due_date"] for d in plan["doses"][:5]] == [
        "2027-01-04",
        "2027-01-11",
        "2027-01-18",
        "2027-02-01",
        "2027-03-01",
    ]


def test_settings_come_from_request_then_clinic_then_catalog(client, session, settings):
    _, patient, headers = _staff(session, settings)
    patient.clinic.settings = {"ocrelizumab-iv": {"min_interval": "twenty_weeks"}}
    session.flush()
    plan = _create(client, patient, headers)
    assert plan["settings"]["min_interval"] == "twenty_weeks"
    # 20 weeks after Day 15 (2027-01-18).
    assert plan["doses"][2]["earliest_date"] == "2027-06-07"

    other = make_patient(session, patient.clinic)
    body = {**OCRELIZUMAB, "settings": {"min_interval": "five_months"}}
    assert _create(client, other, headers, body)["settings"]["min_interval"] == "five_months"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"regimen": "natalizumab-iv", "start_date": "2027-01-04"}, "regimen"),
        ({**OCRELIZUMAB, "variant": "weekly"}, "variant"),
        ({**OCRELIZUMAB, "settings": {"min_interval": "one_day"}}, "settings"),
        ({**OCRELIZUMAB, "settings": {"colour": "blue"}}, "settings"),
    ],
)
def test_catalog_choices_are_checked(client, session, settings, body, field):
    _, patient, headers = _staff(session, settings)
    before = _counts(session)
    response = client.post(f"/api/v1/patients/{patient.id}/plans", json=body, headers=headers)
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    assert field in response.get_json()["errors"]
    assert _counts(session) == before


def test_preview_computes_the_plan_and_stores_nothing(client, session, settings):
    _, patient, headers = _staff(session, settings)
    before = _counts(session)
    response = client.post(
        f"/api/v1/patients/{patient.id}/plans?preview=true", json=OCRELIZUMAB, headers=headers
    )
    assert response.status_code == 200, response.get_json()
    plan = response.get_json()
    assert plan["id"] is None
    assert [d["due_date"] for d in plan["doses"]] == [
        "2027-01-04",
        "2027-01-18",
        "2027-07-04",
        "2028-01-04",
    ]
    assert all(d["id"] is None for d in plan["doses"])
    assert plan["screening"]["outcome"] == "pending"
    assert plan["monitoring"]
    assert all(t["id"] is None for t in plan["monitoring"])
    assert _counts(session) == before
    # The preview shows what creating would store.
    created = _create(client, patient, headers)
    assert [t["due_date"] for t in created["monitoring"]] == [
        t["due_date"] for t in plan["monitoring"]
    ]


def test_a_second_open_plan_is_refused(client, session, settings):
    _, patient, headers = _staff(session, settings)
    first = _create(client, patient, headers)
    again = client.post(
        f"/api/v1/patients/{patient.id}/plans",
        json={"regimen": "ofatumumab-sc", "start_date": "2027-02-01"},
        headers=headers,
    )
    assert again.status_code == 409
    assert again.get_json()["open_plan_id"] == first["id"]
    etag = client.get(f"/api/v1/plans/{first['id']}", headers=headers).headers["ETag"]
    client.patch(
        f"/api/v1/plans/{first['id']}",
        json={"status": "discontinued"},
        headers={**headers, "If-Match": etag},
    )
    _create(client, patient, headers, {"regimen": "ofatumumab-sc", "start_date": "2027-02-01"})


def test_ready_needs_a_cleared_checklist(client, session, settings):
    staff, patient, headers = _staff(session, settings)
    plan = make_plan(session, patient, staff)
    url = f"/api/v1/plans/{plan.id}"
    etag = client.get(url, headers=headers).headers["ETag"]

    refused = client.patch(url, json={"status": "ready"}, headers={**headers, "If-Match": etag})
    assert refused.status_code == 409
    body = refused.get_json()
    assert body["code"] == "screening_not_cleared"
    assert {"code": "hbsag", "outcome": "pending"} in body["blocking_items"]
    assert client.get(url, headers=headers).get_json()["status"] == "screening"

    clear_checklist(session, plan, staff)
    etag = client.get(url, headers=headers).headers["ETag"]
    ready = client.patch(url, json={"status": "ready"}, headers={**headers, "If-Match": etag})
    assert ready.status_code == 200, ready.get_json()
    assert ready.get_json()["status"] == "ready"
    assert ready.get_json()["screening"]["outcome"] == "cleared"
    assert ready.get_json()["version"] > plan.version


def test_transitions(client, session, settings):
    staff, patient, headers = _staff(session, settings)
    plan = make_plan(session, patient, staff, cleared=True)
    url = f"/api/v1/plans/{plan.id}"

    def patch(body):
        etag = client.get(url, headers=headers).headers["ETag"]
        return client.patch(url, json=body, headers={**headers, "If-Match": etag})

    wrong = patch({"status": "completed"})
    assert wrong.status_code == 409
    assert wrong.get_json()["code"] == "invalid_transition"
    assert wrong.get_json()["allowed"] == ["on_hold", "discontinued"]

    no_reason = patch({"status": "on_hold"})
    assert no_reason.status_code == 422
    assert "hold_reason" in no_reason.get_json()["errors"]
    held = patch({"status": "on_hold", "hold_reason": "Pregnancy planned"})
    assert held.status_code == 200
    assert held.get_json()["hold_reason"] == "Pregnancy planned"

    # Nothing given yet, so resuming goes back to ready, not active.
    assert patch({"status": "active"}).get_json()["allowed"] == ["ready", "discontinued"]
    resumed = patch({"status": "ready"})
    assert resumed.status_code == 200
    assert resumed.get_json()["hold_reason"] is None

    ended = patch({"status": "discontinued", "notes": "Switched to another therapy"})
    assert ended.status_code == 200
    body = ended.get_json()
    assert body["status"] == "discontinued"
    assert {d["status"] for d in body["doses"]} == {"cancelled"}
    closed = patch({"status": "ready"})
    assert closed.status_code == 409
    assert closed.get_json()["allowed"] == []


def test_start_date_change_replans_until_a_dose_is_confirmed(client, session, settings):
    staff, patient, headers = _staff(session, settings)
    plan = _create(client, patient, headers)
    url = f"/api/v1/plans/{plan['id']}"
    etag = client.get(url, headers=headers).headers["ETag"]
    moved = client.patch(
        url, json={"start_date": "2027-02-01"}, headers={**headers, "If-Match": etag}
    )
    assert moved.status_code == 200, moved.get_json()
    body = moved.get_json()
    assert body["start_date"] == "2027-02-01"
    assert [d["due_date"] for d in body["doses"]] == [
        "2027-02-01",
        "2027-02-15",
        "2027-08-01",
        "2028-02-01",
    ]
    assert [d["id"] for d in body["doses"]] == [d["id"] for d in plan["doses"]]

    clear_checklist(session, session.get(TreatmentPlan, plan["id"]), staff)
    first = body["doses"][0]
    dose_url = f"/api/v1/doses/{first['id']}"
    dose_etag = client.get(dose_url, headers=headers).headers["ETag"]
    booked = client.patch(
        dose_url,
        json={"appointment_at": "2027-02-01T09:00:00+01:00", "booking": "confirmed"},
        headers={**headers, "If-Match": dose_etag},
    )
    assert booked.status_code == 200, booked.get_json()
    etag = client.get(url, headers=headers).headers["ETag"]
    refused = client.patch(
        url, json={"start_date": "2027-03-01"}, headers={**headers, "If-Match": etag}
    )
    assert refused.status_code == 409
    assert refused.get_json()["code"] == "invalid_transition"
    assert client.get(url, headers=headers).get_json()["start_date"] == "2027-02-01"


def test_patch_plan_needs_the_current_etag(client, session, settings):
    staff, patient, headers = _staff(session, settings)
    plan = make_plan(session, patient, staff)
    url = f"/api/v1/plans/{plan.id}"
    etag = client.get(url, headers=headers).headers["ETag"]

    missing = client.patch(url, json={"notes": "first"}, headers=headers)
    assert missing.status_code == 428
    assert missing.content_type == "application/problem+json"
    ok = client.patch(url, json={"notes": "first"}, headers={**headers, "If-Match": etag})
    assert ok.status_code == 200
    assert ok.headers["ETag"] == client.get(url, headers=headers).headers["ETag"]
    stale = client.patch(url, json={"notes": "second"}, headers={**headers, "If-Match": etag})
    assert stale.status_code == 412
    assert client.get(url, headers=headers).get_json()["notes"] == "first"


def test_another_clinics_plan_is_not_found(client, session, settings):
    staff, patient, _ = _staff(session, settings)
    plan = make_plan(session, patient, staff)
    stranger = make_user(session, settings, make_clinic(session))
    headers = auth_headers(settings, stranger)
    assert client.get(f"/api/v1/plans/{plan.id}", headers=headers).status_code == 404
    assert client.get(f"/api/v1/patients/{patient.id}/plans", headers=headers).status_code == 404
    created = client.post(f"/api/v1/patients/{patient.id}/plans", json=OCRELIZUMAB, headers=headers)
    assert created.status_code == 404


def test_patient_sees_own_plans_only_and_cannot_change_them(client, session, settings):
    staff, patient, _ = _staff(session, settings)
    mine = make_plan(session, patient, staff)
    other_patient = make_patient(session, patient.clinic)
    theirs = make_plan(session, other_patient, staff)
    user = make_user(session, settings, patient.clinic, "patient", patient=patient)
    headers = auth_headers(settings, user)

    own = client.get(f"/api/v1/plans/{mine.id}", headers=headers)
    assert own.status_code == 200
    assert client.get(f"/api/v1/plans/{theirs.id}", headers=headers).status_code == 404
    assert (
        client.get(f"/api/v1/patients/{other_patient.id}/plans", headers=headers).status_code == 404
    )
    me = client.get("/api/v1/me/plans", headers=headers)
    assert me.status_code == 200
    assert [p["id"] for p in me.get_json()["items"]] == [mine.id]
    staff_me = client.get("/api/v1/me/plans", headers=auth_headers(settings, staff))
    assert staff_me.status_code == 403

    patched = client.patch(
        f"/api/v1/plans/{mine.id}",
        json={"notes": "mine"},
        headers={**headers, "If-Match": own.headers["ETag"]},
    )
    assert patched.status_code == 403
    posted = client.post(
        f"/api/v1/patients/{patient.id}/plans?preview=true", json=OCRELIZUMAB, headers=headers
    )
    assert posted.status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"start_date": "2027-01-04"}, "regimen"),
        ({"regimen": "ocrelizumab-iv"}, "start_date"),
        ({**OCRELIZUMAB, "start_date": "04/01/2027"}, "start_date"),
        ({**OCRELIZUMAB, "start_date": 20270104}, "start_date"),
        ({**OCRELIZUMAB, "start_date": "1999-12-31"}, "start_date"),
        (
            {**OCRELIZUMAB, "start_date": (date.today() + timedelta(days=4000)).isoformat()},
            "start_date",
        ),
        ({**OCRELIZUMAB, "regimen": 7}, "regimen"),
        ({**OCRELIZUMAB, "regimen": "x" * 100_000}, "regimen"),
        ({**OCRELIZUMAB, "notes": "n" * 2001}, "notes"),
        ({**OCRELIZUMAB, "settings": ["five_months"]}, "settings"),
        ({**OCRELIZUMAB, "settings": {"min_interval": 5}}, "settings"),
        ({**OCRELIZUMAB, "status": "active"}, "status"),
        ({**OCRELIZUMAB, "id": 5}, "id"),
    ],
)
def test_malformed_plan_input_is_422_and_stores_nothing(client, session, settings, body, field):
    _, patient, headers = _staff(session, settings)
    before = _counts(session)
    response = client.post(f"/api/v1/patients/{patient.id}/plans", json=body, headers=headers)
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    assert field in response.get_json()["errors"]
    assert _counts(session) == before


@pytest.mark.parametrize(
    "body",
    [
        {"status": "paused"},
        {"status": None},
        {"start_date": "soon"},
        {"hold_reason": "h" * 501},
        {"version": 3},
        [],
    ],
)
def test_malformed_plan_patch_is_422(client, session, settings, body):
    staff, patient, headers = _staff(session, settings)
    plan = make_plan(session, patient, staff)
    url = f"/api/v1/plans/{plan.id}"
    etag = client.get(url, headers=headers).headers["ETag"]
    response = client.patch(url, json=body, headers={**headers, "If-Match": etag})
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    assert client.get(url, headers=headers).headers["ETag"] == etag

"""Per-dose readiness through the HTTP API: the gate, staff and patient answers, pregnancy before
each ublituximab infusion, premedication windows, missed doses, the clinician override."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from service.models import AuditEvent, Reminder
from tests.factories import (
    auth_headers,
    make_clinic,
    make_patient,
    make_plan,
    make_reminder,
    make_user,
)

BERLIN = ZoneInfo("Europe/Berlin")
TODAY = datetime.now(BERLIN).date()
START = TODAY - timedelta(days=1)


def at(day: date, hour: int, minute: int = 0) -> str:
    return datetime.combine(day, time(hour, minute), BERLIN).isoformat()


def _world(session, settings, regimen, **patient):
    clinic = make_clinic(session, time_zone="Europe/Berlin")
    clinician = make_user(session, settings, clinic, "clinician")
    admin = make_user(session, settings, clinic, "admin")
    person = make_patient(session, clinic, **patient)
    me = make_user(session, settings, clinic, "patient", patient=person)
    plan = make_plan(session, person, clinician, regimen=regimen, start_date=START, cleared=True)
    return (
        plan,
        auth_headers(settings, clinician),
        auth_headers(settings, admin),
        auth_headers(settings, me),
    )


def _premeds(day, regimen):
    if regimen == "ocrelizumab-sc":
        return [
            {"drug": "dexamethasone", "given_at": at(day, 9, 15)},
            {"drug": "desloratadine", "given_at": at(day, 9, 15)},
        ]
    if regimen == "ofatumumab-sc":
        return []
    premeds = [
        {"drug": "methylprednisolone", "given_at": at(day, 9, 30)},
        {"drug": "diphenhydramine", "given_at": at(day, 9, 15)},
    ]
    if regimen == "rituximab-iv":
        premeds.append({"drug": "paracetamol", "given_at": at(day, 9, 15)})
    return premeds


def _give(client, plan, headers, **extra):
    dose = plan.doses[0]
    body = {
        "administered_at": at(START, 10),
        "amount_mg": dose.amount_mg,
        "premedications": _premeds(START, plan.regimen_code),
        **extra,
    }
    return client.post(f"/api/v1/doses/{dose.id}/administration", json=body, headers=headers)


def _answer(client, dose_id, code, result, headers, day=None):
    url = f"/api/v1/doses/{dose_id}/readiness/{code}"
    etag = client.get(url, headers=headers).headers["ETag"]
    return client.put(
        url,
        json={"result": result, "result_date": (day or START).isoformat()},
        headers={**headers, "If-Match": etag},
    )


def test_every_regimen_refuses_a_dose_until_the_infection_check_is_answered(
    client, session, settings
):
    for regimen in (
        "ocrelizumab-iv",
        "ocrelizumab-sc",
        "rituximab-iv",
        "ofatumumab-sc",
        "ublituximab-iv",
    ):
        plan, staff, _, _ = _world(session, settings, regimen, can_become_pregnant=False)
        dose = plan.doses[0]
        readiness = client.get(f"/api/v1/doses/{dose.id}/readiness", headers=staff).get_json()
        assert readiness["ready"] is False, regimen
        codes = {item["code"] for item in readiness["items"]}
        assert {"active_infection", "screening_current"} <= codes, regimen
        assert all(item["source"] for item in readiness["items"])

        refused = _give(client, plan, staff)
        assert refused.status_code == 409, regimen
        problem = refused.get_json()
        assert problem["code"] == "dose_not_ready"
        assert {"code": "active_infection", "outcome": "pending"} in problem["blocking_items"]

        assert _answer(client, dose.id, "active_infection", "negative", staff).status_code == 200
        given = _give(client, plan, staff)
        assert given.status_code == 201, (regimen, given.get_json())
        # The readiness shows inside the dose and the plan too.
        body = client.get(f"/api/v1/doses/{dose.id}", headers=staff).get_json()
        assert body["readiness"]["ready"] is True
        plan_body = client.get(f"/api/v1/plans/{plan.id}", headers=staff).get_json()
        assert "readiness" in plan_body["doses"][0]


def _checkin(session, plan, dose):
    """The pre-dose infection check-in of `dose` (today's dose: its derived one has expired)."""
    return make_reminder(
        session, plan.patient, kind="infection_checkin", subject_id=dose.id, plan_id=plan.id
    )


def test_every_self_injection_gets_an_infection_check_in(client, session, settings):
    plan, _, _, _ = _world(session, settings, "ofatumumab-sc")
    later = [d for d in plan.doses if d.kind == "self_injection"][:3]
    for dose in later:
        kinds = {
            r.kind
            for r in session.scalars(
                select(Reminder).where(
                    Reminder.subject_type == "dose", Reminder.subject_id == dose.id
                )
            )
        }
        assert {"infection_checkin", "self_injection_due"} <= kinds


def test_an_ofatumumab_injection_is_blocked_by_a_reported_infection(client, session, settings):
    plan, staff, _, me = _world(session, settings, "ofatumumab-sc")
    dose = plan.doses[0]
    checkin = _checkin(session, plan, dose)
    sick = client.post(
        f"/api/v1/me/reminders/{checkin.id}/ack",
        json={"response": {"status": "symptoms", "symptoms": ["fever"]}},
        headers=me,
    )
    assert sick.status_code == 200, sick.get_json()
    item = client.get(f"/api/v1/doses/{dose.id}/readiness/active_infection", headers=staff)
    assert item.get_json()["outcome"] == "needs_review"
    assert item.get_json()["answered_by"] == "patient"
    refused = _give(client, plan, staff)
    assert refused.status_code == 409
    assert refused.get_json()["blocking_items"] == [
        {"code": "active_infection", "outcome": "needs_review"}
    ]
    # A clinician reviews and finds the infection resolved.
    assert _answer(client, dose.id, "active_infection", "negative", staff).status_code == 200
    assert _give(client, plan, staff).status_code == 201


def test_a_patients_no_symptoms_clears_a_self_injection_but_not_an_infusion(
    client, session, settings
):
    plan, staff, _, me = _world(session, settings, "ofatumumab-sc")
    # The first injection is given at the clinic (staff answer); the self-injections after it
    # are cleared by the patient's own "no symptoms".
    first = plan.doses[0]
    _answer(client, first.id, "active_infection", "negative", staff)
    assert _give(client, plan, staff).status_code == 201
    session.expire_all()
    second = plan.doses[1]
    assert second.kind == "self_injection"
    checkin = _checkin(session, plan, second)
    ok = client.post(
        f"/api/v1/me/reminders/{checkin.id}/ack",
        json={"response": {"status": "no_symptoms"}},
        headers=me,
    )
    assert ok.status_code == 200
    item = client.get(f"/api/v1/doses/{second.id}/readiness", headers=staff).get_json()
    assert item["ready"] is True

    plan, staff, _, me = _world(session, settings, "ocrelizumab-iv")
    checkin = _checkin(session, plan, plan.doses[0])
    client.post(
        f"/api/v1/me/reminders/{checkin.id}/ack",
        json={"response": {"status": "no_symptoms"}},
        headers=me,
    )
    refused = _give(client, plan, staff)
    assert refused.status_code == 409
    assert refused.get_json()["code"] == "dose_not_ready"


def test_a_ublituximab_infusion_needs_a_pregnancy_answer_unless_she_cannot_become_pregnant(
    client, session, settings
):
    plan, staff, _, _ = _world(session, settings, "ublituximab-iv")  # unknown: asks
    dose = plan.doses[0]
    _answer(client, dose.id, "active_infection", "negative", staff)
    refused = _give(client, plan, staff)
    assert refused.status_code == 409
    assert refused.get_json()["blocking_items"] == [{"code": "pregnancy", "outcome": "pending"}]
    assert _answer(client, dose.id, "pregnancy", "negative", staff).status_code == 200
    assert _give(client, plan, staff).status_code == 201
    # The next infusion asks again.
    nxt = client.get(f"/api/v1/doses/{plan.doses[1].id}/readiness", headers=staff).get_json()
    assert {"code": "pregnancy", "outcome": "pending"} in nxt["blocking_items"]

    plan, staff, _, _ = _world(session, settings, "ublituximab-iv", can_become_pregnant=False)
    codes = {
        item["code"]
        for item in client.get(
            f"/api/v1/doses/{plan.doses[0].id}/readiness", headers=staff
        ).get_json()["items"]
    }
    assert "pregnancy" not in codes


def test_premedication_outside_its_window_is_refused_unless_a_clinician_says_why(
    client, session, settings
):
    plan, staff, admin, _ = _world(session, settings, "ocrelizumab-iv")
    _answer(client, plan.doses[0].id, "active_infection", "negative", staff)
    six_hours = [
        {"drug": "methylprednisolone", "given_at": at(START, 4)},
        {"drug": "diphenhydramine", "given_at": at(START, 9, 15)},
    ]
    refused = _give(client, plan, staff, premedications=six_hours)
    assert refused.status_code == 422
    assert refused.get_json()["code"] == "premedication_outside_window"
    assert "methylprednisolone" in refused.get_json()["errors"]["premedications"]
    none = _give(client, plan, staff, premedications=[])
    assert none.get_json()["code"] == "premedication_outside_window"
    by_admin = _give(
        client,
        plan,
        admin,
        premedications=six_hours,
        premedication_exception_reason="Given early on the ward by mistake",
    )
    assert by_admin.status_code == 403
    given = _give(
        client,
        plan,
        staff,
        premedications=six_hours,
        premedication_exception_reason="Given early on the ward; reviewed, proceed",
    )
    assert given.status_code == 201, given.get_json()


def test_a_clinician_override_lets_a_dose_through_and_is_audited_by_hash(client, session, settings):
    plan, staff, admin, _ = _world(session, settings, "ocrelizumab-iv")
    dose = plan.doses[0]
    url = f"/api/v1/doses/{dose.id}/readiness/override"
    reason = {"reason": "Assessed by phone this morning: no infection"}
    assert client.post(url, json=reason, headers=admin).status_code == 403
    assert client.post(url, json={"reason": "short"}, headers=staff).status_code == 422
    signed = client.post(url, json=reason, headers=staff)
    assert signed.status_code == 201, signed.get_json()
    assert signed.get_json()["ready"] is True
    assert signed.get_json()["override"]["blocking_items"] == [
        {"code": "active_infection", "outcome": "pending"}
    ]
    event = session.scalars(
        select(AuditEvent)
        .where(AuditEvent.path_template.like("%/readiness/override"))
        .order_by(AuditEvent.id)
    ).all()[-1]
    assert "reason_sha256" in event.details
    assert reason["reason"] not in str(event.details)
    # A reported infection afterwards is worse than what was overridden: blocked again.
    _answer(client, dose.id, "active_infection", "positive", staff)
    assert _give(client, plan, staff).get_json()["code"] == "dose_not_ready"


def test_a_missed_dose_stays_owed_and_a_skip_needs_a_clinician_and_a_reason(
    client, session, settings
):
    plan, staff, admin, _ = _world(session, settings, "ocrelizumab-iv")
    dose = plan.doses[0]
    url = f"/api/v1/doses/{dose.id}"

    def patch(body, headers):
        etag = client.get(url, headers=headers).headers["ETag"]
        return client.patch(url, json=body, headers={**headers, "If-Match": etag})

    missed = patch({"status": "missed"}, staff)
    assert missed.status_code == 200, missed.get_json()
    assert missed.get_json()["status"] == "missed"
    assert missed.get_json()["missed_on"] == TODAY.isoformat()
    kinds = {
        r.kind
        for r in session.scalars(select(Reminder).where(Reminder.subject_id == dose.id))
        if r.status == "pending"
    }
    assert "dose_missed" in kinds  # the patient is asked to rebook
    worklist = client.get("/api/v1/staff/worklist", headers=staff).get_json()
    assert dose.id in {e["dose"]["id"] for e in worklist["overdue_doses"]}
    # Still owed: it can be given.
    _answer(client, dose.id, "active_infection", "negative", staff, day=TODAY - timedelta(1))
    assert patch({"status": "skipped", "reason": "Patient declined"}, admin).status_code == 403
    no_reason = patch({"status": "skipped"}, staff)
    assert no_reason.status_code == 422
    skipped = patch({"status": "skipped", "reason": "Patient declined after counselling"}, staff)
    assert skipped.status_code == 200
    assert skipped.get_json()["skip_reason"] == "Patient declined after counselling"

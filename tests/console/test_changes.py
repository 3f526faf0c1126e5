"""The console's changes: each commits with its audit event; the plan's and doses' status
changes, demographics, staff accounts, ended sessions and the hepatitis B forms."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from service.accounts import console_sessions
from service.db import utcnow
from service.models import AuditEvent, ConsoleSession, Patient
from service.treatment.screening import record_screening_result
from service.trust import audit
from tests.console.helpers import post, sign_in
from tests.factories import (
    actor_of,
    clear_checklist,
    make_clinic,
    make_patient,
    make_plan,
    make_user,
    start_plan,
)


@pytest.fixture
def clinic(session):
    return make_clinic(session)


@pytest.fixture
def clinician(session, settings, clinic):
    return make_user(session, settings, clinic, "clinician")


@pytest.fixture
def plan(session, clinic, clinician):
    patient = make_patient(session, clinic)
    return start_plan(session, clinician, patient, start_date=date.today() + timedelta(days=10))


def _enrol(client, mrn: str):
    return post(
        client,
        "/console/patients",
        {
            "mrn": mrn,
            "given_name": "Robin",
            "family_name": "Audit",
            "birth_date": "1980-05-01",
            "time_zone": "Europe/Paris",
        },
        token_from="/console/patients",
    )


def test_a_change_is_stored_with_its_audit_event(client, session, clinician):
    sign_in(client, clinician.email)
    response = _enrol(client, "MRN-AUDITED")
    assert response.status_code == 302
    patient = session.scalars(select(Patient).where(Patient.mrn == "MRN-AUDITED")).one()
    event = session.scalars(
        select(AuditEvent).where(AuditEvent.method == "POST", AuditEvent.patient_id == patient.id)
    ).one()
    assert event.outcome == "success"
    assert event.details["via"] == "console"
    assert event.actor_id == clinician.id


def test_a_change_whose_audit_event_cannot_be_written_is_not_stored(
    client, session, clinician, monkeypatch
):
    sign_in(client, clinician.email)
    before = session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))

    def refuse(*args, **kwargs):
        raise RuntimeError("audit trail unavailable")

    monkeypatch.setattr(audit, "record_event", refuse)
    response = _enrol(client, "MRN-UNAUDITED")
    page = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Nothing was saved" in page
    session.expire_all()
    assert session.scalars(select(Patient).where(Patient.mrn == "MRN-UNAUDITED")).first() is None
    after = session.scalar(select(AuditEvent.id).order_by(AuditEvent.id.desc()).limit(1))
    assert after == before


@pytest.fixture
def ready_plan(session, clinic, clinician):
    patient = make_patient(session, clinic)
    plan = make_plan(
        session, patient, clinician, start_date=date.today() + timedelta(days=10), cleared=True
    )
    session.commit()
    return plan


def _patient_page(plan) -> str:
    return f"/console/patients/{plan.patient_id}"


def _plan_status(client, plan, data):
    return post(
        client,
        f"/console/plans/{plan.id}/status",
        data,
        token_from=_patient_page(plan),
    )


def test_a_plan_is_held_with_its_reason_then_resumed(client, session, clinician, ready_plan):
    sign_in(client, clinician.email)
    page = client.get(_patient_page(ready_plan)).get_data(as_text=True)
    assert "Hold, resume or discontinue the plan" in page
    # A hold needs its reason: the API's per-field refusal, nothing changed.
    refused = _plan_status(client, ready_plan, {"status": "on_hold"})
    assert refused.status_code == 422
    assert "Say why the plan is on hold." in refused.get_data(as_text=True)
    session.refresh(ready_plan)
    assert ready_plan.status == "ready"

    held = _plan_status(
        client, ready_plan, {"status": "on_hold", "hold_reason": "active infection"}
    )
    assert held.status_code == 302
    assert "The plan is now on_hold" in client.get(held.headers["Location"]).get_data(as_text=True)
    session.refresh(ready_plan)
    assert (ready_plan.status, ready_plan.hold_reason) == ("on_hold", "active infection")

    resumed = _plan_status(client, ready_plan, {"status": "ready"})
    assert resumed.status_code == 302
    session.refresh(ready_plan)
    assert (ready_plan.status, ready_plan.hold_reason) == ("ready", None)


def test_a_transition_the_plan_does_not_allow_is_refused_as_the_api_refuses_it(
    client, session, clinician, plan
):
    sign_in(client, clinician.email)
    response = _plan_status(client, plan, {"status": "active"})
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "invalid_transition" in page
    assert "A screening plan cannot become active" in page
    session.refresh(plan)
    assert plan.status == "screening"


def test_discontinuing_a_plan_cancels_its_open_doses(client, session, clinician, ready_plan):
    sign_in(client, clinician.email)
    response = _plan_status(
        client, ready_plan, {"status": "discontinued", "version": str(ready_plan.version)}
    )
    assert response.status_code == 302
    session.refresh(ready_plan)
    assert ready_plan.status == "discontinued"
    assert {d.status for d in ready_plan.doses} == {"cancelled"}


def test_a_dose_is_skipped_only_with_a_reason(client, session, clinician, plan):
    sign_in(client, clinician.email)
    dose = plan.doses[2]
    path = f"/console/doses/{dose.id}/status"
    refused = post(client, path, {"status": "skipped"}, token_from=_patient_page(plan))
    assert refused.status_code == 422
    assert "Say why the dose is skipped" in refused.get_data(as_text=True)
    session.refresh(dose)
    assert dose.status == "planned"

    skipped = post(
        client,
        path,
        {"status": "skipped", "reason": "IgG too low this season", "version": str(dose.version)},
        token_from=_patient_page(plan),
    )
    assert skipped.status_code == 302
    session.refresh(dose)
    assert (dose.status, dose.skip_reason) == ("skipped", "IgG too low this season")
    # A closed dose has no forms left.
    page = client.get(_patient_page(plan)).get_data(as_text=True)
    assert f"Skip or cancel dose {dose.sequence}<" not in page


def test_an_admin_may_cancel_a_dose_but_not_skip_it(client, session, settings, clinic, plan):
    admin = make_user(session, settings, clinic, "admin")
    session.commit()
    sign_in(client, admin.email)
    dose = plan.doses[2]
    path = f"/console/doses/{dose.id}/status"
    refused = post(
        client,
        path,
        {"status": "skipped", "reason": "the patient moved away"},
        token_from=_patient_page(plan),
    )
    assert refused.status_code == 403
    assert "Only a clinician may skip a dose." in refused.get_data(as_text=True)
    cancelled = post(client, path, {"status": "cancelled"}, token_from=_patient_page(plan))
    assert cancelled.status_code == 302
    session.refresh(dose)
    assert dose.status == "cancelled"


def _details(patient, **changes):
    fields = {
        "mrn": patient.mrn,
        "given_name": patient.given_name,
        "family_name": patient.family_name,
        "birth_date": patient.birth_date.isoformat(),
        "sex": patient.sex or "",
        "time_zone": patient.time_zone,
        "email": patient.email or "",
        "version": str(patient.version),
    }
    return fields | changes


def test_demographics_and_time_zone_are_edited_on_the_patient_page(
    client, session, clinician, plan
):
    sign_in(client, clinician.email)
    patient = session.get(Patient, plan.patient_id)
    page = client.get(_patient_page(plan)).get_data(as_text=True)
    assert "Edit demographics and time zone" in page
    response = post(
        client,
        f"/console/patients/{patient.id}/details",
        _details(patient, family_name="Martin-Doe", time_zone="America/Toronto"),
        token_from=_patient_page(plan),
    )
    assert response.status_code == 302
    session.refresh(patient)
    assert (patient.family_name, patient.time_zone) == ("Martin-Doe", "America/Toronto")
    assert "Martin-Doe" in client.get(_patient_page(plan)).get_data(as_text=True)


def test_a_stale_demographics_form_saves_nothing_and_keeps_the_entry(
    client, session, clinician, plan
):
    sign_in(client, clinician.email)
    patient = session.get(Patient, plan.patient_id)
    stale = _details(patient, given_name="Sam")
    # Someone else saves the record meanwhile.
    post(
        client,
        f"/console/patients/{patient.id}/details",
        _details(patient, family_name="Renamed"),
        token_from=_patient_page(plan),
    )
    response = post(
        client, f"/console/patients/{patient.id}/details", stale, token_from=_patient_page(plan)
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "stale" in page
    assert 'value="Sam"' in page
    session.refresh(patient)
    assert (patient.given_name, patient.family_name) == ("Alex", "Renamed")


def test_an_unknown_time_zone_or_a_taken_mrn_is_refused_per_field(
    client, session, clinic, clinician, plan
):
    other = make_patient(session, clinic)
    session.commit()
    sign_in(client, clinician.email)
    patient = session.get(Patient, plan.patient_id)
    path = f"/console/patients/{patient.id}/details"
    zone = post(client, path, _details(patient, time_zone="Mars/Olympus"), token_from=path[:-8])
    assert zone.status_code == 422
    assert "time_zone" in zone.get_data(as_text=True)
    taken = post(client, path, _details(patient, mrn=other.mrn), token_from=path[:-8])
    assert taken.status_code == 409
    assert "Already used at this clinic." in taken.get_data(as_text=True)
    session.refresh(patient)
    assert patient.time_zone != "Mars/Olympus"
    assert patient.mrn != other.mrn


def _account(client, user, **fields):
    return post(
        client,
        f"/console/clinic/users/{user.id}",
        {"version": str(user.token_generation)} | fields,
        token_from="/console/clinic",
    )


def test_an_admin_deactivates_a_clinician_whose_console_session_then_ends(
    app, client, session, settings, clinic, clinician
):
    admin = make_user(session, settings, clinic, "admin")
    session.commit()
    theirs = app.test_client()
    sign_in(theirs, clinician.email)
    assert theirs.get("/console/today").status_code == 200
    sign_in(client, admin.email)
    assert f"Change {clinician.email}" in client.get("/console/clinic").get_data(as_text=True)
    response = _account(client, clinician, role="clinician", state="inactive")
    assert response.status_code == 302
    session.refresh(clinician)
    assert clinician.is_active is False
    ended = theirs.get("/console/today")
    assert ended.status_code == 302
    assert ended.headers["Location"].startswith("/console/login")


def test_an_admin_changes_a_role_but_not_their_own(client, session, settings, clinic, clinician):
    admin = make_user(session, settings, clinic, "admin")
    session.commit()
    sign_in(client, admin.email)
    promoted = _account(client, clinician, role="admin", state="active")
    assert promoted.status_code == 302
    session.refresh(clinician)
    assert clinician.role == "admin"
    own = _account(client, admin, role="clinician", state="active")
    page = own.get_data(as_text=True)
    assert own.status_code == 409
    assert "You cannot deactivate or demote your own account" in page
    session.refresh(admin)
    assert admin.role == "admin"


def test_a_stale_account_form_changes_nothing(client, session, settings, clinic, clinician):
    admin = make_user(session, settings, clinic, "admin")
    session.commit()
    sign_in(client, admin.email)
    version = str(clinician.token_generation)
    assert _account(client, clinician, role="admin", state="active").status_code == 302
    stale = post(
        client,
        f"/console/clinic/users/{clinician.id}",
        {"version": version, "role": "clinician", "state": "inactive"},
        token_from="/console/clinic",
    )
    assert stale.status_code == 409
    assert "stale" in stale.get_data(as_text=True)
    session.refresh(clinician)
    assert (clinician.role, clinician.is_active) == ("admin", True)


def test_the_runner_purges_ended_console_sessions_hourly(app, session, settings, clinic, clinician):
    from jobs import tasks
    from jobs.runner import Runner
    from jobs.scheduler import build_scheduler

    idle, expired, gone = (make_user(session, settings, clinic, "clinician") for _ in range(3))
    session.commit()
    clients = {}
    for user in (clinician, idle, expired, gone):
        clients[user.id] = app.test_client()
        sign_in(clients[user.id], user.email)
    now = utcnow()
    rows = {row.user_id: row for row in session.scalars(select(ConsoleSession))}
    rows[idle.id].last_seen_at = now - console_sessions.IDLE_TIMEOUT - timedelta(minutes=1)
    rows[expired.id].expires_at = now - timedelta(minutes=1)
    gone.is_active = False
    session.commit()

    assert tasks.purge_ended_console_sessions(now=now) == 3
    session.expire_all()
    assert [row.user_id for row in session.scalars(select(ConsoleSession))] == [clinician.id]
    # The live session still signs its clinician in; a second run finds nothing to delete.
    assert clients[clinician.id].get("/console/today").status_code == 200
    assert tasks.purge_ended_console_sessions(now=now) == 0

    previous = tasks._runner
    try:
        job = build_scheduler(Runner(settings, {})).get_job("purge_ended_console_sessions")
    finally:
        tasks.use_runner(previous)
    assert job is not None
    assert job.func is tasks.purge_ended_console_sessions
    assert str(job.trigger.fields[job.trigger.FIELD_NAMES.index("hour")]) == "*"


def _screening(client, plan, code, data):
    return post(
        client,
        f"/console/plans/{plan.id}/screening/{code}",
        {"result_date": (date.today() - timedelta(days=1)).isoformat()} | data,
        token_from=_patient_page(plan),
    )


def test_the_hepatitis_b_pathway_is_recorded_on_its_forms_and_clears_the_gate(
    client, session, clinician, plan
):
    clear_checklist(session, plan, clinician)
    anti_hbc = next(i for i in plan.screening_items if i.code == "anti_hbc")
    record_screening_result(
        session,
        actor_of(clinician),
        anti_hbc,
        result="positive",
        result_date=date.today() - timedelta(days=2),
    )
    session.commit()
    sign_in(client, clinician.email)
    page = client.get(_patient_page(plan)).get_data(as_text=True)
    assert "Record hbv_dna" in page
    assert "Record hepatology_consult" in page
    assert "Hepatologist consulted" in page

    # HBV DNA is a number in IU/mL, as the API takes it.
    no_value = _screening(client, plan, "hbv_dna", {"result": "negative"})
    assert no_value.status_code == 422
    assert "Give the HBV DNA as a number in IU/mL." in no_value.get_data(as_text=True)
    dna = _screening(client, plan, "hbv_dna", {"result": "negative", "value": "0", "unit": "IU/mL"})
    assert dna.status_code == 302

    # A consult deciding prophylaxis names the drug and its start; the entry is kept.
    no_drug = _screening(
        client, plan, "hepatology_consult", {"consultant": "Dr Hepa", "decision": "prophylaxis"}
    )
    text = no_drug.get_data(as_text=True)
    assert no_drug.status_code == 422
    assert "consult.prophylaxis" in text
    assert 'value="Dr Hepa"' in text
    bad_interval = _screening(
        client,
        plan,
        "hepatology_consult",
        {"consultant": "Dr Hepa", "decision": "monitor", "monitoring_interval_months": "6"},
    )
    assert bad_interval.status_code == 422
    assert "consult.monitoring_interval_months" in bad_interval.get_data(as_text=True)

    start = date.today().isoformat()
    consult = _screening(
        client,
        plan,
        "hepatology_consult",
        {
            "consultant": "Dr Hepa",
            "decision": "prophylaxis",
            "prophylaxis_drug": "entecavir",
            "prophylaxis_start_date": start,
        },
    )
    assert consult.status_code == 302, consult.get_data(as_text=True)[:3000]
    session.expire_all()
    item = next(i for i in plan.screening_items if i.code == "hepatology_consult")
    assert item.result == "prophylaxis"
    assert item.details["consultant"] == "Dr Hepa"
    assert item.details["prophylaxis"]["drug"] == "entecavir"
    assert item.details["prophylaxis"]["start_date"] == start
    page = client.get(_patient_page(plan)).get_data(as_text=True)
    assert 'id="checklist-outcome" class="status-ok"' in page

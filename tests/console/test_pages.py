"""The console's pages through the test client: refusals explained as the API explains them,
stale forms, the cascade, labs and monitoring."""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest

from service.models import LabResult
from service.treatment.screening import record_screening_result
from tests.console.helpers import post, sign_in
from tests.factories import actor_of, make_clinic, make_patient, make_user, start_plan


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


def _page(client, plan):
    return f"/console/patients/{plan.patient_id}"


def test_a_dose_booked_before_its_minimum_interval_is_refused_with_the_earliest_date(
    client, session, clinician, plan
):
    sign_in(client, clinician.email)
    # The first maintenance infusion, months after the initial course: a month after it is
    # before the minimum interval.
    maintenance = plan.doses[2]
    too_soon = plan.doses[1].due_date + timedelta(days=30)
    response = post(
        client,
        f"/console/doses/{maintenance.id}/booking",
        {"appointment_at": f"{too_soon.isoformat()}T09:00", "version": str(maintenance.version)},
        token_from=_page(client, plan),
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "minimum_interval" in page
    session.refresh(maintenance)
    assert maintenance.earliest_date is not None
    assert maintenance.earliest_date.isoformat() in page
    # Nothing was booked, and the form shows what was typed.
    assert maintenance.appointment_at is None
    assert f'value="{too_soon.isoformat()}T09:00"' in page


def test_moving_the_first_dose_moves_the_later_ones_and_says_so(client, session, clinician, plan):
    sign_in(client, clinician.email)
    first, second = plan.doses[0], plan.doses[1]
    due_second = second.due_date
    later = first.due_date + timedelta(days=3)
    response = post(
        client,
        f"/console/doses/{first.id}/booking",
        {"appointment_at": f"{later.isoformat()}T10:30", "cascade": "on", "location": "Chair 2"},
        token_from=_page(client, plan),
    )
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    moved = (due_second + timedelta(days=3)).isoformat()
    assert f"Later doses moved: dose 2 to {moved}" in page
    session.refresh(second)
    assert second.due_date == due_second + timedelta(days=3)


def test_a_stale_form_says_someone_else_changed_it_and_keeps_the_input(
    client, session, clinician, plan
):
    sign_in(client, clinician.email)
    opened_at_version = plan.version
    # Someone else records a result after the page was opened.
    hbsag = plan.item("hbsag")
    record_screening_result(
        session, actor_of(clinician), hbsag, result="negative", result_date=date.today()
    )
    session.flush()
    assert plan.version != opened_at_version
    response = post(
        client,
        f"/console/plans/{plan.id}/screening/anti_hbc",
        {
            "result": "indeterminate",
            "result_date": date.today().isoformat(),
            "notes": "typed by the nurse",
            "version": str(opened_at_version),
        },
        token_from=_page(client, plan),
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "Someone else changed this" in page
    assert "stale" in page
    assert 'value="typed by the nurse"' in page
    assert re.search(r'<option value="indeterminate" selected>', page)
    session.refresh(plan.item("anti_hbc"))
    assert plan.item("anti_hbc").result is None


def test_a_lab_result_completes_its_monitoring_task(client, session, clinician, plan):
    sign_in(client, clinician.email)
    task = next(t for t in plan.monitoring_tasks if t.kind == "ig_quant")
    taken = date.today() - timedelta(days=1)
    response = post(
        client,
        f"/console/patients/{plan.patient_id}/labs",
        {
            "code": "igg",
            "value": "5.1",
            "unit": "g/L",
            "taken_at": f"{taken.isoformat()}T08:15",
            "task_id": str(task.id),
        },
        token_from=_page(client, plan),
    )
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    lab = session.query(LabResult).filter_by(patient_id=plan.patient_id).one()
    assert lab.flag == "low"  # below the default IgG limit
    session.refresh(task)
    assert task.status == "done"
    page = client.get(_page(client, plan)).get_data(as_text=True)
    assert "5.1 g/L" in page


def test_waiving_a_task_needs_the_reason(client, session, clinician, plan):
    sign_in(client, clinician.email)
    task = plan.monitoring_tasks[0]
    refused = post(
        client,
        f"/console/monitoring/{task.id}",
        {"status": "waived", "version": str(task.version)},
        token_from=_page(client, plan),
    )
    assert refused.status_code == 422
    assert "Give the reason for waiving the task." in refused.get_data(as_text=True)
    done = post(
        client,
        f"/console/monitoring/{task.id}",
        {"status": "waived", "notes": "Done elsewhere", "version": str(task.version)},
        token_from=_page(client, plan),
    )
    assert done.status_code == 302
    session.refresh(task)
    assert task.status == "waived"


def test_a_clinician_overrides_a_doses_open_readiness_on_today(
    client, session, settings, clinic, clinician
):
    from datetime import datetime, time
    from zoneinfo import ZoneInfo

    from tests.factories import book_dose, make_plan

    patient = make_patient(session, clinic)
    ready_plan = make_plan(session, patient, clinician, start_date=date.today(), cleared=True)
    zone = ZoneInfo(clinic.time_zone)
    day = datetime.now(zone).date()
    book_dose(session, ready_plan.doses[0], datetime.combine(day, time(9, 0), tzinfo=zone))
    sign_in(client, clinician.email)
    today = f"/console/today?date={day.isoformat()}"
    page = client.get(today).get_data(as_text=True)
    assert 'Readiness of dose 1: <span class="status-blocked">not ready' in page
    assert "Override readiness of dose 1" in page
    response = post(
        client,
        f"/console/doses/{ready_plan.doses[0].id}/readiness-override?date={day.isoformat()}",
        {"reason": "Reviewed at the chair; no infection signs."},
        token_from=today,
    )
    assert response.status_code == 302
    page = client.get(today).get_data(as_text=True)
    assert 'Readiness of dose 1: <span class="status-ok">ready' in page


def test_an_admin_adds_a_staff_account_under_the_password_policy(client, session, settings, clinic):
    from service.models import User

    admin = make_user(session, settings, clinic, "admin")
    sign_in(client, admin.email)
    weak = post(
        client,
        "/console/clinic/users",
        {"email": "new.nurse@example.org", "role": "clinician", "password": "password123"},
        token_from="/console/clinic",
    )
    page = weak.get_data(as_text=True)
    assert weak.status_code == 422
    assert "password" in page
    assert 'value="new.nurse@example.org"' in page  # the entry is kept, the password is not
    assert "password123" not in page
    added = post(
        client,
        "/console/clinic/users",
        {
            "email": "new.nurse@example.org",
            "role": "clinician",
            "password": "violet staple orbit lantern 42",
        },
        token_from="/console/clinic",
    )
    assert added.status_code == 302
    user = session.query(User).filter_by(email="new.nurse@example.org").one()
    assert (user.role, user.clinic_id) == ("clinician", clinic.id)

"""A polled read checks the caller's account in its own first statement (the account row beside
the stamp): a token whose account was disabled or signed out since still gets 401, before
anything the read found (a 304, a 404, a 422), and its event names nobody."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import select

from service.models import AuditEvent
from tests.factories import auth_headers, make_clinic, make_patient, make_plan, make_user

API = "/api/v1"
PATIENT_READS = ("/me/inbox", "/me/reminders/upcoming", "/me/plans")


@pytest.fixture
def people(session, settings, clinic):
    staff = make_user(session, settings, clinic, "clinician")
    patient = make_patient(session, clinic)
    user = make_user(session, settings, clinic, "patient", patient=patient)
    plan = make_plan(session, patient, staff, start_date=date.today() + timedelta(days=30))
    staff_reads = (f"/plans/{plan.id}", f"/patients/{patient.id}")
    return {
        "staff": staff,
        "user": user,
        "reads": [(path, user) for path in PATIENT_READS] + [(p, staff) for p in staff_reads],
    }


def _refused(response) -> None:
    assert response.status_code == 401, response.get_json()
    assert response.content_type == "application/problem+json"
    assert response.get_json()["code"] == "invalid_token"


def _last_event(session) -> AuditEvent:
    return session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()


@pytest.mark.parametrize("revoke", ["deactivated", "signed_out"])
def test_a_revoked_token_gets_401_not_the_304_it_would_have_had(
    client, session, settings, people, revoke
):
    answers = {}
    for path, user in people["reads"]:
        headers = auth_headers(settings, user)
        first = client.get(API + path, headers=headers)
        assert first.status_code == 200, (path, first.get_json())
        again = client.get(API + path, headers={**headers, "If-None-Match": first.headers["ETag"]})
        assert again.status_code == 304, path
        answers[path] = (headers, first.headers["ETag"])
    for user in (people["user"], people["staff"]):
        if revoke == "deactivated":
            user.is_active = False
        else:
            user.token_generation += 1
    session.flush()

    for path, (headers, etag) in answers.items():
        for asked in (headers, {**headers, "If-None-Match": etag}):
            refused = client.get(API + path, headers=asked)
            _refused(refused)
            event = _last_event(session)
            assert (event.status_code, event.actor_id, event.patient_id) == (401, None, None)


def test_a_revoked_token_gets_401_not_404_or_422(client, session, settings, people):
    staff = people["staff"]
    headers = auth_headers(settings, staff)
    assert client.get(f"{API}/plans/999999", headers=headers).status_code == 404
    assert client.get(f"{API}/patients/999999", headers=headers).status_code == 404
    assert client.get(f"{API}/patients?page=0", headers=headers).status_code == 422
    staff.is_active = False
    session.flush()

    for path in ("/plans/999999", "/patients/999999", "/patients?page=0", "/staff/worklist"):
        _refused(client.get(API + path, headers=headers))


def test_a_read_by_a_live_account_still_sees_only_its_own(client, session, settings, people):
    # The other clinic's clinician reads the same URLs: their account row is fine, the rows
    # behind the URL are not theirs.
    other = make_user(session, settings, make_clinic(session, time_zone="America/New_York"))
    headers = auth_headers(settings, other)
    for path, user in people["reads"]:
        if user is people["staff"]:
            response = client.get(API + path, headers=headers)
            assert response.status_code == 404, response.get_json()
    # A staff account has no /me views of a patient's.
    assert client.get(f"{API}/me/inbox", headers=headers).status_code == 403

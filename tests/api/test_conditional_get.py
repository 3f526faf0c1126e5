"""Polling without re-reading: the app's reads carry a validator computed from a cheap query;
If-None-Match answers 304 before anything is loaded or rendered, and any change that shows in
the answer (a new message or reminder, a plan edit, a preference change) moves the validator."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from service.db import utcnow
from service.reminders.inbox import post_to_inbox
from tests.factories import (
    auth_headers,
    book_dose,
    make_clinic,
    make_reminder,
    make_user,
)
from tests.factories import (
    sql_statements as statements,
)

API = "/api/v1"


def _revalidate(client, url, headers, etag):
    return client.get(url, headers={**headers, "If-None-Match": etag})


def _assert_polled(response, *, weak, cache="private, no-cache"):
    assert response.status_code == 200, response.get_json()
    etag = response.headers["ETag"]
    assert etag.startswith('W/"') is weak
    assert response.headers["Cache-Control"] == cache
    assert "Authorization" in response.headers["Vary"]
    return etag


@pytest.mark.parametrize(
    ("path", "weak"),
    [
        ("/me", False),
        ("/me/plans", True),
        ("/me/inbox", True),
        ("/me/reminders/upcoming", True),
    ],
)
def test_an_unchanged_read_is_304_without_a_body(client, session, app_user, path, weak):
    first = client.get(API + path, headers=app_user["me"])
    etag = _assert_polled(first, weak=weak)

    again = _revalidate(client, API + path, app_user["me"], etag)

    assert again.status_code == 304
    assert again.data == b""
    assert again.headers["ETag"] == etag
    assert again.headers["Cache-Control"] == "private, no-cache"
    assert "Authorization" in again.headers["Vary"]
    # A validator of another answer (or of another user) is no match.
    assert _revalidate(client, API + path, app_user["me"], 'W/"other"').status_code == 200


def test_the_304_is_decided_before_anything_is_loaded(client, session, app_user):
    url = f"{API}/me/plans"
    with statements(session) as rendered:
        etag = _revalidate(client, url, app_user["me"], 'W/"stale"').headers["ETag"]
    with statements(session) as revalidated:
        assert _revalidate(client, url, app_user["me"], etag).status_code == 304
    reads = [s for s in revalidated if s.lstrip().upper().startswith("SELECT")]
    # One statement: the token's user row and the aggregates beside it; the 200 loads the plans,
    # their checklist, doses, checks and monitoring besides.
    assert len(reads) == 1, reads
    assert len(reads) < len([s for s in rendered if s.lstrip().upper().startswith("SELECT")])


def test_a_new_inbox_message_changes_the_inbox_validator(client, session, app_user):
    url = f"{API}/me/inbox"
    etag = client.get(url, headers=app_user["me"]).headers["ETag"]
    post_to_inbox(
        session,
        patient_id=app_user["patient"].id,
        reminder_id=None,
        kind="dose_upcoming",
        title="Infusion",
        body="Your infusion is next week.",
    )

    fresh = _revalidate(client, url, app_user["me"], etag)

    assert fresh.status_code == 200
    assert fresh.headers["ETag"] != etag
    assert [m["title"] for m in fresh.get_json()["items"]] == ["Infusion"]
    # The cursor stays the way to sync: a read after the cursor has its own validator.
    cursor = fresh.get_json()["next"]
    after = client.get(url, headers=app_user["me"], query_string={"since": cursor})
    assert after.get_json()["items"] == []
    assert after.headers["ETag"] != fresh.headers["ETag"]


def test_a_new_reminder_changes_the_upcoming_validator(client, session, app_user):
    url = f"{API}/me/reminders/upcoming"
    etag = client.get(url, headers=app_user["me"]).headers["ETag"]
    make_reminder(session, app_user["patient"], fire_at=utcnow() + timedelta(days=2))

    assert _revalidate(client, url, app_user["me"], etag).status_code == 200


def test_a_plan_edit_changes_the_plans_validators(client, session, app_user):
    plan_url = f"{API}/plans/{app_user['plan'].id}"
    mine = client.get(f"{API}/me/plans", headers=app_user["me"]).headers["ETag"]
    staff_read = client.get(plan_url, headers=app_user["staff"])
    # Staff reads keep no-store (no patient records on a workstation's disk), and revalidate.
    _assert_polled(staff_read, weak=False, cache="no-store")
    plan_etag = staff_read.headers["ETag"]
    assert _revalidate(client, plan_url, app_user["staff"], plan_etag).status_code == 304

    edited = client.patch(
        plan_url,
        json={"notes": "Premedicate early"},
        headers={**app_user["staff"], "If-Match": plan_etag},
    )

    assert edited.status_code == 200, edited.get_json()
    assert edited.headers["ETag"] != plan_etag
    assert _revalidate(client, plan_url, app_user["staff"], plan_etag).status_code == 200
    assert (
        _revalidate(client, plan_url, app_user["staff"], edited.headers["ETag"]).status_code == 304
    )
    assert _revalidate(client, f"{API}/me/plans", app_user["me"], mine).status_code == 200


def test_a_booking_or_a_result_under_the_plan_changes_its_validator(client, session, app_user):
    plan = app_user["plan"]
    plan_url = f"{API}/plans/{plan.id}"
    etag = client.get(plan_url, headers=app_user["staff"]).headers["ETag"]
    book_dose(session, plan.doses[0], datetime.now(UTC) + timedelta(days=30))
    booked = _revalidate(client, plan_url, app_user["staff"], etag)
    assert booked.status_code == 200

    item = client.get(f"{plan_url}/screening/hbsag", headers=app_user["staff"])
    recorded = client.put(
        f"{plan_url}/screening/hbsag",
        json={"result": "negative", "result_date": date.today().isoformat()},
        headers={**app_user["staff"], "If-Match": item.headers["ETag"]},
    )
    assert recorded.status_code == 200, recorded.get_json()
    assert (
        _revalidate(client, plan_url, app_user["staff"], booked.headers["ETag"]).status_code == 200
    )


def test_a_preference_change_changes_the_me_validator(client, session, app_user):
    url = f"{API}/me"
    etag = client.get(url, headers=app_user["me"]).headers["ETag"]
    changed = client.patch(
        url, json={"reminder_time": "10:15"}, headers={**app_user["me"], "If-Match": etag}
    )
    assert changed.status_code == 200, changed.get_json()

    assert _revalidate(client, url, app_user["me"], etag).status_code == 200
    assert _revalidate(client, url, app_user["me"], changed.headers["ETag"]).status_code == 304


def test_patient_record_validator_follows_staff_edits(client, session, app_user):
    url = f"{API}/patients/{app_user['patient'].id}"
    first = client.get(url, headers=app_user["staff"])
    etag = _assert_polled(first, weak=False, cache="no-store")
    assert _revalidate(client, url, app_user["staff"], etag).status_code == 304
    changed = client.patch(
        url, json={"phone": "+47 555 0100"}, headers={**app_user["staff"], "If-Match": etag}
    )
    assert changed.status_code == 200, changed.get_json()
    assert _revalidate(client, url, app_user["staff"], etag).status_code == 200


def test_staff_list_of_a_patients_plans_revalidates_and_hides_other_clinics(
    client, session, settings, app_user
):
    url = f"{API}/patients/{app_user['patient'].id}/plans"
    etag = _assert_polled(client.get(url, headers=app_user["staff"]), weak=True, cache="no-store")
    assert _revalidate(client, url, app_user["staff"], etag).status_code == 304
    # Another clinic's staff learn nothing from a validator: the patient does not exist for them.
    other = make_user(session, settings, make_clinic(session), "clinician")
    assert _revalidate(client, url, auth_headers(settings, other), etag).status_code == 404
    session.get(type(app_user["plan"]), app_user["plan"].id).notes = "changed"
    session.flush()
    assert _revalidate(client, url, app_user["staff"], etag).status_code == 200

"""A polled read asked again while nothing changed is answered with the body rendered the first
time, without loading it again; any change under it shows at once, and one caller's body never
answers another's request."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from service.api.middleware.rendered import RenderStore
from service.models import AuditEvent, Reminder
from tests.factories import auth_headers, make_patient, make_plan, make_user, sql_statements

API = "/api/v1"


def selects(statements: list[str]) -> list[str]:
    return [s for s in statements if s.lstrip().upper().startswith("SELECT")]


def test_a_plan_read_again_is_not_loaded_again(client, session, app_user):
    url = f"{API}/plans/{app_user['plan'].id}"
    with sql_statements(session) as first_statements:
        first = client.get(url, headers=app_user["staff"])
    with sql_statements(session) as again_statements:
        again = client.get(url, headers=app_user["staff"])
    rendered, kept = selects(first_statements), selects(again_statements)

    assert first.status_code == again.status_code == 200
    assert again.data == first.data
    assert again.headers["ETag"] == first.headers["ETag"]
    assert again.headers["Content-Type"] == "application/json"
    # The token's user, the plan's owner and its stamp in one statement (on SQLite the audit
    # event, written on its own, looks the owner up again); the first read also loaded the
    # checklist, the doses with their checks, the monitoring and the patient's history.
    loads = ("SELECT dose.", "SELECT screening_item.", "SELECT monitoring_task.")
    assert not [s for s in kept if s.lstrip().startswith(loads)], kept
    assert [s for s in rendered if s.lstrip().startswith(loads)]
    # Its audit event still names whose plan was read.
    event = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc()).limit(1)).one()
    assert (event.resource_type, event.resource_id) == ("plan", str(app_user["plan"].id))
    assert event.patient_id == app_user["patient"].id
    sqlite = session.get_bind().dialect.name == "sqlite"
    assert len(kept) == (2 if sqlite else 1), kept
    assert len(rendered) > len(kept) + 3


def test_a_change_under_the_plan_shows_in_the_next_read(client, session, app_user):
    plan_url = f"{API}/plans/{app_user['plan'].id}"
    before = client.get(plan_url, headers=app_user["staff"])
    item = client.get(f"{plan_url}/screening/hbsag", headers=app_user["staff"])
    recorded = client.put(
        f"{plan_url}/screening/hbsag",
        json={"result": "negative", "result_date": date.today().isoformat()},
        headers={**app_user["staff"], "If-Match": item.headers["ETag"]},
    )
    assert recorded.status_code == 200, recorded.get_json()

    after = client.get(plan_url, headers=app_user["staff"])

    def hbsag(response):
        items = response.get_json()["screening"]["items"]
        return next(i for i in items if i["code"] == "hbsag")["result"]

    assert hbsag(before) is None
    assert hbsag(after) == "negative"
    edited = client.patch(
        plan_url,
        json={"notes": "Premedicate early"},
        headers={**app_user["staff"], "If-Match": after.headers["ETag"]},
    )
    assert edited.status_code == 200, edited.get_json()
    assert client.get(plan_url, headers=app_user["staff"]).get_json()["notes"] == (
        "Premedicate early"
    )
    mine = client.get(f"{API}/me/plans", headers=app_user["me"]).get_json()["items"]
    assert mine[0]["notes"] == "Premedicate early"


def test_one_patients_body_never_answers_another(client, session, settings, app_user):
    clinic = app_user["patient"].clinic
    other = make_patient(session, clinic)
    staff = make_user(session, settings, clinic, "clinician")
    other_plan = make_plan(session, other, staff, regimen="ofatumumab-sc")
    other_user = make_user(session, settings, clinic, "patient", patient=other)
    other_me = auth_headers(settings, other_user)

    for _ in range(2):
        mine = client.get(f"{API}/me/plans", headers=app_user["me"]).get_json()["items"]
        theirs = client.get(f"{API}/me/plans", headers=other_me).get_json()["items"]
        assert [p["id"] for p in mine] == [app_user["plan"].id]
        assert [(p["id"], p["regimen"]) for p in theirs] == [(other_plan.id, "ofatumumab-sc")]
        for patient, me in ((app_user["patient"], app_user["me"]), (other, other_me)):
            upcoming = client.get(f"{API}/me/reminders/upcoming", headers=me).get_json()["items"]
            owners = session.scalars(
                select(Reminder.patient_id).where(Reminder.id.in_([r["id"] for r in upcoming]))
            ).all()
            assert upcoming
            assert set(owners) == {patient.id}


def test_another_clinic_is_refused_even_when_the_body_is_kept(client, session, settings, app_user):
    from tests.factories import make_clinic

    url = f"{API}/plans/{app_user['plan'].id}"
    assert client.get(url, headers=app_user["staff"]).status_code == 200
    stranger = auth_headers(settings, make_user(session, settings, make_clinic(session)))

    refused = client.get(url, headers=stranger)

    assert refused.status_code == 404
    assert refused.get_json()["code"] == "not_found"


def test_the_store_keeps_at_most_its_bytes_and_can_be_off():
    store = RenderStore(max_bytes=10)
    store.put(("/a", b"", "1"), b"123456")
    store.put(("/b", b"", "1"), b"789012")  # pushes out the least recently used
    store.put(("/c", b"", "1"), b"x" * 11)  # larger than the store: never kept
    assert store.get(("/a", b"", "1")) is None
    assert store.get(("/b", b"", "1")) == b"789012"
    assert store.get(("/c", b"", "1")) is None

    off = RenderStore(max_bytes=0)
    off.put(("/a", b"", "1"), b"1")
    assert off.get(("/a", b"", "1")) is None


def test_a_kept_body_is_answered_with_the_same_headers_as_the_rendered_one(client, app_user):
    plan_id, patient_id = app_user["plan"].id, app_user["patient"].id
    reads = [
        (f"{API}/plans/{plan_id}", app_user["staff"]),
        (f"{API}/patients/{patient_id}", app_user["staff"]),
        (f"{API}/patients/{patient_id}/plans", app_user["staff"]),
        (f"{API}/me/plans", app_user["me"]),
        (f"{API}/me/inbox", app_user["me"]),
        (f"{API}/me/reminders/upcoming", app_user["me"]),
    ]
    per_request = {"Date", "X-Request-ID"}
    for url, headers in reads:
        rendered, kept = client.get(url, headers=headers), client.get(url, headers=headers)
        assert rendered.status_code == kept.status_code == 200, url
        assert kept.data == rendered.data, url
        assert {k: v for k, v in kept.headers if k not in per_request} == {
            k: v for k, v in rendered.headers if k not in per_request
        }, url

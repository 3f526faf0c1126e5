"""Infusions as the labels describe them, through the HTTP API: chair time from the catalog's
rate steps, the shorter ocrelizumab infusion and who may have it, ublituximab's observation
after an earlier reaction, and the infusion and observation times on the record."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

from dateutil.relativedelta import relativedelta

from tests.api.test_doses import BERLIN, _doses, _give, _patch, at
from tests.factories import auth_headers, make_clinic, make_patient, make_plan, make_user

TODAY = date.today()


def _setup(session, settings, *, regimen="ocrelizumab-iv", start=None, cleared=False):
    clinic = make_clinic(session, time_zone="Europe/Berlin")
    staff = make_user(session, settings, clinic, "clinician")
    patient = make_patient(session, clinic, can_become_pregnant=False)
    plan = make_plan(
        session, patient, staff, regimen=regimen, start_date=start or TODAY, cleared=cleared
    )
    return plan, auth_headers(settings, staff)


def _schedule_item(client, headers, day, dose_id):
    schedule = client.get(f"/api/v1/staff/schedule?date={day.isoformat()}", headers=headers)
    assert schedule.status_code == 200
    return next(i for i in schedule.get_json()["items"] if i["dose"]["id"] == dose_id)


def test_chair_time_of_the_shorter_ocrelizumab_infusion_is_shorter(client, session, settings):
    plan, headers = _setup(session, settings)
    maintenance = _doses(client, plan.id, headers)[2]
    day = date.fromisoformat(maintenance["due_date"])
    booked = _patch(client, maintenance["id"], {"appointment_at": at(day, 9)}, headers)
    assert booked.status_code == 200, booked.get_json()
    standard = _schedule_item(client, headers, day, maintenance["id"])
    # 500 mL at 40 mL/h raised by 40 every 30 min to 200: 210 min, then 60 min observation.
    assert (standard["expected_infusion_minutes"], standard["expected_chair_minutes"]) == (210, 270)
    assert standard["infusion_option"] is None

    chosen = _patch(client, maintenance["id"], {"infusion_option": "short_2h"}, headers)
    assert chosen.status_code == 200, chosen.get_json()
    assert chosen.get_json()["infusion_option"] == "short_2h"
    assert chosen.get_json()["chair_minutes"] == 180
    short = _schedule_item(client, headers, day, maintenance["id"])
    # 15 + 15 + 30 + 60 min at 100, 200, 250, 300 mL/h, then the same hour of observation.
    assert (short["expected_infusion_minutes"], short["expected_chair_minutes"]) == (120, 180)
    assert short["expected_chair_minutes"] < standard["expected_chair_minutes"]

    # The initial 300 mg infusions have no shorter option.
    first = _doses(client, plan.id, headers)[0]
    refused = _patch(client, first["id"], {"infusion_option": "short_2h"}, headers)
    assert refused.status_code == 422
    assert "infusion_option" in refused.get_json()["errors"]
    back = _patch(client, maintenance["id"], {"infusion_option": None}, headers)
    assert back.get_json()["chair_minutes"] == 270


def test_the_shorter_infusion_is_refused_after_a_serious_reaction(client, session, settings):
    start = TODAY - timedelta(days=30)
    plan, headers = _setup(session, settings, start=start, cleared=True)
    doses = _doses(client, plan.id, headers)
    reaction = {"grade": "severe", "onset_at": at(start, 10, 50), "action": "interrupted"}
    given = _give(client, doses[0]["id"], headers, start, reaction=reaction)
    assert given.status_code == 201, given.get_json()

    refused = _patch(client, doses[2]["id"], {"infusion_option": "short_2h"}, headers)
    assert refused.status_code == 409
    problem = refused.get_json()
    assert problem["code"] == "infusion_option_not_allowed"
    assert problem["requires"] == "no_prior_serious_reaction"
    assert _doses(client, plan.id, headers)[2]["infusion_option"] is None


def test_ublituximab_observes_an_hour_after_infusion_3_after_an_earlier_reaction(
    client, session, settings
):
    start = TODAY - timedelta(weeks=24, days=3)
    plan, headers = _setup(session, settings, regimen="ublituximab-iv", start=start, cleared=True)
    doses = _doses(client, plan.id, headers)
    assert doses[2]["required_observation_minutes"] == 0  # physician's discretion
    mild = {"grade": "mild_moderate", "onset_at": at(start, 10, 40), "action": "rate halved"}
    assert (
        _give(client, doses[0]["id"], headers, start, amount_mg=150, reaction=mild).status_code
        == 201
    )
    second = start + timedelta(days=14)
    assert _give(client, doses[1]["id"], headers, second, amount_mg=450).status_code == 201
    doses = _doses(client, plan.id, headers)
    assert doses[2]["required_observation_minutes"] == 60
    assert doses[2]["chair_minutes"] == 60 + 60

    third = date.fromisoformat(doses[2]["due_date"])
    given = _give(
        client,
        doses[2]["id"],
        headers,
        third,
        amount_mg=450,
        infusion_ended_at=at(third, 11),
        observation_ended_at=at(third, 11, 30),
    )
    assert given.status_code == 201, given.get_json()
    body = given.get_json()
    assert body["administration"]["observation_minutes"] == 30
    assert (
        body["administration"]["infusion_started_at"] == body["administration"]["administered_at"]
    )
    assert [w["code"] for w in body["warnings"]] == ["observation_short"]


def test_the_staff_views_count_an_earlier_reaction_for_ublituximab_infusion_3(
    client, session, settings
):
    start = TODAY - timedelta(weeks=24, days=3)
    plan, headers = _setup(session, settings, regimen="ublituximab-iv", start=start, cleared=True)
    doses = _doses(client, plan.id, headers)
    mild = {"grade": "mild_moderate", "onset_at": at(start, 10, 40), "action": "rate halved"}
    _give(client, doses[0]["id"], headers, start, amount_mg=150, reaction=mild)
    _give(client, doses[1]["id"], headers, start + timedelta(days=14), amount_mg=450)
    third = date.fromisoformat(doses[2]["due_date"])
    booked = _patch(client, doses[2]["id"], {"appointment_at": at(third, 9)}, headers)
    assert booked.status_code == 200, booked.get_json()
    # The schedule reads the reaction under dose 1: an hour of observation after the infusion.
    assert _schedule_item(client, headers, third, doses[2]["id"])["expected_chair_minutes"] == 120

    given = _give(
        client,
        doses[2]["id"],
        headers,
        third,
        amount_mg=450,
        infusion_ended_at=at(third, 11),
        observation_ended_at=at(third, 11, 30),
    )
    assert given.status_code == 201, given.get_json()
    worklist = client.get("/api/v1/staff/worklist", headers=headers).get_json()
    missing = [
        (e["dose"]["id"], e["required_minutes"], e["recorded_minutes"])
        for e in worklist["observation_missing"]
    ]
    assert missing == [(doses[2]["id"], 60, 30)]
    # Given now, the dose is still on the day's list, its chair time still the hour after.
    assert _schedule_item(client, headers, third, doses[2]["id"])["expected_chair_minutes"] == 120


def test_ublituximab_infusion_3_without_earlier_reactions_needs_no_observation(
    client, session, settings
):
    start = TODAY - timedelta(weeks=24, days=3)
    plan, headers = _setup(session, settings, regimen="ublituximab-iv", start=start, cleared=True)
    doses = _doses(client, plan.id, headers)
    _give(client, doses[0]["id"], headers, start, amount_mg=150)
    _give(client, doses[1]["id"], headers, start + timedelta(days=14), amount_mg=450)
    doses = _doses(client, plan.id, headers)
    assert doses[2]["required_observation_minutes"] == 0
    assert doses[2]["chair_minutes"] == 60


def test_observation_recorded_after_the_fact_clears_the_worklist(client, session, settings):
    start = TODAY - timedelta(days=3)
    plan, headers = _setup(session, settings, start=start, cleared=True)
    first = _doses(client, plan.id, headers)[0]
    assert _give(client, first["id"], headers, start).status_code == 201

    def missing():
        worklist = client.get("/api/v1/staff/worklist", headers=headers).get_json()
        return [e["dose"]["id"] for e in worklist["observation_missing"]]

    assert missing() == [first["id"]]
    # The observation cannot end before the infusion it follows, nor disagree with its minutes.
    wrong = _patch(
        client,
        first["id"],
        {
            "administration": {
                "infusion_ended_at": at(start, 12, 40),
                "observation_ended_at": at(start, 12, 30),
            }
        },
        headers,
    )
    assert wrong.status_code == 422
    assert "observation_ended_at" in wrong.get_json()["errors"]
    disagree = _patch(
        client,
        first["id"],
        {
            "administration": {
                "infusion_ended_at": at(start, 12, 40),
                "observation_ended_at": at(start, 13, 50),
                "observation_minutes": 60,
            }
        },
        headers,
    )
    assert disagree.status_code == 422
    assert "observation_minutes" in disagree.get_json()["errors"]

    short = _patch(
        client,
        first["id"],
        {
            "administration": {
                "infusion_ended_at": at(start, 12, 40),
                "observation_ended_at": at(start, 13, 20),
            }
        },
        headers,
    )
    assert short.status_code == 200, short.get_json()
    assert short.get_json()["administration"]["observation_minutes"] == 40
    assert [w["code"] for w in short.get_json()["warnings"]] == ["observation_short"]
    assert missing() == [first["id"]]

    done = _patch(
        client,
        first["id"],
        {"administration": {"observation_ended_at": at(start, 13, 45)}},
        headers,
    )
    assert done.status_code == 200, done.get_json()
    record = done.get_json()["administration"]
    assert record["observation_minutes"] == 65
    assert done.get_json()["warnings"] == []
    ended = datetime.fromisoformat(record["infusion_ended_at"])
    assert ended == datetime.combine(start, time(12, 40), BERLIN)
    assert missing() == []

    # A dose not given has no record to complete.
    later = _doses(client, plan.id, headers)[1]
    not_given = _patch(
        client, later["id"], {"administration": {"observation_minutes": 60}}, headers
    )
    assert not_given.status_code == 409


def test_chair_time_of_a_later_maintenance_dose_counts_calendar_months(client, session, settings):
    plan, headers = _setup(session, settings, start=TODAY)
    doses = _doses(client, plan.id, headers)
    assert doses[3]["due_date"] == (TODAY + relativedelta(months=12)).isoformat()
    assert [d["chair_minutes"] for d in doses] == [219, 219, 270, 270]

"""Time zones are IANA region zones (or UTC): `localtime`, `Factory`, POSIX rules, fixed offsets
and legacy aliases name no place, and `localtime` follows the server, so all are 422."""

from __future__ import annotations

import pytest

from tests.factories import auth_headers, make_clinic, make_patient, make_user

PATIENTS = "/api/v1/patients"
CLINIC = "/api/v1/clinic"
NOT_REGIONS = [
    "localtime",
    "Factory",
    "posixrules",
    "EST5EDT",
    "CET",
    "GMT",
    "Etc/GMT+5",
    "Etc/UTC",
    "US/Eastern",
    "Zulu",
    "Europe/Nowhere",
    "../../etc/passwd",
]
REGIONS = ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Asia/Kolkata"]


def _new_patient(mrn, time_zone):
    return {
        "mrn": mrn,
        "given_name": "Ida",
        "family_name": "Zone",
        "birth_date": "1980-01-01",
        "time_zone": time_zone,
    }


def _patch(client, url, body, headers):
    etag = client.get(url, headers=headers).headers["ETag"]
    return client.patch(url, json=body, headers={**headers, "If-Match": etag})


def _assert_time_zone_refused(response):
    assert response.status_code == 422, response.get_json()
    assert response.content_type == "application/problem+json"
    assert response.get_json()["code"] == "validation_failed"
    assert set(response.get_json()["errors"]) == {"time_zone"}


@pytest.mark.parametrize("zone", NOT_REGIONS)
def test_patients_refuse_zones_that_name_no_region(client, session, settings, zone):
    clinic = make_clinic(session)
    headers = auth_headers(settings, make_user(session, settings, clinic))
    _assert_time_zone_refused(
        client.post(PATIENTS, json=_new_patient("TZ-1", zone), headers=headers)
    )
    patient = make_patient(session, clinic)
    changed = _patch(client, f"{PATIENTS}/{patient.id}", {"time_zone": zone}, headers)
    _assert_time_zone_refused(changed)
    session.refresh(patient)
    assert patient.time_zone == "Europe/Berlin"


@pytest.mark.parametrize("zone", NOT_REGIONS)
def test_clinics_refuse_zones_that_name_no_region(client, session, settings, zone):
    clinic = make_clinic(session)
    admin = auth_headers(settings, make_user(session, settings, clinic, "admin"))
    _assert_time_zone_refused(_patch(client, CLINIC, {"time_zone": zone}, admin))
    session.refresh(clinic)
    assert clinic.time_zone == "Europe/Berlin"


@pytest.mark.parametrize("zone", REGIONS)
def test_region_zones_and_utc_are_accepted(client, session, settings, zone):
    clinic = make_clinic(session)
    headers = auth_headers(settings, make_user(session, settings, clinic))
    created = client.post(PATIENTS, json=_new_patient(f"TZ-{zone}", zone), headers=headers)
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["time_zone"] == zone
    admin = auth_headers(settings, make_user(session, settings, clinic, "admin"))
    assert _patch(client, CLINIC, {"time_zone": zone}, admin).status_code == 200

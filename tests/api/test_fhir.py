"""FHIR through the HTTP API: the export validates resource by resource with fhir.resources, the
codes come from the code table, and Observations come back in (units converted, qualitative
results onto the checklist, idempotent on the identifier, refused entries listed one by one),
including a round trip from one patient to another."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import func, select

from service.models import ImportedObservation, LabResult
from service.treatment.doses import record_administration
from service.treatment.labs import record_lab
from tests.factories import (
    actor_of,
    answer_infection_check,
    auth_headers,
    book_dose,
    make_clinic,
    make_patient,
    make_plan,
    make_user,
)

LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
FHIR_JSON = "application/fhir+json"
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def world(session, settings):
    clinic = make_clinic(session, time_zone="Europe/Berlin")
    staff = make_user(session, settings, clinic, "clinician")
    patient = make_patient(session, clinic, sex="female")
    user = make_user(session, settings, clinic, "patient", patient=patient)
    start = date.today() - timedelta(days=20)
    plan = make_plan(session, patient, staff, start_date=start, cleared=True)
    given_at = datetime.combine(start, time(10), BERLIN)
    answer_infection_check(session, plan.doses[0], staff, on=start)
    record_administration(
        session,
        actor_of(staff),
        plan.doses[0].id,
        administered_at=given_at,
        amount_mg=plan.doses[0].amount_mg,
        premedications=[
            {"drug": "methylprednisolone", "given_at": given_at - timedelta(minutes=30)},
            {"drug": "diphenhydramine", "given_at": given_at - timedelta(minutes=45)},
        ],
        reaction={"grade": "mild_moderate", "onset_at": given_at + timedelta(minutes=40)},
    )
    book_dose(
        session, plan.doses[1], datetime.combine(date.today() + timedelta(days=3), time(9), BERLIN)
    )
    taken = datetime.now(UTC) - timedelta(days=2)
    for code, value, unit in (
        ("igg", 5.9, "g/L"),
        ("hbv_dna", 12.0, "IU/mL"),
        ("bilirubin", 9.0, "umol/L"),
        ("neutrophils", 2.4, "10^9/L"),
    ):
        record_lab(
            session, actor_of(staff), patient.id, code=code, value=value, unit=unit, taken_at=taken
        )
    other = make_patient(session, clinic)
    make_plan(session, other, staff, start_date=date.today() + timedelta(days=30))
    return {
        "clinic": clinic,
        "staff": staff,
        "patient": patient,
        "user": user,
        "plan": plan,
        "other": other,
        "headers": auth_headers(settings, staff),
    }


def _bundle(response) -> tuple[Bundle, dict]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == FHIR_JSON
    data = json.loads(response.get_data())
    return Bundle.model_validate(data), data


def _resources(data, kind):
    return [e["resource"] for e in data["entry"] if e["resource"]["resourceType"] == kind]


def _codes(concept):
    return {(c.get("system"), c.get("code")) for c in concept.get("coding", [])}


def test_every_exported_resource_validates_and_references_resolve(client, world):
    bundle, data = _bundle(
        client.get(f"/api/v1/patients/{world['patient'].id}/fhir", headers=world["headers"])
    )
    assert bundle.type == "collection"
    full_urls = {entry["fullUrl"] for entry in data["entry"]}
    for entry in data["entry"]:
        resource = entry["resource"]
        model = get_fhir_model_class(resource["resourceType"])
        model.model_validate(resource)  # each one on its own, too
        assert resource["meta"]["source"].startswith("urn:cd20-monitor")
        for text in _references(resource):
            assert text in full_urls, (resource["resourceType"], text)
    kinds = {entry["resource"]["resourceType"] for entry in data["entry"]}
    assert kinds >= {
        "Patient",
        "CarePlan",
        "MedicationRequest",
        "Appointment",
        "MedicationAdministration",
        "Observation",
        "Task",
    }


def _references(value):
    if isinstance(value, dict):
        for key, item in value.items():
            if key == "reference" and isinstance(item, str):
                yield item
            else:
                yield from _references(item)
    elif isinstance(value, list):
        for item in value:
            yield from _references(item)


def test_the_export_maps_the_plan_and_codes_from_the_table(client, world):
    plan = world["plan"]
    _bundle_model, data = _bundle(
        client.get(f"/api/v1/patients/{world['patient'].id}/fhir", headers=world["headers"])
    )
    (patient,) = _resources(data, "Patient")
    assert patient["identifier"][0]["value"] == world["patient"].mrn
    assert patient["gender"] == "female"
    (careplan,) = [c for c in _resources(data, "CarePlan") if c["id"] == str(plan.id)]
    assert careplan["status"] == "active"  # ready, with a dose given
    requests = _resources(data, "MedicationRequest")
    assert len(requests) == len({dose.course for dose in plan.doses})
    for request in requests:
        # Ocrelizumab: SNOMED CT substance 733464008 (no confirmed current ATC code).
        assert (SNOMED, "733464008") in _codes(request["medicationCodeableConcept"])
    (appointment,) = _resources(data, "Appointment")
    assert appointment["status"] == "booked"
    start = datetime.fromisoformat(appointment["start"])
    assert start == plan.doses[1].appointment_at
    (given,) = _resources(data, "MedicationAdministration")
    assert given["dosage"]["dose"] == {
        "value": plan.doses[0].amount_mg,
        "unit": "mg",
        "system": UCUM,
        "code": "mg",
    }
    (reaction,) = [o for o in _resources(data, "Observation") if o.get("partOf")]
    assert reaction["valueString"] == "mild_moderate"
    given_url = next(e["fullUrl"] for e in data["entry"] if e["resource"] == given)
    assert reaction["partOf"][0]["reference"] == given_url

    observations = {tuple(sorted(_codes(o["code"]))): o for o in _resources(data, "Observation")}
    by_loinc = {
        code: o
        for o in _resources(data, "Observation")
        for system, code in _codes(o["code"])
        if system == LOINC
    }
    igg = by_loinc["2465-3"]
    assert igg["valueQuantity"] == {"value": 5.9, "unit": "g/L", "system": UCUM, "code": "g/L"}
    assert igg["referenceRange"][0]["low"]["value"] == 6.7
    assert igg["interpretation"][0]["coding"][0]["code"] == "L"
    assert by_loinc["42595-9"]["valueQuantity"]["code"] == "[IU]/mL"
    assert by_loinc["751-8"]["valueQuantity"]["code"] == "10*9/L"
    hbsag = by_loinc["5196-1"]
    assert (SNOMED, "260385009") in _codes(hbsag["valueCodeableConcept"])  # negative
    # Bilirubin in umol/L has no confirmed LOINC code: text and the local code only.
    (bilirubin,) = [o for o in observations.values() if o["code"]["text"] == "Total bilirubin"]
    assert {system for system, _ in _codes(bilirubin["code"])} == {"urn:cd20-monitor:lab"}
    assert "code" not in bilirubin["valueQuantity"]
    tasks = _resources(data, "Task")
    assert len(tasks) == len(plan.monitoring_tasks)
    assert {t["status"] for t in tasks} <= {"requested", "completed", "cancelled"}


def test_the_patient_reads_their_own_bundle(client, world, settings):
    headers = auth_headers(settings, world["user"])
    _model, mine = _bundle(client.get("/api/v1/me/fhir", headers=headers))
    (patient,) = _resources(mine, "Patient")
    assert patient["id"] == str(world["patient"].id)
    other = client.get(f"/api/v1/patients/{world['other'].id}/fhir", headers=headers)
    assert other.status_code == 404
    assert other.mimetype == "application/problem+json"


def _observation(identifier, *, loinc="2465-3", value=8.1, unit="g/L", when=None, **extra):
    data = {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": "urn:example:lab", "value": identifier}],
        "code": {"coding": [{"system": LOINC, "code": loinc}]},
        "effectiveDateTime": (when or datetime.now(UTC) - timedelta(hours=3)).isoformat(),
        "valueQuantity": {"value": value, "unit": unit, "system": UCUM, "code": unit},
    }
    data.update(extra)
    return data


def _post(client, world, body, patient=None):
    patient_id = (patient or world["patient"]).id
    return client.post(
        f"/api/v1/patients/{patient_id}/fhir/observations",
        data=json.dumps(body),
        headers={**world["headers"], "Content-Type": FHIR_JSON},
    )


def _lab_count(session, patient) -> int:
    return session.scalar(
        select(func.count()).select_from(LabResult).where(LabResult.patient_id == patient.id)
    )


def test_an_observation_is_imported_once_and_converted_to_our_unit(client, session, world):
    other = world["other"]
    body = _observation("lab-1", value=5400, unit="mg/L")  # IgG in mg/L: stored in g/L
    first = _post(client, world, body, other)
    assert first.status_code == 200, first.get_json()
    assert first.get_json()["created"] == 1
    lab = session.get(LabResult, first.get_json()["items"][0]["target"]["id"])
    assert (lab.code, lab.value, lab.unit, lab.flag) == ("igg", 5.4, "g/L", "low")

    again = _post(client, world, body, other)
    assert again.get_json() == {**again.get_json(), "created": 0, "unchanged": 1}
    assert _lab_count(session, other) == 1

    changed = _post(client, world, _observation("lab-1", value=6000, unit="mg/L"), other)
    assert changed.status_code == 422
    assert changed.get_json()["code"] == "fhir_observations_rejected"
    assert "observation" in changed.get_json()["errors"]
    assert _lab_count(session, other) == 1


def test_refused_entries_are_listed_each_and_nothing_is_stored(client, session, world):
    other = world["other"]
    bundle = {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": _observation("ok-1")},
            {"resource": _observation("unknown-1", loinc="99999-9")},
            {"resource": {**_observation("bad-1"), "valueQuantity": {"value": "lots"}}},
            {"resource": {**_observation("no-id"), "identifier": []}},
            {"resource": _observation("unit-1", unit="mmol/L")},
            {"resource": {"resourceType": "Patient"}},
        ],
    }
    response = _post(client, world, bundle, other)
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    errors = response.get_json()["errors"]
    assert set(errors) == {"entry[1]", "entry[2]", "entry[3]", "entry[4]", "entry[5]"}
    assert "code" in errors["entry[1]"][0]
    assert "valueQuantity" in errors["entry[2]"][0]
    assert "identifier" in errors["entry[3]"][0]
    assert "unit" in errors["entry[4]"][0]
    assert _lab_count(session, other) == 0
    assert session.scalar(select(func.count()).select_from(ImportedObservation)) == 0

    not_fhir = _post(client, world, {"resourceType": "Patient"}, other)
    assert not_fhir.status_code == 422
    assert set(not_fhir.get_json()["errors"]) == {"resourceType"}


def test_qualitative_results_fill_the_checklist(client, session, world):
    other = world["other"]
    anti_hbc = {
        "resourceType": "Observation",
        "status": "final",
        "identifier": [{"system": "urn:example:lab", "value": "hbc-1"}],
        "code": {"coding": [{"system": LOINC, "code": "13952-7"}]},
        "effectiveDateTime": (date.today() - timedelta(days=1)).isoformat(),
        "valueCodeableConcept": {"coding": [{"system": SNOMED, "code": "10828004"}]},
    }
    response = _post(client, world, anti_hbc, other)
    assert response.status_code == 200, response.get_json()
    plans = client.get(f"/api/v1/patients/{other.id}/plans", headers=world["headers"])
    plan_id = plans.get_json()["items"][0]["id"]
    item = client.get(f"/api/v1/plans/{plan_id}/screening/anti_hbc", headers=world["headers"])
    assert item.get_json()["result"] == "positive"
    checklist = client.get(f"/api/v1/plans/{plan_id}/screening", headers=world["headers"])
    assert checklist.get_json()["outcome"] == "needs_review"


def test_a_round_trip_moves_a_patients_labs_to_another_patient(client, session, world):
    source, target = world["patient"], world["other"]
    _model, data = _bundle(
        client.get(f"/api/v1/patients/{source.id}/fhir", headers=world["headers"])
    )
    labs = [
        entry
        for entry in data["entry"]
        if entry["resource"]["resourceType"] == "Observation"
        and entry["resource"].get("valueQuantity")
    ]
    response = _post(
        client, world, {"resourceType": "Bundle", "type": "collection", "entry": labs}, target
    )
    assert response.status_code == 200, response.get_json()

    def results(patient):
        rows = session.scalars(select(LabResult).where(LabResult.patient_id == patient.id))
        return sorted(
            (r.code, r.value, r.unit, r.taken_at, r.ref_low, r.ref_high, r.flag) for r in rows
        )

    assert results(target) == results(source)
    assert len(results(target)) == 4


def test_the_openapi_document_names_the_media_types(client):
    paths = client.get("/openapi.json").get_json()["paths"]
    assert (
        "application/fhir+json"
        in paths["/api/v1/patients/{patient_id}/fhir"]["get"]["responses"]["200"]["content"]
    )
    assert "application/fhir+json" in paths["/api/v1/me/fhir"]["get"]["responses"]["200"]["content"]
    imported = paths["/api/v1/patients/{patient_id}/fhir/observations"]["post"]
    assert "application/fhir+json" in imported["requestBody"]["content"]
    for path in ("/api/v1/me/calendar.ics", "/api/v1/staff/schedule.ics"):
        responses = paths[path]["get"]["responses"]
        assert "text/calendar" in responses["200"]["content"]
        assert "304" in responses
    secret = paths["/api/v1/feeds/{feed_token}/calendar.ics"]["get"]
    assert secret["security"] == []


def test_a_body_that_is_not_json_is_a_problem_not_a_crash(client, world):
    response = client.post(
        f"/api/v1/patients/{world['patient'].id}/fhir/observations",
        data=b"<Observation/>",
        headers={**world["headers"], "Content-Type": FHIR_JSON},
    )
    assert 400 <= response.status_code < 500
    assert response.mimetype == "application/problem+json"
    assert response.get_json()["code"]

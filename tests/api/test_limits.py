"""Limits: body size, page size, string lengths on every field, no mass assignment."""

from __future__ import annotations

import io
import json
from typing import Any

import marshmallow as ma
import pytest
from marshmallow import fields, validate
from sqlalchemy import func, select

from schemas.common import MAX_PAGE_SIZE, TimeZoneField
from service.models import Patient, TreatmentPlan
from tests.factories import auth_headers, make_clinic, make_patient, make_plan, make_user

PATIENTS = "/api/v1/patients"
NEW_PATIENT = {
    "mrn": "LIM-1",
    "given_name": "Lena",
    "family_name": "Limit",
    "birth_date": "1984-05-02",
    "time_zone": "Europe/Berlin",
}
# Fields the server owns: a client may never set them.
SERVER_OWNED = (
    "id",
    "clinic_id",
    "patient_id",
    "role",
    "version",
    "created_at",
    "updated_at",
    "prescriber_id",
    "recorded_by_id",
    "user_id",
    "status",
)
# (method, rule) -> server-owned names a client legitimately sends there.
CLIENT_SET = {
    # An admin creates staff accounts and changes a staff member's role (admin or clinician).
    ("POST", "/api/v1/users"): {"role"},
    ("PATCH", "/api/v1/users/<int:user_id>"): {"role"},
    # Status changes are the point of these routes, each checked against the allowed transitions.
    ("PATCH", "/api/v1/plans/<int:plan_id>"): {"status"},
    ("PATCH", "/api/v1/doses/<int:dose_id>"): {"status"},
    ("PATCH", "/api/v1/monitoring/<int:task_id>"): {"status"},
}


def _body_routes(app) -> list[tuple[str, str, ma.Schema]]:
    """(method, rule, schema) for every route that reads a JSON body."""
    found = []
    for rule in app.url_map.iter_rules():
        view_class = getattr(app.view_functions[rule.endpoint], "view_class", None)
        for method in ("post", "put", "patch"):
            function = getattr(view_class, method, None)
            for parameter in (
                getattr(function, "_apidoc", {}).get("arguments", {}).get("parameters", [])
            ):
                if parameter.get("in") == "json":
                    schema = parameter["schema"]
                    schema = schema() if isinstance(schema, type) else schema
                    found.append((method.upper(), rule.rule, schema))
    return sorted(found, key=lambda item: (item[1], item[0]))


def _query_schemas(app) -> list[tuple[str, ma.Schema]]:
    found = []
    for rule in app.url_map.iter_rules():
        view_class = getattr(app.view_functions[rule.endpoint], "view_class", None)
        for method in ("get", "post"):
            function = getattr(view_class, method, None)
            for parameter in (
                getattr(function, "_apidoc", {}).get("arguments", {}).get("parameters", [])
            ):
                if parameter.get("in") == "query":
                    schema = parameter["schema"]
                    found.append((rule.rule, schema() if isinstance(schema, type) else schema))
    return found


def _url(rule: str) -> str:
    """A concrete URL for a rule: ids are made up (the body is refused before any lookup)."""
    import re

    return re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: "hbsag" if m.group(1) == "string" else "1", rule)


def _bounded(field: fields.Field) -> bool:
    validators = field.validators
    if any(isinstance(v, validate.OneOf) for v in validators) or isinstance(field, TimeZoneField):
        return True
    return any(isinstance(v, validate.Length) and v.max is not None for v in validators)


def _unbounded_strings(schema: ma.Schema, prefix: str = "") -> list[str]:
    """Loadable fields that take text without a maximum length (or take anything at all)."""
    problems = []

    def visit(name: str, field: fields.Field) -> None:
        if field.dump_only:
            return
        if isinstance(field, fields.Nested):
            nested = field.schema
            problems.extend(_unbounded_strings(nested, f"{name}."))
        elif isinstance(field, fields.List):
            visit(f"{name}[]", field.inner)
        elif isinstance(field, fields.Dict):
            if field.key_field is None or field.value_field is None:
                problems.append(f"{name} (free-form object)")
            if field.key_field is not None:
                visit(f"{name}{{key}}", field.key_field)
            if field.value_field is not None:
                visit(f"{name}{{value}}", field.value_field)
        elif isinstance(field, fields.String) and not _bounded(field):
            problems.append(name)
        elif type(field) is fields.Raw:
            problems.append(f"{name} (any JSON)")

    for name, field in schema.fields.items():
        visit(prefix + name, field)
    return problems


# Free-form on the wire, bounded by the use case: clinics.settings.validate_clinic_settings checks
# each regimen's options against the catalog and caps `reminders` at 10,000 characters of JSON.
CHECKED_BY_USE_CASE = {"PATCH /api/v1/clinic: settings{value} (free-form object)"}


def test_every_text_field_of_every_body_and_query_has_a_maximum_length(app):
    problems = [
        f"{method} {rule}: {name}"
        for method, rule, schema in _body_routes(app)
        for name in _unbounded_strings(schema)
    ]
    problems += [
        f"GET {rule} (query): {name}"
        for rule, schema in _query_schemas(app)
        for name in _unbounded_strings(schema)
    ]
    assert sorted(set(problems) - CHECKED_BY_USE_CASE) == []


def test_clinic_settings_values_are_bounded(client, session, settings, clinic, admin):
    headers = auth_headers(settings, admin)
    etag = client.get("/api/v1/clinic", headers=headers).headers["ETag"]
    for value in (
        {"reminders": {"note": "x" * 10_001}},
        {"ocrelizumab-iv": {"min_interval": "x" * 5_000}},
        {"ocrelizumab-iv": {"x" * 65: "five_months"}},
    ):
        response = client.patch(
            "/api/v1/clinic", json={"settings": value}, headers={**headers, "If-Match": etag}
        )
        assert response.status_code == 422, value
        assert "settings" in response.get_json()["errors"]


def _long_value_cases(schema: ma.Schema) -> list[tuple[str, dict[str, Any]]]:
    """(field path, body) with one string one character over its limit."""
    cases = []
    for name, field in schema.fields.items():
        if field.dump_only:
            continue
        if isinstance(field, fields.Nested):
            for path, inner in _long_value_cases(field.schema):
                value = [inner] if field.many else inner
                cases.append((f"{name}.{path}", {name: value}))
        elif isinstance(field, fields.List) and isinstance(field.inner, fields.Nested):
            for path, inner in _long_value_cases(field.inner.schema):
                cases.append((f"{name}[0].{path}", {name: [inner]}))
        elif isinstance(field, fields.List) and isinstance(field.inner, fields.String):
            cases.append((f"{name}[0]", {name: [_too_long(field.inner)]}))
        elif isinstance(field, fields.Dict) and isinstance(field.key_field, fields.String):
            cases.append((f"{name}{{key}}", {name: {_too_long(field.key_field): "x"}}))
        elif isinstance(field, fields.String):
            cases.append((name, {name: _too_long(field)}))
    return cases


def _too_long(field: fields.Field) -> str:
    limits = [v.max for v in field.validators if isinstance(v, validate.Length) and v.max]
    return "x" * ((min(limits) if limits else 1000) + 1)


@pytest.fixture
def admin(session, settings, clinic):
    return make_user(session, settings, clinic, "admin")


@pytest.fixture
def staff_headers(settings, admin):
    return auth_headers(settings, admin, **{"If-Match": '"any"'})


def test_an_over_long_string_in_any_field_is_422(app, client, session, staff_headers):
    failures, checked = [], 0
    for method, rule, schema in _body_routes(app):
        for path, body in _long_value_cases(schema):
            checked += 1
            response = client.open(_url(rule), method=method, json=body, headers=staff_headers)
            errors = (response.get_json() or {}).get("errors") or {}
            top = path.split(".")[0].split("[")[0].split("{")[0]
            leaf = path.rsplit(".", 1)[-1].split("[")[0].split("{")[0]
            if (
                response.status_code != 422
                or response.content_type != "application/problem+json"
                or top not in errors
                or (leaf not in json.dumps(errors[top]) and leaf != top)
            ):
                failures.append((method, rule, path, response.status_code, errors))
    assert checked > 40
    assert failures == []


def test_over_long_strings_create_and_change_nothing(client, session, settings, clinic, admin):
    headers = auth_headers(settings, admin)
    for name, limit in (("mrn", 64), ("given_name", 100), ("family_name", 100), ("phone", 32)):
        response = client.post(
            PATIENTS, json=dict(NEW_PATIENT, **{name: "x" * (limit + 1)}), headers=headers
        )
        assert response.status_code == 422
        assert set(response.get_json()["errors"]) == {name}
    # Exactly at the limit is fine.
    assert (
        client.post(
            PATIENTS, json=dict(NEW_PATIENT, given_name="x" * 100), headers=headers
        ).status_code
        == 201
    )
    assert session.scalar(select(func.count()).where(Patient.clinic_id == clinic.id)) == 1


# --- body size ---------------------------------------------------------------------------------


def test_a_body_over_the_maximum_size_is_413_problem_json(client, session, settings, clinic, admin):
    big = dict(NEW_PATIENT, given_name="x" * settings.max_content_length)
    for headers in (
        auth_headers(settings, admin),
        auth_headers(settings, admin, **{"Idempotency-Key": "big"}),
    ):
        response = client.post(PATIENTS, json=big, headers=headers)
        assert response.status_code == 413
        assert response.content_type == "application/problem+json"
        assert response.get_json()["code"] == "payload_too_large"
    # Before log-in too.
    login = client.post(
        "/api/v1/auth/token", json={"username": "a@b.org", "password": "x" * 2_000_000}
    )
    assert login.status_code == 413
    assert login.get_json()["code"] == "payload_too_large"
    assert session.scalar(select(func.count()).where(Patient.clinic_id == clinic.id)) == 0


def test_a_chunked_body_over_the_maximum_size_is_413(client, session, settings, admin):
    payload = json.dumps(dict(NEW_PATIENT, given_name="x" * (settings.max_content_length + 10)))
    response = client.post(
        PATIENTS,
        input_stream=io.BytesIO(payload.encode()),
        content_type="application/json",
        headers={**auth_headers(settings, admin), "Transfer-Encoding": "chunked"},
        # What a WSGI server sets for a chunked body, whose length nobody knows up front.
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert response.get_json()["code"] == "payload_too_large"


# --- page size ---------------------------------------------------------------------------------


def _list_rules(app) -> list[str]:
    return sorted(
        rule
        for rule, schema in _query_schemas(app)
        if "page_size" in schema.fields and not schema.fields["page_size"].dump_only
    )


def test_page_size_over_the_cap_is_422_on_every_list(app, client, session, settings, admin):
    rules = _list_rules(app)
    assert "/api/v1/patients" in rules
    assert len(rules) >= 8
    headers = auth_headers(settings, admin)
    for rule in rules:
        for bad in (MAX_PAGE_SIZE + 1, 0, -1, 10**9):
            response = client.get(_url(rule), query_string={"page_size": bad}, headers=headers)
            assert response.status_code == 422, (rule, bad, response.status_code)
            assert "page_size" in response.get_json()["errors"], rule
    at_cap = client.get(PATIENTS, query_string={"page_size": MAX_PAGE_SIZE}, headers=headers)
    assert at_cap.status_code == 200
    assert at_cap.get_json()["page_size"] == MAX_PAGE_SIZE


def test_the_openapi_document_states_the_page_size_cap(client):
    spec = client.get("/openapi.json").get_json()
    parameters = spec["paths"]["/api/v1/patients"]["get"]["parameters"]
    page_size = next(p for p in parameters if p["name"] == "page_size")
    assert page_size["schema"]["maximum"] == MAX_PAGE_SIZE


# --- mass assignment ---------------------------------------------------------------------------


def test_server_owned_fields_are_refused_in_every_body(app, client, session, staff_headers):
    failures, checked = [], 0
    for method, rule, _schema in _body_routes(app):
        for name in SERVER_OWNED:
            if name in CLIENT_SET.get((method, rule), set()):
                continue
            checked += 1
            response = client.open(_url(rule), method=method, json={name: 1}, headers=staff_headers)
            errors = (response.get_json() or {}).get("errors") or {}
            if response.status_code != 422 or name not in errors:
                failures.append((method, rule, name, response.status_code, errors))
    assert checked > 100
    assert failures == []


def test_moving_a_patient_to_another_clinic_is_refused_and_nothing_changes(
    client, session, settings, clinic, admin
):
    other = make_clinic(session)
    patient = make_patient(session, clinic, phone="+49 30 1")
    headers = auth_headers(settings, admin)
    etag = client.get(f"{PATIENTS}/{patient.id}", headers=headers).headers["ETag"]
    for extra in ({"clinic_id": other.id}, {"id": patient.id + 1000}, {"version": 99}):
        response = client.patch(
            f"{PATIENTS}/{patient.id}",
            json={"phone": "+49 30 2", **extra},
            headers={**headers, "If-Match": etag},
        )
        assert response.status_code == 422
        assert set(response.get_json()["errors"]) == set(extra)
    session.expire_all()
    stored = session.get(Patient, patient.id)
    assert (stored.clinic_id, stored.phone, stored.version) == (clinic.id, "+49 30 1", 1)


def test_enrolling_into_another_clinic_is_refused(client, session, settings, clinic, admin):
    other = make_clinic(session)
    response = client.post(
        PATIENTS, json=dict(NEW_PATIENT, clinic_id=other.id), headers=auth_headers(settings, admin)
    )
    assert response.status_code == 422
    assert set(response.get_json()["errors"]) == {"clinic_id"}
    assert session.scalar(select(func.count()).select_from(Patient)) == 0


def test_a_plan_cannot_be_moved_or_versioned_by_the_client(
    client, session, settings, clinic, admin
):
    patient, other_patient = make_patient(session, clinic), make_patient(session, clinic)
    plan = make_plan(session, patient, admin)
    headers = auth_headers(settings, admin)
    etag = client.get(f"/api/v1/plans/{plan.id}", headers=headers).headers["ETag"]
    for extra in ({"patient_id": other_patient.id}, {"version": 7}, {"prescriber_id": 1}):
        response = client.patch(
            f"/api/v1/plans/{plan.id}",
            json={"notes": "n", **extra},
            headers={**headers, "If-Match": etag},
        )
        assert response.status_code == 422
        assert set(response.get_json()["errors"]) == set(extra)
    session.expire_all()
    stored = session.get(TreatmentPlan, plan.id)
    assert (stored.patient_id, stored.version, stored.notes) == (patient.id, plan.version, None)


def test_staff_cannot_create_a_patient_account_or_an_account_in_another_clinic(
    client, session, settings, clinic, admin
):
    other = make_clinic(session)
    headers = auth_headers(settings, admin)
    body = {"email": "new.nurse@example.org", "password": "a long enough passphrase"}
    for extra in ({"role": "patient"}, {"role": "clinician", "clinic_id": other.id}):
        response = client.post("/api/v1/users", json={**body, **extra}, headers=headers)
        assert response.status_code == 422
    listed = client.get("/api/v1/users", headers=headers).get_json()
    assert "new.nurse@example.org" not in {u["email"] for u in listed["items"]}

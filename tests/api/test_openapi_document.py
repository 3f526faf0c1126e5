"""/openapi.json as generated clients read it: valid (openapi-spec-validator), 0 Spectral
warnings (spectral:oas), a stable camelCase operationId and a description on every operation,
every error status with a problem+json body, read and write shapes apart, typed enums and ids."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate

REPOSITORY = Path(__file__).resolve().parents[2]
PREFIX = "/api/v1"
PROBLEM = "application/problem+json"
AUDIENCES = {
    "Patient app",
    "Clinic staff",
    "Clinic admin",
    "Integrations",
    "Authentication",
    "Health",
}
# The operation ids generated clients name their functions after: renaming one breaks every
# client built on it, so the list is pinned here (README "For client developers" shows it).
OPERATION_IDS = {
    ("GET", "/healthz"): "checkLiveness",
    ("GET", "/readyz"): "checkReadiness",
    ("GET", "/metrics"): "getMetrics",
    ("POST", "/auth/token"): "login",
    ("POST", "/auth/refresh"): "refreshToken",
    ("POST", "/auth/logout"): "logout",
    ("POST", "/auth/activate"): "activateAccount",
    ("POST", "/patients/{patient_id}/invitation"): "invitePatient",
    ("GET", "/me"): "getMe",
    ("PATCH", "/me"): "updateMe",
    ("POST", "/me/password"): "changePassword",
    ("GET", "/me/inbox"): "listMyInbox",
    ("POST", "/me/inbox/{message_id}/read"): "markInboxMessageRead",
    ("POST", "/me/devices"): "registerDevice",
    ("DELETE", "/me/devices/{device_id}"): "deleteDevice",
    ("GET", "/clinic"): "getClinic",
    ("PATCH", "/clinic"): "updateClinic",
    ("GET", "/users"): "listUsers",
    ("POST", "/users"): "createUser",
    ("GET", "/users/{user_id}"): "getUser",
    ("PATCH", "/users/{user_id}"): "updateUser",
    ("GET", "/regimens"): "listRegimens",
    ("GET", "/regimens/{code}"): "getRegimen",
    ("GET", "/patients"): "listPatients",
    ("POST", "/patients"): "enrolPatient",
    ("GET", "/patients/{patient_id}"): "getPatient",
    ("PATCH", "/patients/{patient_id}"): "updatePatient",
    ("GET", "/patients/{patient_id}/plans"): "listPatientPlans",
    ("POST", "/patients/{patient_id}/plans"): "createPlan",
    ("POST", "/patients/{patient_id}/plans/preview"): "previewPlan",
    ("GET", "/plans/{plan_id}"): "getPlan",
    ("PATCH", "/plans/{plan_id}"): "updatePlan",
    ("GET", "/me/plans"): "listMyPlans",
    ("POST", "/plans/{plan_id}/follow-ups/{kind}/end"): "endFollowUp",
    ("GET", "/plans/{plan_id}/screening"): "getScreeningChecklist",
    ("GET", "/plans/{plan_id}/screening/{item_code}"): "getScreeningItem",
    ("PUT", "/plans/{plan_id}/screening/{item_code}"): "recordScreeningResult",
    ("POST", "/plans/{plan_id}/screening/override"): "overrideScreening",
    ("GET", "/plans/{plan_id}/doses"): "listPlanDoses",
    ("GET", "/doses/{dose_id}"): "getDose",
    ("PATCH", "/doses/{dose_id}"): "updateDose",
    ("POST", "/doses/{dose_id}/administration"): "recordAdministration",
    ("GET", "/doses/{dose_id}/readiness"): "getDoseReadiness",
    ("GET", "/doses/{dose_id}/readiness/{code}"): "getReadinessItem",
    ("PUT", "/doses/{dose_id}/readiness/{code}"): "answerReadinessItem",
    ("POST", "/doses/{dose_id}/readiness/override"): "overrideReadiness",
    ("GET", "/plans/{plan_id}/monitoring"): "listPlanMonitoring",
    ("GET", "/monitoring/{task_id}"): "getMonitoringTask",
    ("PATCH", "/monitoring/{task_id}"): "updateMonitoringTask",
    ("GET", "/patients/{patient_id}/labs"): "listLabResults",
    ("POST", "/patients/{patient_id}/labs"): "recordLabResult",
    ("GET", "/staff/schedule"): "getStaffSchedule",
    ("GET", "/staff/worklist"): "getWorklist",
    ("POST", "/staff/alerts/{alert_id}/resolve"): "resolveAlert",
    ("GET", "/me/reminders/upcoming"): "listUpcomingReminders",
    ("POST", "/me/reminders/{reminder_id}/ack"): "acknowledgeReminder",
    ("GET", "/patients/{patient_id}/reminders"): "listPatientReminders",
    ("GET", "/me/calendar.ics"): "getMyCalendar",
    ("POST", "/me/calendar-feed"): "createMyCalendarFeed",
    ("DELETE", "/me/calendar-feed"): "revokeMyCalendarFeed",
    ("DELETE", "/patients/{patient_id}/calendar-feed"): "revokePatientCalendarFeed",
    ("GET", "/staff/schedule.ics"): "getChairCalendar",
    ("POST", "/staff/calendar-feed"): "createChairCalendarFeed",
    ("DELETE", "/staff/calendar-feed"): "revokeChairCalendarFeed",
    ("GET", "/feeds/{feed_token}/calendar.ics"): "getCalendarFeed",
    ("GET", "/patients/{patient_id}/fhir"): "exportPatientFhir",
    ("GET", "/me/fhir"): "exportMyFhir",
    ("POST", "/patients/{patient_id}/fhir/observations"): "importFhirObservations",
    ("GET", "/audit"): "listAuditEvents",
}


@pytest.fixture
def document(client: Any) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    return body


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path.removeprefix(PREFIX), operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    ]


def test_the_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)  # raises on the first error


def test_every_operation_has_its_pinned_camel_case_id(document: dict[str, Any]) -> None:
    found = {(method, path): op.get("operationId") for method, path, op in operations(document)}
    assert found == OPERATION_IDS
    assert all(re.fullmatch(r"[a-z][a-zA-Z]+", name) for name in OPERATION_IDS.values())
    assert len(set(OPERATION_IDS.values())) == len(OPERATION_IDS)


def test_operations_are_described_and_grouped_by_audience(document: dict[str, Any]) -> None:
    assert {tag["name"] for tag in document["tags"]} == AUDIENCES
    for method, path, op in operations(document):
        assert op.get("summary"), (method, path)
        assert op.get("description"), (method, path)
        assert op["tags"], (method, path)
        assert set(op["tags"]) <= AUDIENCES, (method, path)
        path_parameters = document["paths"][PREFIX + path].get("parameters", [])
        for parameter in [*op.get("parameters", []), *path_parameters]:
            if "$ref" not in parameter:
                assert parameter.get("description"), (method, path, parameter["name"])
    info = document["info"]
    assert info["contact"]
    assert info["license"]["name"] == "Apache-2.0"
    for words in ("If-Match", "Idempotency-Key", "since", "/auth/refresh"):
        assert words in info["description"]
    assert document["servers"]


def test_every_error_status_has_a_problem_body_with_its_codes(document: dict[str, Any]) -> None:
    for method, path, op in operations(document):
        responses = op["responses"]
        assert "default" not in responses, (method, path)
        for status, response in responses.items():
            if int(status) < 400:
                continue
            assert list(response["content"]) == [PROBLEM], (method, path, status)
            assert "`code` is one of: `" in response["description"], (method, path, status)
            if status == "429":
                assert "Retry-After" in response["headers"], (method, path)
        if op.get("security") != []:
            assert {"401", "403"} <= set(responses), (method, path)
        if "{" in path:
            assert "404" in responses, (method, path)
        if "requestBody" in op:
            assert {"400", "413", "422"} <= set(responses), (method, path)


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("POST", "/auth/token", "401", "invalid_credentials"),
        ("POST", "/auth/token", "401", "account_locked"),
        ("POST", "/auth/token", "429", "rate_limited"),
        ("POST", "/auth/refresh", "401", "invalid_token"),
        ("POST", "/auth/activate", "422", "invalid_code"),
        ("POST", "/patients/{patient_id}/invitation", "409", "already_exists"),
        ("POST", "/me/devices", "409", "device_in_use"),
        ("POST", "/me/devices", "409", "idempotency_in_flight"),
        ("PATCH", "/doses/{dose_id}", "409", "minimum_interval"),
        ("PATCH", "/doses/{dose_id}", "412", "stale_version"),
        ("PATCH", "/doses/{dose_id}", "428", "precondition_required"),
        ("POST", "/doses/{dose_id}/administration", "409", "dose_not_ready"),
        ("POST", "/doses/{dose_id}/administration", "422", "idempotency_key_reused"),
        ("POST", "/me/password", "429", "rate_limited"),
        ("GET", "/feeds/{feed_token}/calendar.ics", "429", "rate_limited"),
    ],
)
def test_refusals_name_their_codes(
    document: dict[str, Any], method: str, path: str, status: str, code: str
) -> None:
    response = document["paths"][PREFIX + path][method.lower()]["responses"][status]
    assert f"`{code}`" in response["description"]
    assert code in _codes(document, response)


def _codes(document: dict[str, Any], response: dict[str, Any]) -> list[str]:
    """The enum a problem response narrows `code` to: allOf the Problem and that enum."""
    schema = _resolve(document, response["content"][PROBLEM]["schema"])
    base, narrowed = schema["allOf"]
    assert base == {"$ref": "#/components/schemas/Problem"}
    assert narrowed["required"] == ["code"]
    codes: list[str] = narrowed["properties"]["code"]["enum"]
    return codes


def test_each_error_response_narrows_code_to_the_codes_it_lists(document: dict[str, Any]) -> None:
    sets = set()
    for method, path, op in operations(document):
        for status, response in op["responses"].items():
            if int(status) < 400:
                continue
            listed = re.findall(r"`(\w+)`: ", response["description"].split("one of: ", 1)[1])
            codes = _codes(document, response)
            assert sorted(listed) == codes, (method, path, status)
            sets.add(response["content"][PROBLEM]["schema"]["$ref"])
    # One named schema per set of codes, shared by the operations that answer it.
    assert len(sets) < 40
    assert document["paths"][PREFIX + "/me"]["get"]["responses"]["401"]["content"][PROBLEM][
        "schema"
    ] == {"$ref": "#/components/schemas/ProblemUnauthenticatedOrInvalidToken"}


# The reads that answer 304 to If-None-Match: what the app polls, single objects (@blp.etag),
# the calendars.
CONDITIONAL_READS = {
    "getMe",
    "listMyPlans",
    "listMyInbox",
    "listUpcomingReminders",
    "getPlan",
    "getPatient",
    "listPatientPlans",
    "getClinic",
    "getUser",
    "getRegimen",
    "getScreeningItem",
    "getDose",
    "getReadinessItem",
    "getMonitoringTask",
    "getMyCalendar",
    "getChairCalendar",
    "getCalendarFeed",
}


def _resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, section, name = node["$ref"].split("/")
        node = document["components"][section][name]
    return node


def test_polled_reads_document_if_none_match_etag_and_304(document: dict[str, Any]) -> None:
    answering = set()
    for method, path, op in operations(document):
        if "304" not in op["responses"]:
            continue
        answering.add(op["operationId"])
        assert method == "GET", path
        headers = [_resolve(document, p) for p in op["parameters"]]
        if_none_match = [p for p in headers if p["name"] == "If-None-Match"]
        assert len(if_none_match) == 1, path
        assert if_none_match[0]["in"] == "header"
        assert not if_none_match[0].get("required"), path
        assert "304" in if_none_match[0]["description"]
        # Query parameters stay beside it.
        if path in ("/me/plans", "/me/inbox", "/patients/{patient_id}/plans"):
            assert {"page", "since"} & {p["name"] for p in headers}, path
        not_modified = _resolve(document, op["responses"]["304"])
        assert "content" not in not_modified, path
        assert "If-None-Match" in not_modified["description"]
        for status in ("200", "304"):
            etag = _resolve(document, op["responses"][status])["headers"]["ETag"]
            assert _resolve(document, etag)["schema"] == {"type": "string"}, (path, status)
        assert "If-None-Match" in op["description"], path
    assert answering == CONDITIONAL_READS


def _schema(document: dict[str, Any], name: str) -> dict[str, Any]:
    schema: dict[str, Any] = document["components"]["schemas"][name]
    return schema


def _body_schema(op: dict[str, Any], status: str | None = None) -> str:
    holder = op["requestBody"] if status is None else op["responses"][status]
    ref: str = holder["content"]["application/json"]["schema"]["$ref"]
    return ref.rsplit("/", 1)[-1]


def test_read_and_write_shapes_are_apart(document: dict[str, Any]) -> None:
    register = document["paths"][PREFIX + "/me/devices"]["post"]
    sent, answered = _body_schema(register), _body_schema(register, "201")
    assert "token" in _schema(document, sent)["required"]
    assert "token" not in _schema(document, answered)["properties"]
    assert "id" not in _schema(document, sent)["properties"]
    # Nothing sent both ways keeps a read-only or a write-only field.
    for name, schema in document["components"]["schemas"].items():
        for field, prop in schema.get("properties", {}).items():
            assert not (prop.get("readOnly") and prop.get("writeOnly")), (name, field)


def test_the_plan_preview_has_its_own_nullable_schema(document: dict[str, Any]) -> None:
    create = document["paths"][PREFIX + "/patients/{patient_id}/plans"]["post"]
    preview = document["paths"][PREFIX + "/patients/{patient_id}/plans/preview"]["post"]
    assert _body_schema(create, "201") == "Plan"
    assert _body_schema(create, "200") == _body_schema(preview, "200") == "PlanPreview"
    plan, draft = _schema(document, "Plan"), _schema(document, "PlanPreview")
    for field in ("id", "version", "created_at", "updated_at"):
        assert not plan["properties"][field].get("nullable"), field
        assert draft["properties"][field]["nullable"] is True, field
    dose_ref = draft["properties"]["doses"]["items"]["$ref"].rsplit("/", 1)[-1]
    assert _schema(document, dose_ref)["properties"]["id"]["nullable"] is True


def _walk(node: Any, path: str = "") -> Any:
    if isinstance(node, dict):
        yield path, node
        for key, value in node.items():
            yield from _walk(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _walk(value, f"{path}/{index}")


def test_schemas_are_typed(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for where, node in _walk(schemas):
        assert "anyOf" not in node, where
        assert "oneOf" not in node, where
        if node.get("type") == "object":
            assert "maxLength" not in node, where
            assert "minLength" not in node, where
        if "enum" in node:
            assert None not in node["enum"], where
    for name, schema in schemas.items():
        for field, prop in schema.get("properties", {}).items():
            if (field == "id" or field.endswith("_id")) and prop.get("type") == "integer":
                assert prop.get("format") == "int64", (name, field)
            # Statuses and kinds from the vocabulary are named enums.
            statuses = ("status", "booking", "role", "audience", "platform", "grade", "decision")
            if field in statuses and prop.get("type") != "integer":
                assert "allOf" in prop or "enum" in prop, (name, field)
    grade = _schema(document, "InfusionReaction")["properties"]["grade"]
    assert grade["allOf"] == [{"$ref": "#/components/schemas/ReactionGrade"}]
    assert _schema(document, "DoseStatus")["enum"][:2] == ["planned", "booked"]
    settings = _schema(document, "PlanCreate")["properties"]["settings"]
    assert settings["maxProperties"] == 20


def _spectral() -> str | None:
    return os.environ.get("CD20_SPECTRAL") or shutil.which("spectral")


def test_spectral_finds_nothing(document: dict[str, Any], tmp_path: Path) -> None:
    spectral = _spectral()
    if spectral is None:
        if os.environ.get("CD20_REQUIRE_SPECTRAL"):
            pytest.fail("CD20_REQUIRE_SPECTRAL is set but Spectral is not installed")
        pytest.skip(
            "Spectral is not installed: .ci/run installs @stoplight/spectral-cli with npm and "
            "sets CD20_SPECTRAL; or put `spectral` on the PATH"
        )
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(document))
    run = subprocess.run(
        [spectral, "lint", "--quiet", "-r", str(REPOSITORY / ".spectral.yaml"), "-f", "json", path],
        capture_output=True,
        text=True,
        timeout=300,
    )
    results = json.loads(run.stdout or "[]")
    assert results == [], "\n".join(f"{r['code']}: {r['message']} at {r['path']}" for r in results)

"""Schemathesis against the application's own OpenAPI document, in process, as each role.

For every operation of /openapi.json, generated requests (a fixed seed, a bounded number per
operation) are sent to create_app's WSGI app: valid ones with generated path ids (mostly 404s),
valid ones with the ids of objects that exist in the world (so success responses are checked
too), and invalid ones. Every response must be no server error, match the documented status
codes, content type and schema, and every error must be an application/problem+json body with a
`code`. Each request runs in a savepoint rolled back after it, so one case cannot change the
world for the next (a generated log-out would otherwise end the token for every later case).
"""

from __future__ import annotations

import base64
import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, Phase, given, seed
from hypothesis import settings as hypothesis_settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session

from service.config import Settings
from tests.api.world import ADMIN_1, CLINICIAN_1, PATIENT_A, World, build_world, rolled_back

SEED = 20270104
# (generation mode, path ids of existing objects?, examples per operation). Generated ids mostly
# meet 404s; the existing ones let valid bodies reach the use cases, invalid ones the parsing.
RUNS = (
    (GenerationMode.POSITIVE, False, 5),
    (GenerationMode.POSITIVE, True, 25),
    (GenerationMode.NEGATIVE, True, 15),
)
ROLES = {"admin": ADMIN_1, "clinician": CLINICIAN_1, "patient": PATIENT_A}
PROBLEM = "application/problem+json"


def errors_are_problem_json(ctx: Any, response: Any, case: Any) -> bool | None:
    """Every 4xx and 5xx body is RFC 9457 problem details with a machine-readable code."""
    if response.status_code < 400:
        return None
    content_type = response.headers.get("content-type", [""])[0]
    assert content_type.split(";")[0].strip() == PROBLEM, (
        f"{response.status_code} answered as {content_type!r}, not {PROBLEM}"
    )
    body = json.loads(response.content)
    assert isinstance(body.get("code"), str), "the problem has no code"
    assert body["code"], "the problem's code is empty"
    assert body.get("status") == response.status_code, "the problem's status differs"
    return True


CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    errors_are_problem_json,
]


def existing_ids(world: World) -> dict[str, Any]:
    """Path parameters naming objects of patient A (clinic 1), which every role here may reach."""
    party = world.parties["A"]
    return {
        "patient_id": party.patient.id,
        "plan_id": party.plan.id,
        "item_code": party.screening_code,
        "dose_id": party.dose.id,
        "task_id": party.task.id,
        "reminder_id": party.reminder.id,
        "message_id": party.message.id,
        "device_id": party.device.id,
        "user_id": party.user.id,
        "alert_id": party.alert.id,
        "code": "ocrelizumab-iv",
    }


def fuzz(app: Flask, session: Session, world: World, actor: str) -> Fuzzed:
    """Send every operation's generated cases; what was sent and what failed (deduplicated)."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    headers = world.headers[actor]
    ids = existing_ids(world)
    fuzzed = Fuzzed()

    for result in schema.get_all_operations():
        operation = result.ok()
        names = [p.name for p in operation.path_parameters]
        real = {name: ids[name] for name in names if name in ids}
        for mode, fixed, examples in RUNS:
            if fixed and not real:
                continue
            strategy = operation.as_strategy(mode, path_parameters=real if fixed else None)

            @seed(SEED)
            @hypothesis_settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=strategy)
            def run(case: Any) -> None:
                with rolled_back(session):
                    try:
                        response = case.call_and_validate(headers=headers, checks=CHECKS)
                    except FailureGroup as group:
                        curl = case.as_curl_command(headers=headers)
                        fuzzed.failed(case.operation.label, group, curl)
                    else:
                        fuzzed.sent(case.operation.label, response.status_code)

            run()
    return fuzzed


@dataclass
class Fuzzed:
    cases: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    succeeded: set[str] = field(default_factory=set)
    failures: dict[str, str] = field(default_factory=dict)

    def sent(self, label: str, status: int) -> None:
        self.cases += 1
        self.statuses[f"{status // 100}xx"] += 1
        if status < 300:
            self.succeeded.add(label)

    def failed(self, label: str, group: FailureGroup, curl: str) -> None:
        self.cases += 1
        self.statuses["failed"] += 1
        for failure in group.exceptions:
            key = f"{label}: {failure.title}"
            self.failures.setdefault(key, f"{key}\n{failure.message}\n{curl}")


@pytest.fixture
def world(session: Session, settings: Settings) -> World:
    return build_world(session, settings)


@pytest.mark.parametrize("role", list(ROLES))
def test_generated_requests_meet_the_openapi_document(
    app: Flask, session: Session, world: World, role: str
) -> None:
    fuzzed = fuzz(app, session, world, ROLES[role])
    statuses = ", ".join(f"{n} {kind}" for kind, n in sorted(fuzzed.statuses.items()))
    print(
        f"\nschemathesis as {role}: {fuzzed.cases} generated cases ({statuses}); "
        f"{len(fuzzed.succeeded)} operations answered 2xx; {len(fuzzed.failures)} failures"
    )
    assert list(fuzzed.failures.values()) == [], "\n\n".join(fuzzed.failures.values())
    assert fuzzed.cases > 0


# Inputs a generator draws rarely, sent on purpose: each of them once answered 500 (the database
# or the date arithmetic failed) and must be refused like any other bad input.
BIG = 2**63  # beyond a BIGINT
BEYOND_INT = 2**31  # beyond an INTEGER key (PostgreSQL: "integer out of range")
YEAR_ONE = "0001-01-01T00:00:00+14:00"  # moving it to UTC leaves datetime's range
DEEP_JSON = "[" * 50_000 + "]" * 50_000


def _cursor(number: int) -> str:
    return base64.urlsafe_b64encode(f"inbox:{number}".encode()).decode().rstrip("=")


def hostile_requests(world: World) -> list[tuple[str, str, str, dict[str, Any], int, str]]:
    """(actor, method, url, request arguments, status, problem code)."""
    a = world.parties["A"]
    lab = {"code": "igg", "value": 8.1, "unit": "g/L", "taken_at": world.values["yesterday"]}
    new_patient = {
        "mrn": "N-1",
        "given_name": "Nu\x00l",
        "family_name": "Keller",
        "birth_date": "1984-05-02",
        "time_zone": "Europe/Berlin",
    }
    deep = {"data": DEEP_JSON, "content_type": "application/json"}
    c, p, admin = CLINICIAN_1, PATIENT_A, ADMIN_1
    return [
        (c, "GET", f"/api/v1/plans/{BIG}", {}, 404, "not_found"),
        (c, "GET", f"/api/v1/plans/{BEYOND_INT}", {}, 404, "not_found"),
        (c, "GET", f"/api/v1/patients/{BEYOND_INT}/labs", {}, 404, "not_found"),
        (p, "POST", f"/api/v1/me/reminders/{BEYOND_INT}/ack", {"json": {}}, 404, "not_found"),
        (p, "POST", f"/api/v1/me/inbox/{BIG}/read", {}, 404, "not_found"),
        (
            c,
            "POST",
            f"/api/v1/patients/{a.patient.id}/labs",
            {"json": {**lab, "task_id": BEYOND_INT}},
            422,
            "validation_failed",
        ),
        (
            c,
            "PATCH",
            f"/api/v1/monitoring/{a.task.id}",
            {"json": {"lab_result_id": BEYOND_INT}},
            422,
            "validation_failed",
        ),
        (admin, "GET", f"/api/v1/audit?patient_id={BEYOND_INT}", {}, 422, "validation_failed"),
        (admin, "GET", f"/api/v1/audit?actor_id={BIG}", {}, 422, "validation_failed"),
        (c, "POST", "/api/v1/patients", {"json": new_patient}, 422, "validation_failed"),
        (c, "GET", "/api/v1/patients?q=%00", {}, 422, "validation_failed"),
        (
            None,
            "POST",
            "/api/v1/auth/token",
            {"json": {"username": "a\x00b", "password": "x"}},
            422,
            "validation_failed",
        ),
        (c, "GET", "/api/v1/staff/schedule?date=9999-12-31", {}, 422, "validation_failed"),
        (c, "GET", "/api/v1/staff/schedule?date=0001-01-01", {}, 422, "validation_failed"),
        (
            c,
            "PATCH",
            f"/api/v1/doses/{a.dose.id}",
            {"json": {"due_date": "9999-12-31"}},
            422,
            "validation_failed",
        ),
        (
            c,
            "PATCH",
            f"/api/v1/doses/{a.dose.id}",
            {"json": {"appointment_at": YEAR_ONE}},
            422,
            "validation_failed",
        ),
        (
            c,
            "PATCH",
            f"/api/v1/monitoring/{a.task.id}",
            {"json": {"due_date": "9999-12-31"}},
            422,
            "validation_failed",
        ),
        (
            c,
            "POST",
            f"/api/v1/patients/{a.patient.id}/labs",
            {"json": {**lab, "taken_at": YEAR_ONE}},
            422,
            "validation_failed",
        ),
        (
            c,
            "POST",
            f"/api/v1/doses/{a.dose.id}/administration",
            {"json": {"administered_at": YEAR_ONE, "amount_mg": 300}},
            422,
            "validation_failed",
        ),
        (
            admin,
            "GET",
            "/api/v1/audit?since=0001-01-01T00:00:00%2B14:00",
            {},
            422,
            "validation_failed",
        ),
        (p, "GET", f"/api/v1/me/inbox?since={_cursor(10**30)}", {}, 422, "validation_failed"),
        (c, "POST", "/api/v1/patients", deep, 400, "malformed_json"),
        (
            c,
            "POST",
            "/api/v1/patients",
            {**deep, "headers": {"Idempotency-Key": "deep-1"}},
            400,
            "malformed_json",
        ),
        (
            admin,
            "PATCH",
            "/api/v1/clinic",
            {"json": {"settings": {"reminders": {"labs_lead_days": "three"}}}},
            422,
            "validation_failed",
        ),
        (
            admin,
            "PATCH",
            "/api/v1/clinic",
            {"json": {"settings": {"reminders": {"staff_time": "at dawn"}}}},
            422,
            "validation_failed",
        ),
    ]


def test_hostile_inputs_are_refused_not_server_errors(
    client: FlaskClient, session: Session, world: World
) -> None:
    wrong = []
    for actor, method, url, arguments, status, code in hostile_requests(world):
        headers = dict(world.headers[actor]) if actor else {}
        headers.update(arguments.pop("headers", {}))
        with rolled_back(session):
            if method in ("PATCH", "PUT"):  # a current ETag, so the refusal is about the body
                headers["If-Match"] = client.get(url, headers=headers).headers["ETag"]
            response = client.open(url, method=method, headers=headers, **arguments)
        body = response.get_json(silent=True) or {}
        if (response.status_code, response.mimetype, body.get("code")) != (status, PROBLEM, code):
            wrong.append(f"{method} {url[:80]}: {response.status_code} {body}")
    assert wrong == []

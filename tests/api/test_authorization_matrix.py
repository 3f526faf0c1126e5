"""Every route of the URL map, called by every kind of actor on their own and others' objects.

The expected outcomes are in authz_matrix.yaml beside this file. Each request runs inside a
savepoint that is rolled back after it, so every case meets the same world (a refused request
cannot hide behind an earlier one's change, and an allowed one cannot spoil the next case).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
import yaml
from flask import Flask
from flask.testing import FlaskClient
from schemathesis.core.failures import FailureGroup
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from service.models import AuditEvent
from tests.api.world import (
    ACTORS,
    ADMIN_1,
    ADMIN_2,
    OWNERSHIP,
    World,
    build_world,
    rolled_back,
)

MATRIX_PATH = Path(__file__).with_name("authz_matrix.yaml")
# Flask adds these to every rule; HEAD runs GET's view and OPTIONS runs no view at all.
AUTOMATIC_METHODS = frozenset({"HEAD", "OPTIONS"})
OUTCOMES = frozenset({"allow", "deny-401", "deny-403", "deny-404", "n/a"})
UNAUTHENTICATED = ("anonymous", "revoked", "expired")
NO_OBJECT = ("none", "clinic")
OBJECT_KINDS = (
    "patient",
    "newcomer",
    "plan",
    "screening_item",
    "dose",
    "readiness_item",
    "later_dose",
    "task",
    "reminder",
    "message",
    "device",
    "user",
    "alert",
    "stopped_plan",
)
PARAM = re.compile(r"<(?:[^:<>]+:)?(?P<name>[^<>]+)>")

# Row counts and versions of everything a request could change (the audit trail excepted: every
# request, refused or not, adds its event there). One query, run after each refused request.
FINGERPRINT = text(
    """
    SELECT
      (SELECT count(*) FROM clinic), (SELECT sum(length(name)) FROM clinic),
      (SELECT count(*) FROM user_account), (SELECT sum(token_generation) FROM user_account),
      (SELECT sum(CASE WHEN is_active THEN 1 ELSE 0 END) FROM user_account),
      (SELECT count(*) FROM refresh_token), (SELECT count(revoked_at) FROM refresh_token),
      (SELECT count(used_at) FROM refresh_token),
      (SELECT count(*) FROM invitation), (SELECT count(used_at) FROM invitation),
      (SELECT count(*) FROM patient), (SELECT sum(version) FROM patient),
      (SELECT count(*) FROM treatment_plan), (SELECT sum(version) FROM treatment_plan),
      (SELECT count(result) FROM screening_item), (SELECT count(*) FROM screening_override),
      (SELECT count(*) FROM dose), (SELECT sum(version) FROM dose),
      (SELECT count(*) FROM dose_administration),
      (SELECT count(*) FROM monitoring_task), (SELECT sum(version) FROM monitoring_task),
      (SELECT count(*) FROM lab_result),
      (SELECT count(*) FROM staff_alert), (SELECT count(resolved_at) FROM staff_alert),
      (SELECT count(*) FROM reminder), (SELECT count(acked_at) FROM reminder),
      (SELECT count(*) FROM delivery),
      (SELECT count(*) FROM inbox_message), (SELECT count(read_at) FROM inbox_message),
      (SELECT count(*) FROM device)
    """
)


@dataclass(frozen=True)
class Case:
    entry: dict[str, Any]
    actor: str
    ownership: str  # "-" when the URL names no object
    expected: str

    @property
    def label(self) -> str:
        return f"{self.entry['method']} {self.entry['rule']} as {self.actor} on {self.ownership}"


@dataclass
class Report:
    cases: int = 0
    unexpected_allows: list[str] = field(default_factory=list)
    marker_leaks: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    not_problem_json: list[str] = field(default_factory=list)
    writes_when_denied: list[str] = field(default_factory=list)
    undocumented: list[str] = field(default_factory=list)
    audit_mismatches: list[str] = field(default_factory=list)
    allowed: int = 0
    validated: int = 0  # responses checked against the OpenAPI document

    @property
    def summary(self) -> str:
        return (
            f"{self.cases} cases, {len(self.unexpected_allows)} unexpected allows, "
            f"{len(self.marker_leaks)} marker leaks"
        )

    def problems(self) -> dict[str, list[str]]:
        return {
            name: values
            for name, values in (
                ("unexpected allows", self.unexpected_allows),
                ("marker leaks", self.marker_leaks),
                ("other outcomes than expected", self.mismatches),
                ("errors not application/problem+json", self.not_problem_json),
                ("refused requests that changed data", self.writes_when_denied),
                ("responses that break the OpenAPI document", self.undocumented),
                ("audit events", self.audit_mismatches),
            )
            if values
        }


def load_all_entries() -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = yaml.safe_load(MATRIX_PATH.read_text())["routes"]
    return entries


def load_matrix() -> list[dict[str, Any]]:
    """The API's entries (the staff console's are run by tests/console/test_console_authz.py)."""
    return [entry for entry in load_all_entries() if not entry.get("console")]


def route_methods(app: Flask) -> set[tuple[str, str]]:
    return {
        (rule.rule, method)
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) - AUTOMATIC_METHODS
    }


def cases_of(entry: dict[str, Any]) -> list[Case]:
    cases = []
    for actor in ACTORS:
        expected = entry["expect"][actor]
        if isinstance(expected, dict):
            outcomes = list(expected.items())
        elif entry["object"] in NO_OBJECT:
            outcomes = [("-", expected)]
        else:
            outcomes = [(ownership, expected) for ownership in OWNERSHIP[actor]]
        cases.extend(Case(entry, actor, own, out) for own, out in outcomes if out != "n/a")
    return cases


def all_cases() -> list[Case]:
    return [case for entry in load_matrix() for case in cases_of(entry)]


def url_of(rule: str, params: dict[str, Any]) -> str:
    return PARAM.sub(lambda m: quote(str(params[m["name"]]), safe=""), rule)


def fill(value: Any, values: dict[str, Any]) -> Any:
    """The body with every "{name}" string replaced by the world's value of that name."""
    if isinstance(value, dict):
        return {key: fill(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [fill(item, values) for item in value]
    if isinstance(value, str) and value.startswith("{") and value.endswith("}"):
        return values[value[1:-1]]
    return value


def target_of(world: World, case: Case) -> tuple[str | None, dict[str, Any]]:
    """The party (or clinic) whose object the case names, and the URL parameters."""
    entry = case.entry
    params = dict(entry.get("params") or {})
    if entry["object"] == "clinic":
        clinic = world.clinic_of(case.actor)
        return (f"K{1 if clinic is None or clinic.id == world.clinics[1].id else 2}", params)
    if entry["object"] == "none":
        return None, params
    label = OWNERSHIP[case.actor][case.ownership]
    params.update(world.parties[label].url_params(entry["object"]))
    return label, params


def collect_etags(client: FlaskClient, session: Session, world: World) -> None:
    """The current ETag of every object a matrix entry sends If-Match for, read by an admin."""
    entries = load_matrix()
    readers = {(e["rule"], e["object"]) for e in entries if e["method"] == "GET"}
    for entry in entries:
        if not entry.get("if_match") or entry["if_match"] == "own":
            continue
        assert (entry["rule"], entry["object"]) in readers, f"no GET for {entry['rule']}"
        owners = ["K1", "K2"] if entry["object"] == "clinic" else list(world.parties)
        for owner in owners:
            in_clinic_2 = owner in ("C", "K2")
            headers = world.headers[ADMIN_2 if in_clinic_2 else ADMIN_1]
            params = dict(entry.get("params") or {})
            if entry["object"] != "clinic":
                params.update(world.parties[owner].url_params(entry["object"]))
            with rolled_back(session):
                response = client.get(url_of(entry["rule"], params), headers=headers)
            assert response.status_code == 200, (entry["rule"], owner, response.get_json())
            world.etags[(entry["object"], owner)] = response.headers["ETag"]


def fingerprint(session: Session) -> tuple[Any, ...]:
    return tuple(session.execute(FINGERPRINT).one())


def audit_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(AuditEvent)) or 0


def documented_operations(app: Flask) -> dict[tuple[str, str], Any]:
    """(URL rule, method) -> schemathesis's view of that operation in the app's /openapi.json."""
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    operations = {}
    for result in schema.get_all_operations():
        operation = result.ok()
        rule = re.sub(r"\{([^}]+)\}", r"<\1>", operation.path)
        operations[(rule, operation.method.upper())] = operation
    return operations


def run_matrix(
    client: FlaskClient, session: Session, world: World, *, count_audit: bool = False
) -> Report:
    report = Report()
    operations = documented_operations(client.application)
    baseline = fingerprint(session)
    audit_baseline = audit_count(session) if count_audit else 0
    for case in all_cases():
        entry = case.entry
        owner, params = target_of(world, case)
        headers = dict(world.headers[case.actor])
        if entry.get("if_match") == "own":
            with rolled_back(session):
                own = client.get(url_of(entry["rule"], params), headers=headers)
            headers["If-Match"] = own.headers.get("ETag", "")
        elif entry.get("if_match") and owner is not None:
            headers["If-Match"] = world.etags[(entry["object"], owner)]
        kwargs: dict[str, Any] = {"headers": headers}
        if "body" in entry:
            kwargs["json"] = fill(entry["body"], world.values)
        with rolled_back(session):
            response = client.open(url_of(entry["rule"], params), method=entry["method"], **kwargs)
            _judge(report, world, case, response)
            operation = operations.get((PARAM.sub(r"<\g<name>>", entry["rule"]), entry["method"]))
            if operation is not None:
                report.validated += 1
                try:
                    operation.validate_response(response)
                except FailureGroup as failures:
                    titles = ", ".join(failure.title for failure in failures.exceptions)
                    report.undocumented.append(f"{case.label}: {response.status_code} {titles}")
            if case.expected != "allow" and fingerprint(session) != baseline:
                report.writes_when_denied.append(case.label)
            if count_audit:
                written = audit_count(session) - audit_baseline
                if written != entry.get("audit_events", 1):
                    report.audit_mismatches.append(f"{case.label}: {written} events")
    return report


def _judge(report: Report, world: World, case: Case, response: Any) -> None:
    report.cases += 1
    status = response.status_code
    got = "allow" if 200 <= status < 300 else f"deny-{status}"
    if got == "allow":
        report.allowed += 1
    if got != case.expected:
        line = f"{case.label}: expected {case.expected}, got {status} {_snippet(response)}"
        (report.unexpected_allows if got == "allow" else report.mismatches).append(line)
    if status >= 400:
        body = response.get_json(silent=True) or {}
        if response.mimetype != "application/problem+json" or not body.get("code"):
            report.not_problem_json.append(f"{case.label}: {status} {response.content_type}")
    seen = (response.get_data(as_text=True) + json.dumps(dict(response.headers))).lower()
    for marker in sorted(world.all_markers - world.visible_markers(case.actor)):
        if marker.lower() in seen:
            report.marker_leaks.append(f"{case.label}: {marker} in {status} response")


def _snippet(response: Any) -> str:
    return response.get_data(as_text=True)[:200]


@pytest.fixture
def world(client: FlaskClient, session: Session, settings: Any) -> World:
    built = build_world(session, settings)
    collect_etags(client, session, built)
    return built


def test_every_route_and_method_has_an_entry(app: Flask) -> None:
    listed = [(entry["rule"], entry["method"]) for entry in load_all_entries()]
    assert len(listed) == len(set(listed)), "an entry is listed twice"
    served = route_methods(app)
    assert sorted(served - set(listed)) == [], "routes without an entry in authz_matrix.yaml"
    assert sorted(set(listed) - served) == [], "entries for routes the application does not have"


def test_the_table_follows_the_access_rules() -> None:
    """What the issue states, checked on the table itself, so the table cannot drift from it."""
    for entry in load_matrix():
        where = f"{entry['method']} {entry['rule']}"
        assert set(entry["expect"]) == set(ACTORS), where
        assert entry["object"] in (*NO_OBJECT, *OBJECT_KINDS), where
        for case in cases_of(entry):
            assert case.expected in OUTCOMES, where
            if entry.get("public"):
                assert case.expected != "deny-401", f"{where}: public routes need no token"
            elif case.actor in UNAUTHENTICATED:
                assert case.expected == "deny-401", f"{where}: {case.actor} must be 401"
            if case.ownership == "other_clinic" or (
                case.actor.startswith("patient_") and case.ownership == "same_clinic"
            ):
                assert case.expected != "allow", f"{where}: {case.label} may not be allowed"
        for actor, expected in entry["expect"].items():
            if isinstance(expected, dict):
                assert set(expected) == set(OWNERSHIP[actor]), f"{where}: {actor}"


def test_the_openapi_document_says_which_routes_need_a_token(app: Flask) -> None:
    """A route is documented without security exactly when the table lists it as public."""
    document = app.test_client().get("/openapi.json").get_json()
    for entry in load_matrix():
        path = PARAM.sub(r"{\g<name>}", entry["rule"])
        operation = document["paths"].get(path, {}).get(entry["method"].lower())
        if operation is None:
            continue  # probes at the root, the API description and docs, static files
        security = operation.get("security", document["security"])
        where = f"{entry['method']} {entry['rule']}"
        assert (security == []) == bool(entry.get("public")), where


def test_authorization_matrix(client: FlaskClient, session: Session, world: World) -> None:
    report = run_matrix(client, session, world)
    print(
        f"\nauthorization matrix: {report.summary} ({report.allowed} allowed, "
        f"{report.validated} responses checked against /openapi.json)"
    )
    problems = report.problems()
    assert not problems, json.dumps(problems, indent=1)
    assert report.summary == f"{report.cases} cases, 0 unexpected allows, 0 marker leaks"
    assert report.cases == len(all_cases())


def test_replaying_the_matrix_writes_one_audit_event_per_request(
    client: FlaskClient, session: Session, world: World
) -> None:
    report = run_matrix(client, session, world, count_audit=True)
    assert report.audit_mismatches == []
    assert report.cases == len(all_cases())


def test_ids_of_others_objects_in_bodies_and_queries_reach_nothing(
    client: FlaskClient, session: Session, world: World
) -> None:
    """The matrix names objects in the URL; these name them in a body or a query string."""
    a, b, c = (world.parties[label] for label in ("A", "B", "C"))
    clinician, admin_1 = world.headers["clinician_1"], world.headers[ADMIN_1]
    lab = {"code": "igg", "value": 8.1, "unit": "g/L", "taken_at": world.values["yesterday"]}
    task_etag = world.etags[("task", "A")]
    before = fingerprint(session)
    responses = []
    for other in (b, c):
        with rolled_back(session):
            labs = client.post(
                f"/api/v1/patients/{a.patient.id}/labs",
                json={**lab, "task_id": other.task.id},
                headers=clinician,
            )
            linked = client.patch(
                f"/api/v1/monitoring/{a.task.id}",
                json={"lab_result_id": other.lab.id},
                headers={**clinician, "If-Match": task_etag},
            )
            assert fingerprint(session) == before
        assert labs.status_code == 422, labs.get_json()
        assert set(labs.get_json()["errors"]) == {"task_id"}
        assert linked.status_code == 422, linked.get_json()
        assert set(linked.get_json()["errors"]) == {"lab_result_id"}
        responses += [labs, linked]

    # Clinic 2's admin reads patient C's plan: an audit event of clinic 2 about patient C.
    assert (
        client.get(f"/api/v1/plans/{c.plan.id}", headers=world.headers[ADMIN_2]).status_code == 200
    )
    theirs = client.get(f"/api/v1/audit?patient_id={c.patient.id}", headers=admin_1)
    mine = client.get(f"/api/v1/audit?patient_id={c.patient.id}", headers=world.headers[ADMIN_2])
    assert (theirs.status_code, theirs.get_json()["total"]) == (200, 0)
    assert mine.get_json()["total"] >= 1
    searched = client.get(f"/api/v1/patients?q={c.marker}", headers=clinician)
    assert (searched.status_code, searched.get_json()["total"]) == (200, 0)
    accounts = client.get("/api/v1/users?role=patient", headers=admin_1)
    assert {user["id"] for user in accounts.get_json()["items"]} == {a.user.id, b.user.id}
    responses += [theirs, searched, accounts]

    # Patient B logs out naming patient A's refresh token: only B's own sessions end.
    logout = client.post(
        "/api/v1/auth/logout",
        json={"refresh_token": world.values["refresh_token"]},
        headers=world.headers["patient_b"],
    )
    assert logout.status_code == 204
    refreshed = client.post(
        "/api/v1/auth/refresh", json={"refresh_token": world.values["refresh_token"]}
    )
    assert refreshed.status_code == 200, refreshed.get_json()

    foreign = world.all_markers - world.visible_markers(ADMIN_1)  # clinic 1 staff see the same
    for response in responses:
        text_seen = response.get_data(as_text=True).lower()
        assert not [m for m in foreign if m.lower() in text_seen], response.request.path

"""One timestamp format in every response: each instant is RFC 3339 in UTC with milliseconds
(2027-01-04T08:00:00.000Z); a `local_time` is the same format on a zone's wall clock, with that
zone's offset. Walks the answers of every route the authorization matrix calls."""

from __future__ import annotations

import re
from typing import Any

from tests.api.test_authorization_matrix import (
    all_cases,
    collect_etags,
    fill,
    target_of,
    url_of,
)
from tests.api.world import build_world, rolled_back

LOOKS_LIKE_A_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
INSTANT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")
LOCAL_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}$")
# Who reads: a patient for their own app, staff (both roles) for their clinic's objects.
READERS = ("patient_a", "clinician_1", "admin_1")
# FHIR resources follow FHIR's own instant rules; calendars are iCalendar.
OTHER_FORMATS = ("application/fhir+json", "text/calendar")


def timestamps(value: Any, path: str = "") -> list[tuple[str, str]]:
    """Every (path, value) of a string that looks like a date and time, anywhere in a body."""
    if isinstance(value, dict):
        return [hit for key, item in value.items() for hit in timestamps(item, f"{path}.{key}")]
    if isinstance(value, list):
        return [hit for i, item in enumerate(value) for hit in timestamps(item, f"{path}[{i}]")]
    if isinstance(value, str) and LOOKS_LIKE_A_TIME.match(value):
        return [(path, value)]
    return []


def test_timestamp_walker_finds_the_formats_it_must_refuse():
    body = {"a": [{"at": "2027-01-04T08:00:00+00:00"}], "b": "2027-01-04 08:00", "c": "2027-01-04"}
    found = dict(timestamps(body))
    assert found == {".a[0].at": "2027-01-04T08:00:00+00:00", ".b": "2027-01-04 08:00"}
    assert not any(INSTANT.match(value) for value in found.values())


def test_every_response_writes_instants_one_way(client, session, settings):
    world = build_world(session, settings)
    collect_etags(client, session, world)
    checked, wrong = 0, []
    for case in all_cases():
        entry = case.entry
        if case.actor not in READERS or case.expected != "allow":
            continue
        if case.ownership not in ("-", "own"):
            continue
        owner, params = target_of(world, case)
        headers = dict(world.headers[case.actor])
        if entry.get("if_match") == "own":
            headers["If-Match"] = client.get(
                url_of(entry["rule"], params), headers=headers
            ).headers["ETag"]
        elif entry.get("if_match") and owner is not None:
            headers["If-Match"] = world.etags[(entry["object"], owner)]
        kwargs: dict[str, Any] = {"headers": headers}
        if "body" in entry:
            kwargs["json"] = fill(entry["body"], world.values)
        with rolled_back(session):
            response = client.open(url_of(entry["rule"], params), method=entry["method"], **kwargs)
        if response.mimetype in OTHER_FORMATS or not response.is_json or not response.data:
            continue
        for path, value in timestamps(response.get_json()):
            checked += 1
            pattern = LOCAL_TIME if path.endswith(".local_time") else INSTANT
            if not pattern.match(value):
                wrong.append(f"{entry['method']} {entry['rule']} {path} = {value}")
    assert wrong == []
    assert checked > 100

"""The staff views' bodies, built without marshmallow, equal their schemas' dumps."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from types import SimpleNamespace
from typing import Any

import marshmallow as ma
import pytest
from marshmallow import fields

from schemas.staff import ScheduleSchema, WorklistSchema, schedule_body, worklist_body
from service.protocols import get_regimen
from service.staff.views import _premedications

DAY = date(2027, 3, 28)  # Berlin moves to summer time at 02:00 that day
BLOCKING = [
    {"code": "hbsag", "outcome": "pending"},
    # A stored item may hold more than the wire shows.
    {"code": "tb_igra", "outcome": "positive", "detail": "not shown"},
]


def _same(fast: dict[str, Any], dumped: dict[str, Any]) -> None:
    # As text: a dict equality would take True for 1 and 1.0 for 1.
    assert json.dumps(fast, sort_keys=True) == json.dumps(dumped, sort_keys=True)


def _declared(schema: ma.Schema, path: str = "") -> set[str]:
    """Every field of the schema and of the schemas nested in it, as dotted paths."""
    found = set()
    for name, field in schema.fields.items():
        here = f"{path}.{name}" if path else name
        found.add(here)
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(inner, fields.Nested):
            found |= _declared(inner.schema, here)
    return found


def _present(data: Any, path: str = "") -> set[str]:
    """The dotted paths of every key in a dumped body (list items merged)."""
    if isinstance(data, list):
        return set().union(*(_present(item, path) for item in data))
    if not isinstance(data, dict):
        return set()
    found = set()
    for name, value in data.items():
        here = f"{path}.{name}" if path else name
        found |= {here} | _present(value, here)
    return found


def _subject(k: int, *, booking: str | None = "confirmed") -> dict[str, Any]:
    return {
        "patient": {"id": 10 + k, "mrn": f"MRN{k}", "name": f"Given{k} Family-Ünïcode"},
        "plan": {
            "id": 20 + k,
            "regimen": "ocrelizumab-iv",
            "variant": "standard",
            "status": "ready",
        },
        "dose": {
            "id": 30 + k,
            "sequence": k,
            "course": 1 + k // 2,
            "kind": "initial" if k < 2 else "maintenance",
            "amount_mg": 300 * k,
            "due_date": date(2027, 3, 20 + k),
            "booking": booking,
            "status": "booked" if booking else "planned",
        },
    }


def _links(k: int, *, dose: bool = True) -> dict[str, str]:
    links = {"plan": f"/api/v1/plans/{20 + k}", "patient": f"/api/v1/patients/{10 + k}"}
    if dose:
        links |= {"dose": f"/api/v1/doses/{30 + k}", "readiness": f"/api/v1/doses/{30 + k}/r"}
    return links


def _schedule() -> dict[str, Any]:
    ocrelizumab = _premedications(get_regimen("ocrelizumab-iv"))
    rituximab = _premedications(get_regimen("rituximab-iv"))
    appointments = [
        datetime(2027, 3, 28, 0, 30, tzinfo=UTC),  # 01:30 +01:00
        datetime(2027, 3, 28, 1, 30, tzinfo=UTC),  # 03:30 +02:00
        datetime(2027, 3, 28, 13, 5, 7, 123456, tzinfo=UTC),
    ]
    items = [
        {
            **_subject(k),
            "appointment_at": at,
            "local_time": "ignored",
            "location": None if k == 1 else f"Chair {k}",
            "premedications": rituximab if k == 2 else ocrelizumab,
            "screening": (
                {"outcome": "cleared", "blocking_items": [], "overridden": False}
                if k != 1
                else {"outcome": "pending", "blocking_items": BLOCKING, "overridden": True}
            ),
            "expected_chair_minutes": None if k == 1 else 60 * k,
            "expected_infusion_minutes": None if k == 1 else 45,
            "infusion_option": "short_2h" if k == 2 else None,
            "needs_review": k == 2,
        }
        for k, at in enumerate(appointments)
    ]
    unbooked = [
        {
            **_subject(k, booking=None),
            "screening": {"outcome": "cleared", "blocking_items": [], "overridden": False},
            "needs_review": False,
        }
        for k in (3, 4)
    ]
    unbooked[1]["screening"] = {
        "outcome": "failed",
        "blocking_items": BLOCKING,
        "overridden": False,
    }
    return {"date": DAY, "time_zone": "Europe/Berlin", "items": items, "unbooked_due": unbooked}


def test_schedule_body_is_the_schema_dump():
    schedule = _schedule()
    windows = {p["minutes_before"] is None for i in schedule["items"] for p in i["premedications"]}
    assert windows == {True, False}, "a premedication with a window and one without"
    _same(schedule_body(schedule), ScheduleSchema().dump(schedule))


def test_the_cases_hold_every_field_of_the_schemas():
    # A field added to a schema and not to these cases would be left out of both sides.
    schedule = ScheduleSchema()
    assert _declared(schedule) <= _present(schedule.dump(_schedule()))
    worklist = WorklistSchema()
    assert _declared(worklist) <= _present(worklist.dump(_worklist()))


@pytest.mark.parametrize("time_zone", ["UTC", "America/Los_Angeles", "Asia/Kolkata"])
def test_schedule_local_times_in_other_zones(time_zone):
    schedule = {**_schedule(), "time_zone": time_zone}
    _same(schedule_body(schedule), ScheduleSchema().dump(schedule))


def _first_dose_entry(k: int, blocking: list[dict[str, str]]) -> dict[str, Any]:
    subject = _subject(k)
    return {
        "patient": subject["patient"],
        "plan": subject["plan"],
        "first_dose": subject["dose"],
        "first_dose_date": date(2027, 3, 20 + k),
        "days_until_first_dose": k - 2,
        "outcome": "pending" if blocking else "cleared",
        "blocking_items": blocking,
        "links": _links(k),
    }


def _alert(k: int, *, patient: bool, resolved: bool) -> SimpleNamespace:
    return SimpleNamespace(
        id=k,
        kind="lab_low" if patient else "login_failures",
        patient=(
            SimpleNamespace(id=10 + k, mrn=f"MRN{k}", given_name="Given", family_name="Family")
            if patient
            else None
        ),
        subject_type="patient" if patient else "user",
        subject_id=10 + k,
        details={"code": "cd19_low", "count": k, "nested": {"a": [1, None]}},
        created_at=datetime(2027, 3, 1, 8, k, tzinfo=UTC),
        resolved_at=datetime(2027, 3, 2, tzinfo=UTC) if resolved else None,
        resolved_by_id=7 if resolved else None,
    )


def _worklist() -> dict[str, Any]:
    at = datetime(2027, 3, 27, 9, 15, tzinfo=UTC)
    dose_entries = [
        {
            **_subject(k),
            "links": _links(k),
            "appointment_at": at if k == 1 else None,
            "date": date(2027, 3, 20 + k),
        }
        for k in (1, 2)
    ]
    return {
        "date": DAY,
        "time_zone": "Europe/Berlin",
        "checklists": [_first_dose_entry(1, BLOCKING), _first_dose_entry(2, BLOCKING[:1])],
        "overdue_doses": [{**entry, "days_overdue": 3 + n} for n, entry in enumerate(dose_entries)],
        "overdue_tasks": [
            {
                "patient": _subject(k)["patient"],
                "plan": _subject(k)["plan"],
                "task": {
                    "id": 40 + k,
                    "kind": "igg",
                    "due_date": date(2027, 3, k),
                    "status": "overdue" if k == 1 else "due",
                    "dose_id": 30 + k if k == 1 else None,
                    "after_treatment": k == 2,
                },
                "days_overdue": 20 - k,
            }
            for k in (1, 2)
        ],
        "alerts": [
            _alert(1, patient=True, resolved=False),
            _alert(2, patient=False, resolved=True),
        ],
        "not_made_ready": [_first_dose_entry(3, []), _first_dose_entry(4, BLOCKING[1:])],
        "readiness_open": [
            {**entry, "days_until": n, "open_items": BLOCKING}
            for n, entry in enumerate(dose_entries)
        ],
        "observation_missing": [
            {
                **_subject(k),
                "links": _links(k),
                "administered_at": datetime(2027, 3, 20 + k, 10, tzinfo=UTC),
                "required_minutes": 60,
                "recorded_minutes": None if k == 1 else 30,
            }
            for k in (1, 2)
        ],
        "counts": {
            "checklists": 2,
            "overdue_doses": 120,
            "overdue_tasks": 2,
            "alerts": 2,
            "not_made_ready": 2,
            "readiness_open": 2,
            "observation_missing": 2,
        },
    }


def test_worklist_body_is_the_schema_dump():
    worklist = _worklist()
    _same(worklist_body(worklist), WorklistSchema().dump(worklist))


def test_empty_worklist_body_is_the_schema_dump():
    worklist = {
        **_worklist(),
        **{section: [] for section in ("checklists", "overdue_doses", "overdue_tasks", "alerts")},
        **{section: [] for section in ("not_made_ready", "readiness_open", "observation_missing")},
    }
    _same(worklist_body(worklist), WorklistSchema().dump(worklist))

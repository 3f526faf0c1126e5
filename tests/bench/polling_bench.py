"""What a conditional GET saves on the reads a phone polls (run by hand:
`python -m tests.bench.polling_bench`, or `DATABASE_URL=postgresql+psycopg://... python -m ...`).

Seeds one clinic with a patient on an ocrelizumab plan (checklist cleared, its reminders
derived) and `--messages` inbox messages, then times each polled read in-process through the
WSGI stack (the test client: no network, so the figures are the server's work): the full answer
(200) beside a revalidation that the server answers 304, with the median and the SQL SELECTs each
costs. Progress goes to stderr; the last line on stdout is one JSON object. On SQLite it works
in a temporary file; on PostgreSQL it migrates the database it is given and leaves the clinic
there (point it at a database of its own).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import date, timedelta
from typing import Any

from sqlalchemy import event

from service.app import create_app
from service.config import Settings
from service.db import SessionFactory, engines, get_engine
from service.migrations import upgrade_database
from service.reminders.inbox import post_to_inbox
from tests.factories import auth_headers, make_clinic, make_patient, make_plan, make_user

READS = ("/api/v1/me", "/api/v1/me/plans", "/api/v1/me/inbox", "/api/v1/me/reminders/upcoming")
SECRET = "polling-bench-secret-" + "k3Q9zLx2Vb7Np4Wm8Rt6Yh1Jd5Gf0Sc"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _seed(settings: Settings, messages: int) -> dict[str, Any]:
    with SessionFactory() as session:
        clinic = make_clinic(session, time_zone="Europe/Oslo")
        staff = make_user(session, settings, clinic, "clinician")
        patient = make_patient(session, clinic, time_zone="Europe/Oslo")
        user = make_user(session, settings, clinic, "patient", patient=patient)
        plan = make_plan(
            session, patient, staff, start_date=date.today() + timedelta(days=30), cleared=True
        )
        for n in range(messages):
            post_to_inbox(
                session,
                patient_id=patient.id,
                reminder_id=None,
                kind="dose_upcoming",
                title=f"Infusion {n}",
                body="Your infusion is next week.",
            )
        session.commit()
        return {
            "patient": auth_headers(settings, user),
            "staff": auth_headers(settings, staff),
            "plan_url": f"/api/v1/plans/{plan.id}",
        }


def _time(client: Any, url: str, headers: dict[str, str], rounds: int) -> tuple[float, int, int]:
    """Median milliseconds, SELECT statements and status of GET `url`."""
    selects: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            selects.append(statement)

    timings = []
    status = 0
    for n in range(rounds):
        selects.clear()
        for engine in engines():
            event.listen(engine, "before_cursor_execute", count)
        start = time.perf_counter()
        response = client.get(url, headers=headers)
        timings.append((time.perf_counter() - start) * 1000)
        for engine in engines():
            event.remove(engine, "before_cursor_execute", count)
        status = response.status_code
        if n == 0:
            statements = len(selects)
    return statistics.median(timings), statements, status


def run_benchmark(database_url: str, *, messages: int, rounds: int) -> dict[str, Any]:
    settings = Settings(
        database_url=database_url,
        secret_key=SECRET,
        environment="test",
        argon2_time_cost=1,
        argon2_memory_kib=64,
        argon2_parallelism=1,
        rate_limits_enabled=False,
        # Every 200 renders its body: the figures are of what a 304 saves over rendering, not
        # over a body the process kept (README, "Polling and caching").
        render_store_bytes=0,
    )
    upgrade_database(database_url)
    app = create_app(settings)
    _log(f"seeding a plan and {messages} inbox messages")
    seeded = _seed(settings, messages)
    client = app.test_client()
    results: dict[str, Any] = {}
    reads = [(url, seeded["patient"]) for url in READS] + [(seeded["plan_url"], seeded["staff"])]
    for url, headers in reads:
        etag = client.get(url, headers=headers).headers["ETag"]
        full_ms, full_sql, full_status = _time(client, url, headers, rounds)
        revalidated = {**headers, "If-None-Match": etag}
        cached_ms, cached_sql, cached_status = _time(client, url, revalidated, rounds)
        assert (full_status, cached_status) == (200, 304), (url, full_status, cached_status)
        name = url.removeprefix("/api/v1")
        results[name] = {
            "p50_ms_200": round(full_ms, 2),
            "p50_ms_304": round(cached_ms, 2),
            "speedup": round(full_ms / cached_ms, 1),
            "selects_200": full_sql,
            "selects_304": cached_sql,
        }
        _log(f"{name}: {results[name]}")
    return {
        "database": get_engine().dialect.name,
        "messages": messages,
        "rounds": rounds,
        "reads": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    with tempfile.TemporaryDirectory() as scratch:
        database_url = url or f"sqlite:///{scratch}/polling.db"
        result = run_benchmark(database_url, messages=args.messages, rounds=args.rounds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()

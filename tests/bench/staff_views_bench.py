"""Staff views at registry scale on PostgreSQL: the worklist and the day's schedule, in-process.

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/cd20 \\
        python -m tests.bench.staff_views_bench --sizes 1000 100000

For each size N a scratch database <database>_scale is made, migrated and seeded by
tests.bench.registry_seed (one clinic, N patients with plans in five regimens, checklists
cleared, first doses booked over 60 days, the same handful of worklist entries at any N), then
timed, `--repeat` calls each after two warm-up calls:

- worklist: the use case (a fresh session per call) and GET /api/v1/staff/worklist through
  the Flask test client (authentication, audit and serialization included);
- schedule on the fixed day (the same 33 booked first doses at any N, beside the later doses
  of other plans that fall due that day) and on a day inside the booking window: in one clinic
  of N patients what is on a day's list grows with N;
- the largest N again as clinics of `--clinic-size` patients (timing the first clinic): the
  same lists as the smallest N in tables 100 times larger;
- SQL statements per call.

Progress goes to stderr; the last line on stdout is one JSON object with p50/p90 in ms per
size and the ratios of p50 at the largest N to p50 at the smallest.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time as clock
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, event, text

from service.models import TreatmentPlan
from tests.bench.seed import scratch_database

SECRET = "staff-views-bench-secret-key-of-enough-length"
BUDGET_MS = 15_000


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@contextmanager
def counted(engine: Engine) -> Iterator[list[int]]:
    seen = [0]

    def count(*_args: Any) -> None:
        seen[0] += 1

    event.listen(engine, "before_cursor_execute", count)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", count)


def timed(call: Callable[[], Any], repeat: int, warmup: int = 2) -> dict[str, float]:
    for _ in range(warmup):
        call()
    times: list[float] = []
    for _ in range(repeat):
        started = clock.perf_counter()
        call()
        times.append((clock.perf_counter() - started) * 1000)
        if len(times) >= 3 and sum(times) > BUDGET_MS:
            break  # a list of thousands: three calls tell enough
    times.sort()
    return {
        "p50_ms": round(statistics.median(times), 2),
        "p90_ms": round(times[max(int(len(times) * 0.9) - 1, 0)], 2),
        "calls": len(times),
    }


def measure(
    url: str, size: int, repeat: int, clinic_size: int | None, warmup: int = 2
) -> dict[str, Any]:
    from service.accounts.tokens import create_access_token
    from service.app import create_app
    from service.config import Settings
    from service.core.wall_clock import local_today
    from service.db import SessionFactory
    from service.staff.views import staff_schedule, staff_worklist
    from tests.bench.registry_seed import (
        ZONE,
        add_resolved_alerts,
        add_worklist,
        seed_registry,
    )

    settings = Settings(
        database_url=url, secret_key=SECRET, environment="test", rate_limits_enabled=False
    )
    app = create_app(settings)
    engine = SessionFactory.kw["bind"]
    today = local_today(ZONE)
    started = clock.perf_counter()
    with SessionFactory() as session:
        registry = seed_registry(session, patients=size, today=today, clinic_size=clinic_size)
        made = add_worklist(session, registry, today)
        add_resolved_alerts(session, registry, max(size // 10, 10))
        session.commit()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("ANALYZE"))
    seeded_s = clock.perf_counter() - started
    log(f"N={size}: seeded in {seeded_s:.1f} s")
    actor = registry.actor
    busy_day: date = today + timedelta(days=30)
    client = app.test_client()
    token = create_access_token(settings, user_id=registry.staff_id, generation=0)
    headers = {"Authorization": f"Bearer {token}"}

    def use_case(fn: Callable[..., Any], **kwargs: Any) -> Callable[[], Any]:
        def call() -> Any:
            with SessionFactory() as session:
                return fn(session, actor, **kwargs)

        return call

    def http(path: str) -> Callable[[], Any]:
        def call() -> Any:
            response = client.get(path, headers=headers)
            assert response.status_code == 200, response.get_json()
            return response.get_json()

        return call

    worklist = use_case(staff_worklist)()
    fixed = use_case(staff_schedule, day=registry.fixed_day)()
    busy = use_case(staff_schedule, day=busy_day)()
    result: dict[str, Any] = {
        "patients": registry.patients,
        "seeded_s": round(seeded_s, 1),
        "worklist_counts": worklist["counts"],
        "worklist_expected": made,
        "clinic_patients": min(size, clinic_size or size),
        "fixed_day_doses": len(fixed["items"]),
        "fixed_day_unbooked_due": len(fixed["unbooked_due"]),
        "busy_day_doses": len(busy["items"]),
        "busy_day_unbooked_due": len(busy["unbooked_due"]),
    }
    calls = {
        "worklist": use_case(staff_worklist),
        "worklist_http": http("/api/v1/staff/worklist"),
        "schedule_fixed_day": use_case(staff_schedule, day=registry.fixed_day),
        "schedule_fixed_day_http": http(
            f"/api/v1/staff/schedule?date={registry.fixed_day.isoformat()}"
        ),
        "schedule_busy_day": use_case(staff_schedule, day=busy_day),
    }
    calls["write_patient_plan_12_results_booking"] = write_flow(registry, today)
    for name, call in calls.items():
        with counted(engine) as seen:
            call()
        figures = timed(call, repeat, warmup)
        figures["statements"] = seen[0]
        result[name] = figures
        log(f"N={size}: {name} {figures}")
    return result


def write_flow(registry: Any, today: date) -> Callable[[], Any]:
    """A new patient, a plan, 12 screening results one by one, and the first dose booked: each
    its own committed transaction, as through the API, timed together."""
    from service.db import SessionFactory
    from service.models import Patient
    from service.treatment.doses import update_dose
    from service.treatment.plans import PlanRequest, create_plan
    from service.treatment.screening import record_screening_result
    from tests.bench.registry_seed import ZONE
    from tests.factories import NORMAL_LIVER_TESTS

    actor = registry.actor
    counter = iter(range(10**6))
    start = today + timedelta(days=20)

    def call() -> None:
        with SessionFactory() as session:
            patient = Patient(
                clinic_id=registry.clinic_id,
                mrn=f"WRITE{next(counter):06d}",
                given_name="Write",
                family_name="Flow",
                birth_date=date(1985, 3, 14),
                time_zone=ZONE,
                can_become_pregnant=False,
            )
            session.add(patient)
            session.commit()
            plan = create_plan(
                session, actor, patient.id, PlanRequest(regimen="ocrelizumab-iv", start_date=start)
            )
            session.commit()
            plan_id, dose_id = plan.id, plan.doses[0].id
        with SessionFactory() as session:
            codes = [i.code for i in session.get_one(TreatmentPlan, plan_id).screening_items]
        for code in codes[:12]:
            with SessionFactory() as session:
                item = next(
                    i
                    for i in session.get_one(TreatmentPlan, plan_id).screening_items
                    if i.code == code
                )
                rule = item.rule
                assert rule is not None
                if code == "lft":
                    record_screening_result(
                        session, actor, item, result_date=today, values=NORMAL_LIVER_TESTS
                    )
                elif code == "hepatology_consult":
                    record_screening_result(
                        session,
                        actor,
                        item,
                        result_date=today,
                        consult={"consultant": "Dr Bench", "decision": "not_eligible"},
                    )
                elif code == "hbv_dna":
                    record_screening_result(
                        session, actor, item, result_date=today, value="0", unit="IU/mL"
                    )
                else:
                    result = next(
                        r for r in rule.allowed_results if rule.outcome_for(r) == "cleared"
                    )
                    record_screening_result(session, actor, item, result=result, result_date=today)
                session.commit()
        with SessionFactory() as session:
            from service.models import Dose

            dose = session.get_one(Dose, dose_id)
            appointment = datetime.combine(start, time(9), ZoneInfo(ZONE))
            update_dose(session, actor, dose, {"appointment_at": appointment})
            session.commit()

    return call


def run_benchmark(
    base_url: str, sizes: list[int], repeat: int, clinic_size: int | None, warmup: int = 2
) -> dict[str, Any]:
    """Each size as one clinic; the largest also split into clinics of `clinic_size`."""
    from service.db import SessionFactory

    layouts = [(str(size), size, None) for size in sizes]
    if clinic_size:
        largest = max(sizes)
        layouts.append((f"{largest}/clinics_of_{clinic_size}", largest, clinic_size))
    results: dict[str, Any] = {"sizes": sizes, "repeat": repeat, "runs": {}}
    for key, size, per_clinic in layouts:
        with scratch_database(base_url, "scale") as url:
            results["runs"][key] = measure(url, size, repeat, per_clinic, warmup)
            SessionFactory.kw["bind"].dispose()
    small = results["runs"][str(min(sizes))]
    names = ("worklist", "worklist_http", "schedule_fixed_day", "schedule_fixed_day_http")
    results["p50_ratio_to_smallest"] = {
        key: {name: round(run[name]["p50_ms"] / small[name]["p50_ms"], 2) for name in names}
        for key, run in results["runs"].items()
    }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 100000])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls before timing")
    parser.add_argument(
        "--clinic-size",
        type=int,
        default=1000,
        help="also run the largest size split into clinics of this many patients (0: not)",
    )
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url or not url.startswith("postgresql"):
        sys.exit("Set DATABASE_URL to a PostgreSQL URL (a scratch database is made beside it).")
    print(
        json.dumps(
            run_benchmark(url, args.sizes, args.repeat, args.clinic_size or None, args.warmup)
        )
    )


if __name__ == "__main__":
    main()

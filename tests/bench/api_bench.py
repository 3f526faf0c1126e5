"""API benchmark on PostgreSQL: the API under gunicorn beside a bare Flask app, driven by wrk.

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/cd20 \\
        python -m tests.bench.api_bench --patients 100000

Creates a scratch database beside DATABASE_URL's (<name>_api_bench, dropped at the end) and
seeds two registries with tests/bench/registry_seed.py: N patients (default 100,000) in clinics
of 1,000, and one clinic of 1,000. Each patient has a plan of one of the five regimens, screening
cleared, made ready and the first dose booked on one of the next 60 days; a fixed day holds the
same 33 booked doses in both, and the first clinic of each gets the same handful of worklist
entries. Five plans per registry are made through the use cases; the rest are set-based copies
of them, their stored states (the gate and checklist, each open dose's readiness and its
blocking items, `observation_short`) set as the application sets them, so the staff views
select what is on them as in production. With --one-clinic a third registry holds N patients in
one clinic (its staff views and patient list are reported apart, under "one_clinic_of_n"). The
writes go to the N registry's last clinic, so that its first clinic holds what the 1,000-patient
one does.

Then it starts `gunicorn wsgi:app` and `gunicorn tests.bench.bare_app:app` (a bare Flask app
answering every GET with a real plan's body) with the same settings (--workers sync workers),
and drives each request below with wrk (--connections connections, --seconds each), in one run:
requests/s, p50, p99, the ratio to the bare app's requests/s, and the SQL statements the
request takes (counted in-process on the same database, for a read asked again). The reads
of one object ask for the same one again and again, as a polling app does, and are answered
with the body kept for it while nothing changed; `GET /plans/{id}` is also timed over every
plan of the clinic in turn, where each read renders its plan. With --compare-workers 1,2,4
the bare app, `GET /plans/{id}` and `GET /me/inbox` are timed again under each worker count
(reported under "by_workers"). Reads' audit events are spooled (CD20_AUDIT_SPOOL_DIR), as the
README's production command does; --audit-events insert has each read insert its event
instead, and --compare-audit times the reads of one object that way too, against the same bare
app (reported under "reads_with_event_inserted"). The writes go through wrk's Lua:
`POST /patients/{id}/plans` on fresh patients with unique Idempotency-Keys, and `PUT` of a
screening result on plans those made, each with its ETag. The worklist and the schedule of
the first clinic are measured in the registry of N and in the one of 1,000 (their p50 ratio is
the scaling figure: the cost follows the clinic's lists, not the registry's size).

Progress goes to stderr; the last line on stdout is one JSON object. The machine running it is
the one measured: a shared machine gives noisy figures, so compare ratios within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, event, select, text

ROOT = Path(__file__).resolve().parents[2]
REGIMENS = ("ocrelizumab-iv", "ocrelizumab-sc", "ofatumumab-sc", "rituximab-iv", "ublituximab-iv")
BOOKING_DAYS = 60
WRITE_SECONDS = 5.0
WARM_UP_S = 1.0
SPREAD_READ = "GET /plans/{id}, each plan of the clinic in turn"
# Checklist items a plain negative result clears (the PUT's body).
NEGATIVE_ITEMS = ("hbsag", "anti_hbc", "hcv", "hiv", "active_infection", "tb_igra")
SMALL_CLINIC = 1000
ZONE = "Europe/Berlin"
SECRET = "api-bench-secret-key-" + "k3Qx9vRm2TzL7wNp4YbH8sJc6FdG1aE5"

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- seeding -----------------------------------------------------------------------------------


@dataclass
class BenchClinic:
    clinic_id: int
    staff_headers: dict[str, str]
    patient_headers: dict[str, str]
    patient_id: int  # the patient of patient_headers
    plan_id: int  # that patient's plan
    schedule_day: date  # a day with the same booked doses at any registry size
    writer_headers: dict[str, str] = field(default_factory=dict)  # staff of `fresh`
    fresh: list[int] = field(default_factory=list)  # patients without a plan (for POST)
    plan_ids: list[int] = field(default_factory=list)  # every plan of the clinic


def _settings(url: str, **overrides: Any) -> Any:
    from service.config import Settings

    return Settings(
        database_url=url,
        **overrides,
        secret_key=SECRET,
        environment="production",
        rate_limits_enabled=False,
        access_token_ttl_s=24 * 3600,
        argon2_time_cost=1,
        argon2_memory_kib=64,
        argon2_parallelism=1,
    )


def seed_bench_registry(
    settings: Any,
    *,
    patients: int,
    clinic_size: int | None,
    fresh: int,
    log: Log,
) -> BenchClinic:
    """A registry of `patients` patients (in clinics of `clinic_size`, or one clinic) seeded by
    `registry_seed`, stored states included, then in its first clinic: the worklist's handful,
    an app account for a template patient; and `fresh` patients without a plan in its last
    clinic (so that the first clinic holds the same at any registry size)."""
    from service.db import unit_of_work
    from service.models import Clinic, Patient, TreatmentPlan, User
    from tests.bench.registry_seed import (
        _template_patient_id,
        add_worklist,
        seed_registry,
    )
    from tests.factories import auth_headers, make_user

    started = time.monotonic()
    today = date.today()
    with unit_of_work() as session:
        registry = seed_registry(
            session, patients=patients, today=today, booking_days=BOOKING_DAYS,
            clinic_size=clinic_size,
        )  # fmt: skip
    with unit_of_work() as session:
        add_worklist(session, registry, today)
        clinic = session.get_one(Clinic, registry.clinic_id)
        run = uuid.uuid4().hex[:12]  # e-mails are unique across registries and kept databases
        patient = session.get_one(Patient, _template_patient_id(session, registry, 0))
        patient_user = make_user(
            session, settings, clinic, "patient", patient=patient, email=f"app-{run}@bench.example"
        )
        # The clinic of the last copy (registries seeded later have higher clinic ids).
        last = session.execute(
            text(
                "SELECT coalesce(min(clinic_id), :c) FROM patient"
                " WHERE mrn = :mrn AND clinic_id >= :c"
            ),
            {"c": registry.clinic_id, "mrn": f"REG{registry.patients - len(REGIMENS):07d}"},
        ).scalar_one()
        writer = make_user(
            session,
            settings,
            session.get_one(Clinic, last),
            "clinician",
            email=f"writer-{run}@bench.example",
        )
        bench = BenchClinic(
            clinic_id=clinic.id,
            staff_headers=auth_headers(settings, session.get_one(User, registry.staff_id)),
            patient_headers=auth_headers(settings, patient_user),
            patient_id=patient.id,
            plan_id=patient.plans[0].id,
            schedule_day=registry.fixed_day,
            writer_headers=auth_headers(settings, writer),
        )
        bench.plan_ids = list(
            session.scalars(
                select(TreatmentPlan.id)
                .where(TreatmentPlan.clinic_id == clinic.id)
                .order_by(TreatmentPlan.id)
            )
        )
        bench.fresh = add_patients(session.connection(), last, fresh, prefix=f"F{last}-")
    log(
        f"  seeded {patients} patients"
        + (f" in clinics of {clinic_size}" if clinic_size else " in one clinic")
        + f" in {time.monotonic() - started:.1f} s"
    )
    return bench


def add_patients(conn: Any, clinic_id: int, count: int, *, prefix: str) -> list[int]:
    if count <= 0:
        return []
    return sorted(
        conn.execute(
            text(
                """
                INSERT INTO patient (clinic_id, mrn, given_name, family_name, birth_date,
                    time_zone, email, reminder_time, quiet_start, quiet_end, reminder_channels,
                    version, created_at, updated_at)
                SELECT :clinic_id, :prefix || lpad(i::text, 7, '0'), 'Bench', 'Patient ' || i,
                    DATE '1985-03-14', :zone, :prefix || i || '@example.org',
                    TIME '09:00', TIME '21:00', TIME '08:00', '["inbox"]'::json, 1, now(), now()
                FROM generate_series(1, :count) AS i
                RETURNING id
                """
            ),
            {"clinic_id": clinic_id, "count": count, "prefix": prefix, "zone": ZONE},
        ).scalars()
    )


# -- servers and wrk ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(
    app: str, env: dict[str, str], workers: int, workdir: Path, probe: str = "/api/v1/healthz"
) -> Iterator[str]:
    """`gunicorn <app>` on a free port with `workers` sync workers; yields its base URL once
    `probe` answers 200."""
    port = free_port()
    log_path = workdir / f"gunicorn-{port}.log"
    command = [
        sys.executable, "-m", "gunicorn", "--workers", str(workers), "--worker-class", "sync",
        "--bind", f"127.0.0.1:{port}", "--timeout", "60", "--graceful-timeout", "5",
        "--log-level", "warning", app,
    ]  # fmt: skip
    with log_path.open("wb") as out:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        base = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 60
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{app} did not start:\n{log_path.read_text()[-3000:]}")
                if _answers(base + probe):
                    break
                time.sleep(0.2)
            # Every worker has imported the app and answered once before anything is timed.
            for _ in range(10 * workers):
                _answers(base + probe)
            yield base
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@dataclass
class Load:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _rounded(value: float, digits: int = 2) -> float | None:
    return None if value != value else round(value, digits)  # NaN: nothing answered


def _ms(value: str) -> float:
    number, unit = re.fullmatch(r"([0-9.]+)([a-z]+)", value).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def run_wrk(
    url: str,
    *,
    seconds: float,
    connections: int,
    threads: int,
    headers: dict[str, str] | None = None,
    script: Path | None = None,
) -> Load:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
    command += ["--latency", "--timeout", "10s"]
    for name, value in (headers or {}).items():
        command += ["-H", f"{name}: {value}"]
    if script is not None:
        command += ["-s", str(script)]
    output = subprocess.run([*command, url], capture_output=True, text=True, check=True).stdout
    rate = float(re.search(r"Requests/sec:\s+([0-9.]+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"([0-9]+) requests in", output).group(1))  # type: ignore[union-attr]
    if total == 0:
        _stderr(f"  no answer within {seconds} s from {url}: give it more --seconds")
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    bad = re.search(r"Non-2xx or 3xx responses:\s+([0-9]+)", output)
    failed = re.search(r"Socket errors:.*timeout (\d+)", output)
    errors = (int(bad.group(1)) if bad else 0) + (int(failed.group(1)) if failed else 0)
    return Load(
        requests_per_s=rate,
        p50_ms=_ms(p50.group(1)) if p50 and total else float("nan"),
        p99_ms=_ms(p99.group(1)) if p99 and total else float("nan"),
        requests=total,
        errors=errors,
    )


def warmed_wrk(url: str, **options: Any) -> Load:
    """`run_wrk` after a run of WARM_UP_S that is not counted: every worker has then compiled,
    cached and kept what the request needs, as in a server that has been up a while. (Not for
    the spread read or the writes: there every request must be a new one.)"""
    run_wrk(url, **{**options, "seconds": WARM_UP_S})
    return run_wrk(url, **options)


def lua_requests(
    path: Path,
    requests: list[tuple[str, str, dict[str, str], str]],
    threads: int,
    *,
    cycle: bool = False,
) -> Path:
    """A wrk script sending each of `requests` (method, path, headers, body) once, spread over
    wrk's threads; when they run out it sends the last one again (counted as errors if refused),
    or, with `cycle`, starts again from the first."""

    def lua(value: str) -> str:
        return json.dumps(value)

    rows = []
    for method, url_path, headers, body in requests:
        head = ", ".join(f"[{lua(k)}] = {lua(v)}" for k, v in headers.items())
        rows.append(f"{{{lua(method)}, {lua(url_path)}, {{{head}}}, {lua(body)}}}")
    path.write_text(
        "local requests = {\n"
        + ",\n".join(rows)
        + "\n}\n"
        + """
local next_id = 1
function setup(thread)
  thread:set("tid", next_id)
  next_id = next_id + 1
end
function init(args)
  sent = 0
end
function request()
  local k = sent * """
        + str(threads)
        + """ + tid
  sent = sent + 1
  if k > #requests then k = """
        + ("(k - 1) % #requests + 1" if cycle else "#requests")
        + """ end
  local r = requests[k]
  return wrk.format(r[1], r[2], r[3], r[4])
end
"""
    )
    return path


# -- statements per request (in-process) -------------------------------------------------------


class StatementCounter:
    def __init__(self, url: str, spool_dir: Path | None) -> None:
        from service.app import create_app
        from service.db import engines

        # A spool's own moves would be counted as the request's: this one moves at close().
        spooled = (
            {"audit_spool_dir": str(spool_dir), "audit_spool_flush_s": 60} if spool_dir else {}
        )
        self.app = create_app(_settings(url, **spooled))
        self.client = self.app.test_client()
        self.count = 0
        for engine in engines():
            event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args: Any) -> None:
        self.count += 1

    def request(
        self, method: str, path: str, headers: dict[str, str], body: str = ""
    ) -> tuple[int, Any]:
        self.count = 0
        response = self.client.open(path, method=method, headers=headers, data=body or None)
        if response.status_code >= 400:
            raise RuntimeError(
                f"{method} {path}: {response.status_code} {response.get_data()[:500]!r}"
            )
        return self.count, response

    def close(self) -> None:
        from service.api.middleware.auditing import SPOOL

        spool = self.app.extensions.get(SPOOL)
        if spool is not None:
            spool.close()


# -- the run -----------------------------------------------------------------------------------


@contextmanager
def bench_database(url: str, keep: bool, log: Log) -> Iterator[str]:
    from tests.bench.seed import scratch_database

    if keep:
        from service.migrations import upgrade_database

        upgrade_database(url)
        yield url
        return
    with scratch_database(url, "api_bench") as scratch:
        log(f"scratch database {scratch.rsplit('/', 1)[-1]}")
        yield scratch


def run_benchmark(
    url: str,
    *,
    patients: int,
    seconds: float,
    connections: int = 8,
    threads: int = 2,
    workers: int = 2,
    in_place: bool = False,
    one_clinic: bool = False,
    compare_workers: tuple[int, ...] = (),
    audit_events: str = "spool",
    compare_audit: bool = False,
    log: Log = _stderr,
) -> dict[str, Any]:
    if shutil.which("wrk") is None:
        raise RuntimeError("wrk is not installed (Debian: apt-get install wrk)")
    started_run = time.monotonic()
    write_pool = max(500, int(100 * max(seconds, WRITE_SECONDS)))
    with bench_database(url, in_place, log) as database_url, tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        from service.db import init_engine

        engine = init_engine(database_url)
        settings = _settings(database_url)
        log(f"api bench: N={patients} (and {SMALL_CLINIC}), {seconds} s per request")
        seed = {"settings": settings, "log": log}
        # A registry of N is many clinics: the staff views of one of them at N against a
        # registry of one such clinic is the scaling figure.
        split = SMALL_CLINIC if patients > SMALL_CLINIC else None
        big = seed_bench_registry(patients=patients, clinic_size=split, fresh=write_pool, **seed)
        small = seed_bench_registry(patients=SMALL_CLINIC, clinic_size=None, fresh=0, **seed)
        large = None
        if one_clinic and split:
            large = seed_bench_registry(patients=patients, clinic_size=None, fresh=0, **seed)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            # The seed's dirty pages are written now, not by the checkpointer while requests are
            # timed: the figures are of serving, not of the seed's aftermath.
            conn.execute(text("CHECKPOINT"))

        spooled = audit_events == "spool"
        counter = StatementCounter(database_url, workdir / "counter-spool" if spooled else None)
        schedule_day = big.schedule_day.isoformat()
        staff, me, writer = big.staff_headers, big.patient_headers, big.writer_headers
        reads = [
            ("GET /healthz", "/api/v1/healthz", {}),
            ("GET /plans/{id}", f"/api/v1/plans/{big.plan_id}", staff),
            ("GET /me/inbox", "/api/v1/me/inbox", me),
            ("GET /me/plans", "/api/v1/me/plans", me),
            ("GET /me/reminders/upcoming", "/api/v1/me/reminders/upcoming", me),
            ("GET /patients/{id}", f"/api/v1/patients/{big.patient_id}", staff),
            ("GET /patients?page=5", "/api/v1/patients?page=5", staff),
            ("GET /staff/schedule?date=", f"/api/v1/staff/schedule?date={schedule_day}", staff),
            ("GET /staff/worklist", "/api/v1/staff/worklist", staff),
        ]
        small_reads = [
            ("GET /staff/schedule?date=", f"/api/v1/staff/schedule?date={schedule_day}"),
            ("GET /staff/worklist", "/api/v1/staff/worklist"),
        ]
        statements: dict[str, int] = {}
        for name, path, headers in reads:
            counter.request("GET", path, headers)  # warm: caches, the catalog
            statements[name], _ = counter.request("GET", path, headers)
        unread = next(plan_id for plan_id in big.plan_ids if plan_id != big.plan_id)
        statements[SPREAD_READ], _ = counter.request("GET", f"/api/v1/plans/{unread}", staff)
        _, plan_response = counter.request("GET", f"/api/v1/plans/{big.plan_id}", staff)
        body_path = workdir / "plan.json"
        body_path.write_bytes(plan_response.get_data())

        post_body = json.dumps(
            {
                "regimen": "ocrelizumab-iv",
                "start_date": (date.today() + timedelta(days=30)).isoformat(),
            }
        )
        fresh = list(big.fresh)
        probe_patient = fresh.pop()
        statements["POST /patients/{id}/plans"], made = counter.request(
            "POST",
            f"/api/v1/patients/{probe_patient}/plans",
            {**writer, "Content-Type": "application/json", "Idempotency-Key": "bench-probe"},
            post_body,
        )
        item_path = f"/api/v1/plans/{made.get_json()['id']}/screening/hbsag"
        _, item = counter.request("GET", item_path, writer)
        put_body = json.dumps({"result": "negative", "result_date": date.today().isoformat()})
        statements["PUT /plans/{id}/screening/{code}"], _ = counter.request(
            "PUT",
            item_path,
            {**writer, "Content-Type": "application/json", "If-Match": item.headers["ETag"]},
            put_body,
        )

        env = dict(os.environ)
        env.update(
            {
                "DATABASE_URL": database_url,
                "SECRET_KEY": SECRET,
                "CD20_ENV": "production",
                "CD20_RATE_LIMITS_ENABLED": "0",
                "CD20_ACCESS_TOKEN_TTL": str(24 * 3600),
                "BENCH_BARE_BODY": str(body_path),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")])),
            }
        )
        env.pop("REDIS_URL", None)
        if spooled:
            env["CD20_AUDIT_SPOOL_DIR"] = str(workdir / "audit-spool")
        wrk = {"seconds": seconds, "connections": connections, "threads": threads}
        # A write takes tens of milliseconds: a short run would time only the first few.
        writes = {**wrk, "seconds": max(seconds, WRITE_SECONDS)}
        results: dict[str, dict[str, Any]] = {}
        with gunicorn("tests.bench.bare_app:app", env, workers, workdir) as bare_base:
            bare = warmed_wrk(bare_base + "/api/v1/plans/1", **wrk)
        log(f"  bare Flask: {bare.requests_per_s:.0f}/s, p50 {bare.p50_ms:.2f} ms")

        def record(name: str, load: Load) -> None:
            results[name] = {
                "requests_per_s": round(load.requests_per_s, 1),
                "p50_ms": _rounded(load.p50_ms),
                "p99_ms": _rounded(load.p99_ms),
                "ratio_to_bare": round(load.requests_per_s / bare.requests_per_s, 3),
                "statements": statements.get(name),
                "requests": load.requests,
                "errors": load.errors,
            }
            log(
                f"  {name}: {load.requests_per_s:.0f}/s, p50 {load.p50_ms:.2f} ms,"
                f" p99 {load.p99_ms:.2f} ms, {statements.get(name)} statements"
                + (f", {load.errors} errors" if load.errors else "")
            )

        small_p50: dict[str, float] = {}
        staff_views = dict(small_reads)
        with gunicorn("wsgi:app", env, workers, workdir) as api:
            for name, path, headers in reads:
                if name not in staff_views:
                    record(name, warmed_wrk(api + path, headers=headers, **wrk))

            posts = [
                (
                    "POST",
                    f"/api/v1/patients/{pid}/plans",
                    {
                        **writer,
                        "Content-Type": "application/json",
                        "Idempotency-Key": f"bench-{pid}",
                    },
                    post_body,
                )
                for pid in fresh
            ]
            # Every plan of the clinic in turn: the first read of each renders its body (a
            # repeated read of one plan, above, is answered with the body kept for it).
            spread = [("GET", f"/api/v1/plans/{plan_id}", staff, "") for plan_id in big.plan_ids]
            script = lua_requests(workdir / "spread.lua", spread, threads, cycle=True)
            record(SPREAD_READ, run_wrk(api, script=script, **wrk))

            script = lua_requests(workdir / "post.lua", posts, threads)
            record("POST /patients/{id}/plans", run_wrk(api, script=script, **writes))

            # Every open item of the plans just made, each PUT once (with its ETag), one plan
            # after another so that concurrent PUTs are on different plans.
            with engine.connect() as conn:
                items = conn.execute(
                    text(
                        "SELECT i.plan_id, i.code FROM screening_item i"
                        " JOIN treatment_plan t ON t.id = i.plan_id"
                        " WHERE t.patient_id = ANY(:ids) AND i.result IS NULL"
                        " AND i.code IN :codes ORDER BY i.code, i.plan_id"
                    ).bindparams(bindparam("codes", expanding=True)),
                    {"ids": fresh, "codes": list(NEGATIVE_ITEMS)},
                ).all()
            puts = []
            for plan_id, code in items[: write_pool * 2]:
                path = f"/api/v1/plans/{plan_id}/screening/{code}"
                _, got = counter.request("GET", path, writer)
                headers = {
                    **writer,
                    "Content-Type": "application/json",
                    "If-Match": got.headers["ETag"],
                }
                puts.append(("PUT", path, headers, put_body))
            if puts:
                script = lua_requests(workdir / "put.lua", puts, threads)
                record("PUT /plans/{id}/screening/{code}", run_wrk(api, script=script, **writes))
            else:
                log("  PUT of a screening result: no plan was made to put results on")

        # The staff views last, each clinic on a server of its own: a view slower than the run
        # would still hold the workers when the next request is timed.
        with gunicorn("wsgi:app", env, workers, workdir) as api:
            for name, path in small_reads:
                load = warmed_wrk(api + path, headers=small.staff_headers, **writes)
                small_p50[name] = load.p50_ms
                log(f"  {name} at {SMALL_CLINIC}: p50 {load.p50_ms:.2f} ms")
        for name, path, headers in reads:
            if name in staff_views:
                with gunicorn("wsgi:app", env, workers, workdir) as api:
                    record(name, warmed_wrk(api + path, headers=headers, **writes))
        one: dict[str, dict[str, Any]] = {}
        if large is not None:
            # Reported on their own: one clinic holding the whole registry, each request on a
            # server of its own (its lists are 100 times longer: a view may outlast the run).
            listed = ("GET /patients?page=5", "/api/v1/patients?page=5")
            for name, path in [*small_reads, listed]:
                with gunicorn("wsgi:app", env, workers, workdir) as api:
                    load = warmed_wrk(
                        api + path,
                        headers=large.staff_headers,
                        **{**writes, "seconds": 2 * seconds},
                    )
                one[name] = {
                    "requests_per_s": round(load.requests_per_s, 1),
                    "p50_ms": _rounded(load.p50_ms),
                    "p99_ms": _rounded(load.p99_ms),
                    "errors": load.errors,
                }
                log(f"  {name} in one clinic of {patients}: p50 {load.p50_ms:.2f} ms")
        inserted: dict[str, Any] = {}
        if compare_audit and spooled:
            # The polled reads again, each inserting its event: what the spool saves, timed
            # against the same bare app.
            unspooled = {k: v for k, v in env.items() if k != "CD20_AUDIT_SPOOL_DIR"}
            with gunicorn("wsgi:app", unspooled, workers, workdir) as api:
                for name, path, headers in reads:
                    if name in POLLED_READS:
                        load = warmed_wrk(api + path, headers=headers, **wrk)
                        inserted[name] = {**_against(load, bare), "errors": load.errors}
                        log(
                            f"  {name}, its event inserted: {load.requests_per_s:.0f}/s"
                            f" ({inserted[name]['ratio_to_bare']} of bare)"
                        )
        by_workers = {
            str(count): _worker_count(
                count, env, workdir, wrk, [(name, path, headers) for name, path, headers in reads
                                           if name in WORKER_READS], log,
            )
            for count in compare_workers
        }  # fmt: skip
        counter.close()
        engine.dispose()

    scaling = {
        name: {
            "p50_ms_at_n": results[name]["p50_ms"],
            "p50_ms_at_1000": _rounded(small_p50[name]),
            "ratio": _rounded(results[name]["p50_ms"] / small_p50[name])
            if results[name]["p50_ms"]
            else None,
        }
        for name in small_p50
    }
    return {
        "patients": patients,
        "seconds_per_request": seconds,
        "workers": workers,
        "connections": connections,
        "audit_events": audit_events,
        "bare_flask": {
            "requests_per_s": round(bare.requests_per_s, 1),
            "p50_ms": round(bare.p50_ms, 2),
            "p99_ms": round(bare.p99_ms, 2),
        },
        "requests": results,
        "scaling": scaling,
        "one_clinic_of_n": one or None,
        "by_workers": by_workers or None,
        "reads_with_event_inserted": inserted or None,
        "write_pool": len(fresh),
        "total_s": round(time.monotonic() - started_run, 1),
    }


def _against(load: Load, bare: Load) -> dict[str, Any]:
    return {
        "requests_per_s": round(load.requests_per_s, 1),
        "p50_ms": _rounded(load.p50_ms),
        "p99_ms": _rounded(load.p99_ms),
        "ratio_to_bare": round(load.requests_per_s / bare.requests_per_s, 3),
    }


# Timed again with --compare-audit: the reads of one object and the app's poll.
POLLED_READS = (
    "GET /plans/{id}",
    "GET /me/inbox",
    "GET /me/plans",
    "GET /me/reminders/upcoming",
    "GET /patients/{id}",
)
# Timed again under each --compare-workers count: one object's read and the app's poll.
WORKER_READS = ("GET /plans/{id}", "GET /me/inbox")


def _worker_count(
    count: int,
    env: dict[str, str],
    workdir: Path,
    wrk: dict[str, Any],
    reads: list[tuple[str, str, dict[str, str]]],
    log: Log,
) -> dict[str, Any]:
    """Bare Flask and `reads` with `count` sync workers of each, side by side."""
    with gunicorn("tests.bench.bare_app:app", env, count, workdir) as bare_base:
        bare = warmed_wrk(bare_base + "/api/v1/plans/1", **wrk)
    figures: dict[str, Any] = {"bare_requests_per_s": round(bare.requests_per_s, 1)}
    with gunicorn("wsgi:app", env, count, workdir) as api:
        for name, path, headers in reads:
            figures[name] = _against(warmed_wrk(api + path, headers=headers, **wrk), bare)
    log(
        f"  {count} workers: bare {bare.requests_per_s:.0f}/s; "
        + ", ".join(
            f"{n} {f['requests_per_s']:.0f}/s" for n, f in figures.items() if n in WORKER_READS
        )
    )
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--patients", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=10.0, help="wrk's duration per request")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--threads", type=int, default=2, help="wrk's threads")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (both apps)")
    parser.add_argument(
        "--in-place",
        action="store_true",
        help="seed DATABASE_URL itself (and leave the rows) instead of a scratch database",
    )
    parser.add_argument(
        "--one-clinic",
        action="store_true",
        help="also seed N patients in one clinic and time its staff views and patient list",
    )
    parser.add_argument(
        "--compare-workers",
        default="",
        help="comma-separated worker counts (e.g. 1,2,4) under which bare Flask, GET /plans/{id}"
        " and GET /me/inbox are timed again, for choosing gunicorn's --workers",
    )
    parser.add_argument(
        "--audit-events",
        choices=("spool", "insert"),
        default="spool",
        help="where reads' audit events go first: a spool on the host (CD20_AUDIT_SPOOL_DIR,"
        " as the README's production command) or an INSERT by each read",
    )
    parser.add_argument(
        "--compare-audit",
        action="store_true",
        help="with the spool, also time the reads of one object with each read inserting its"
        " event (reported under reads_with_event_inserted)",
    )
    args = parser.parse_args(argv)
    from service.config import normalise_database_url

    url = os.environ.get("DATABASE_URL")
    if not url or not url.startswith("postgresql"):
        parser.error("set DATABASE_URL to a PostgreSQL database")
    summary = run_benchmark(
        normalise_database_url(url),
        patients=args.patients,
        seconds=args.seconds,
        connections=args.connections,
        threads=args.threads,
        workers=args.workers,
        in_place=args.in_place,
        one_clinic=args.one_clinic,
        compare_workers=tuple(int(n) for n in args.compare_workers.split(",") if n.strip()),
        audit_events=args.audit_events,
        compare_audit=args.compare_audit,
    )
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()

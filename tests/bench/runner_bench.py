"""Reminder runner benchmark on PostgreSQL: throughput, lateness, memory, claim cost, naive design.

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/cd20_bench \\
        python -m tests.bench.runner_bench --n 100000 --future 1000000

Seeds N due reminders (and `--future` reminders due in a month or more) in a clinic of its own,
and measures, side by side in one run (report ratios: shared machines are noisy):

- throughput: N / seconds from the moment N reminders become due at once (the runner
  processes already started and idle) until every one is in the inbox, with 1 and 2
  `cd20 jobs run` processes;
- lateness: steady state (reminders firing over ~20 s while one runner ticks) as inbox
  created_at - fire_at, and the backlog drain's queueing delay (created_at - the moment all N
  became due) beside it;
- memory: the runner processes' peak RSS (VmHWM) draining N and N/10;
- claim cost: median time to claim a batch of 500 due reminders (then rolled back) with 1,000
  and with all the future reminders present;
- the naive design: one APScheduler DateTrigger job per reminder in a SQLAlchemyJobStore,
  each posting its reminder through service.reminders.inbox.post_to_inbox, on the same N, with
  APScheduler's default 10 threads (`--naive-threads 5`, the engine's pool size, avoids the
  reconnects of 10 threads on a pool of 5 and made it about 40% faster here).

Progress goes to stderr; the last line on stdout is one JSON object. It uses a clinic of its
own and removes it at the end, but its runners deliver every due reminder in the database:
point it at a database of its own. `run_benchmark()` is the same, importable (the CI test
calls it with small numbers).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from tests.bench.seed import (
    BenchClinic,
    Seeded,
    Tally,
    delete_bench_clinics,
    delivered_count,
    seed_clinic,
    seed_reminders,
    tally,
)

ROOT = Path(__file__).resolve().parents[2]
NAIVE_TABLE = "bench_naive_jobs"
TICK_BATCH = 500
SMALL_FUTURE = 1000
FUTURE_START = timedelta(days=30)
FUTURE_SPREAD = timedelta(days=180)
LATENESS_METHOD = (
    "steady: inbox_message.created_at - reminder.fire_at for reminders firing over"
    " steady_spread_s while one runner ticks every steady_every_s; backlog: created_at - the"
    " moment all N became due at once (queueing delay of the drain)"
)

Log = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- runner processes ------------------------------------------------------------------------


class Processes:
    """Child processes with their output in files; peak RSS read from /proc before they stop."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.children: list[tuple[subprocess.Popen[bytes], Path, IO[bytes]]] = []

    def start(
        self, command: list[str], env: dict[str, str], name: str, *, stdin: bool = False
    ) -> subprocess.Popen[bytes]:
        log_path = self.workdir / f"{name}-{len(self.children)}.log"
        out = log_path.open("wb")
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        )
        self.children.append((process, log_path, out))
        return process

    def log_of(self, process: subprocess.Popen[bytes]) -> str:
        for child, path, _out in self.children:
            if child is process:
                return path.read_text(errors="replace")
        return ""

    def peak_rss_mb(self) -> list[float]:
        return [peak_rss_mb(p.pid) for p, _path, _out in self.children if p.poll() is None]

    def stop_all(self, timeout: float = 60.0) -> None:
        for process, _path, _out in self.children:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _path, out in self.children:
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            if process.stdin is not None:
                process.stdin.close()
            out.close()
        self.children = []


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size so far (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child_env(database_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env["DATABASE_URL"] = database_url
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    # Development (plain http allowed), and webhooks may reach the stand-ins on 127.0.0.1.
    env["CD20_ENV"] = "development"
    env["CD20_WEBHOOK_ALLOWED_HOSTS"] = "127.0.0.1"
    return env


def runner_command(*, batch_size: int, every: float, lease: float | None = None) -> list[str]:
    command = [sys.executable, "-m", "service.cli", "jobs", "run"]
    command += ["--batch-size", str(batch_size), "--every", str(every)]
    if lease is not None:
        command += ["--lease", str(lease)]
    return command


def wait_for_output(
    processes: Processes,
    process: subprocess.Popen[bytes],
    needle: str,
    *,
    timeout: float = 60.0,
) -> None:
    """Wait until the child has written `needle` (fail with its output if it dies or stalls)."""
    deadline = time.monotonic() + timeout
    while needle not in processes.log_of(process):
        if process.poll() is not None or time.monotonic() > deadline:
            state = "exited" if process.poll() is not None else "timed out"
            raise RuntimeError(
                f"child {state} before writing {needle!r}:\n{processes.log_of(process)[-3000:]}"
            )
        time.sleep(0.05)


RUNNER_STARTED = "started"


def start_runners(
    processes: Processes,
    engine: Engine,
    database_url: str,
    count: int,
    *,
    batch_size: int,
    every: float,
    lease: float | None = None,
) -> list[subprocess.Popen[bytes]]:
    """Start `count` runner processes; return once each has ticked (connected to the database)."""
    started = []
    for _ in range(count):
        env = child_env(database_url)
        name = f"cd20-bench-{os.getpid()}-{time.monotonic_ns()}"
        # libpq reads PGAPPNAME: the runner's connections show under this name.
        env["PGAPPNAME"] = name
        process = processes.start(
            runner_command(batch_size=batch_size, every=every, lease=lease), env, "runner"
        )
        started.append((process, name))
    for process, name in started:
        wait_for_output(processes, process, RUNNER_STARTED)
        wait_connected(engine, name, process, processes)
    return [process for process, _name in started]


def wait_connected(
    engine: Engine,
    application_name: str,
    process: subprocess.Popen[bytes],
    processes: Processes,
    timeout: float = 60.0,
) -> None:
    """Wait until a process's first tick has opened its database connection."""
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            connected = conn.execute(
                text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name"),
                {"name": application_name},
            ).scalar_one()
        if connected:
            return
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(
                f"runner did not connect to the database:\n{processes.log_of(process)[-3000:]}"
            )
        time.sleep(0.05)


# -- database helpers ------------------------------------------------------------------------


def vacuum(engine: Engine) -> None:
    """Clean up after a phase so the next one starts from a comparable table."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        for table in ("reminder", "inbox_message", "inbox_counter", "delivery", "patient"):
            conn.execute(text(f"VACUUM ANALYZE {table}"))


@dataclass
class Keys:
    """Idempotency keys bench:<i> stay unique across every block of one run."""

    next_key: int = 1

    def take(self, count: int) -> int:
        first = self.next_key
        self.next_key += count
        return first


def seed_block(
    engine: Engine,
    clinic: BenchClinic,
    keys: Keys,
    count: int,
    *,
    fire_at: datetime,
    spread_s: float = 0.0,
) -> Seeded:
    with engine.begin() as conn:
        return seed_reminders(
            conn,
            clinic,
            first_key=keys.take(count),
            count=count,
            fire_at=fire_at,
            spread_s=spread_s,
        )


def seed_due_now(
    engine: Engine, clinic: BenchClinic, keys: Keys, count: int
) -> tuple[Seeded, float, datetime]:
    """N reminders due at once: they appear to the runners together, when this commits.

    Returns the block, and the monotonic and wall-clock moment just before the commit.
    """
    from service.db import utcnow

    with engine.connect() as conn:
        transaction = conn.begin()
        block = seed_reminders(
            conn,
            clinic,
            first_key=keys.take(count),
            count=count,
            fire_at=utcnow() - timedelta(seconds=1),
        )
        started, wall = time.monotonic(), utcnow()
        transaction.commit()
    return block, started, wall


def wait_until_delivered(
    engine: Engine,
    block: Seeded,
    *,
    timeout: float,
    poll: float = 0.05,
    alive: Callable[[], bool] = lambda: True,
) -> tuple[bool, int, float]:
    """Poll until every reminder of the block is in the inbox: (done, delivered, monotonic)."""
    deadline = time.monotonic() + timeout
    while True:
        with engine.connect() as conn:
            delivered = delivered_count(conn, block)
        now = time.monotonic()
        if delivered >= block.count:
            return True, delivered, now
        if now > deadline or not alive():
            return False, delivered, now
        time.sleep(poll)


def lateness(engine: Engine, block: Seeded, since: datetime | None = None) -> tuple[float, float]:
    """p50 and p99 of inbox created_at minus the later of fire_at and `since`, in seconds."""
    with engine.connect() as conn:
        row = conn.execute(
            text(
                "SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY"
                " extract(epoch FROM m.created_at - greatest(r.fire_at,"
                " CAST(:since AS timestamptz))))"
                " FROM inbox_message m JOIN reminder r ON r.id = m.reminder_id"
                " WHERE m.reminder_id BETWEEN :lo AND :hi"
            ),
            {"since": since, "lo": block.first_id, "hi": block.last_id},
        ).scalar_one()
    if row is None:
        return float("nan"), float("nan")
    return float(row[0]), float(row[1])


def claim_cost_s(engine: Engine, samples: int, *, lease: bool = False) -> float:
    """Median seconds to claim a batch of due reminders; every claim is rolled back.

    The runner's claim (take_due_reminders: SELECT ... FOR UPDATE SKIP LOCKED, what inbox and
    worklist reminders go through), or with `lease` the claim that leases reminders for
    outside channels (claim_due_reminders: UPDATE ... RETURNING).
    """
    from service.db import utcnow
    from service.reminders.dispatch import claim_due_reminders, take_due_reminders

    timings = []
    for i in range(samples + 3):
        with Session(engine) as session:
            started = time.perf_counter()
            if lease:
                claimed = claim_due_reminders(
                    session,
                    owner="bench-probe",
                    now=utcnow(),
                    limit=TICK_BATCH,
                    lease=timedelta(seconds=60),
                )
            else:
                claimed = take_due_reminders(session, now=utcnow(), limit=TICK_BATCH)
            elapsed = time.perf_counter() - started
            session.rollback()
        if len(claimed) != TICK_BATCH:
            raise RuntimeError(f"claim probe found {len(claimed)} due reminders, not {TICK_BATCH}")
        if i >= 3:  # the first few warm the caches
            timings.append(elapsed)
    return statistics.median(timings)


@dataclass
class ClaimCost:
    take_s: float
    lease_s: float


def claim_costs(engine: Engine, samples: int) -> ClaimCost:
    # Alternate the two kinds, so that a noisy moment does not hit only one of them.
    takes, leases = [], []
    for _ in range(2):
        takes.append(claim_cost_s(engine, samples // 2 or 1))
        leases.append(claim_cost_s(engine, samples // 2 or 1, lease=True))
    return ClaimCost(statistics.mean(takes), statistics.mean(leases))


# -- phases ----------------------------------------------------------------------------------


@dataclass
class Drain:
    """One backlog drain by runner processes."""

    runners: int
    n: int
    seconds: float
    throughput_per_s: float
    peak_rss_mb: float
    lateness_p50_s: float
    lateness_p99_s: float
    tally: Tally


def drain_phase(
    engine: Engine,
    database_url: str,
    clinic: BenchClinic,
    keys: Keys,
    workdir: Path,
    *,
    n: int,
    runners: int,
    batch_size: int,
    every: float,
    timeout: float,
    log: Log,
) -> Drain:
    processes = Processes(workdir)
    try:
        started_runners = start_runners(
            processes, engine, database_url, runners, batch_size=batch_size, every=every
        )
        block, started, became_due = seed_due_now(engine, clinic, keys, n)
        done, delivered, finished = wait_until_delivered(
            engine,
            block,
            timeout=timeout,
            alive=lambda: all(p.poll() is None for p in started_runners),
        )
        peak = max(processes.peak_rss_mb(), default=float("nan"))
        if not done:
            logs = "\n".join(processes.log_of(p)[-2000:] for p in started_runners)
            raise RuntimeError(f"{runners} runner(s) delivered {delivered} of {n}:\n{logs}")
    finally:
        processes.stop_all()
    seconds = finished - started
    p50, p99 = lateness(engine, block, since=became_due)
    with engine.connect() as conn:
        counted = tally(conn, block)
    result = Drain(runners, n, seconds, n / seconds, peak, p50, p99, counted)
    log(
        f"  {runners} runner(s), N={n}: {seconds:.2f} s, {result.throughput_per_s:.0f}/s,"
        f" peak RSS {peak:.0f} MB, backlog lateness p50 {p50:.2f} s p99 {p99:.2f} s, {counted}"
    )
    return result


@dataclass
class Steady:
    n: int
    spread_s: float
    every_s: float
    lateness_p50_s: float
    lateness_p99_s: float
    lateness_max_s: float
    tally: Tally


def steady_phase(
    engine: Engine,
    database_url: str,
    clinic: BenchClinic,
    keys: Keys,
    workdir: Path,
    *,
    n: int,
    spread_s: float,
    every: float,
    batch_size: int,
    log: Log,
) -> Steady:
    from service.db import utcnow

    processes = Processes(workdir)
    try:
        (runner,) = start_runners(
            processes, engine, database_url, 1, batch_size=batch_size, every=every
        )
        # The first reminder fires a moment after the commit, the last spread_s later.
        block = seed_block(
            engine, clinic, keys, n, fire_at=utcnow() + timedelta(seconds=1), spread_s=spread_s
        )
        done, delivered, _ = wait_until_delivered(
            engine,
            block,
            timeout=spread_s + 120,
            poll=0.25,
            alive=lambda: runner.poll() is None,
        )
        if not done:
            raise RuntimeError(f"steady state: {delivered} of {n} delivered")
    finally:
        processes.stop_all()
    p50, p99 = lateness(engine, block)
    with engine.connect() as conn:
        worst = conn.execute(
            text(
                "SELECT extract(epoch FROM max(m.created_at - r.fire_at)) FROM inbox_message m"
                " JOIN reminder r ON r.id = m.reminder_id WHERE m.reminder_id BETWEEN :lo AND :hi"
            ),
            {"lo": block.first_id, "hi": block.last_id},
        ).scalar_one()
        counted = tally(conn, block)
    log(
        f"  steady: {n} firing over {spread_s:g} s, tick every {every:g} s:"
        f" lateness p50 {p50:.3f} s p99 {p99:.3f} s max {float(worst):.3f} s, {counted}"
    )
    return Steady(n, spread_s, every, p50, p99, float(worst), counted)


@dataclass
class Naive:
    n: int
    complete: bool
    add_s: float
    seconds: float
    delivered: int
    throughput_per_s: float
    peak_rss_mb: float
    tally: Tally


def naive_phase(
    engine: Engine,
    database_url: str,
    clinic: BenchClinic,
    keys: Keys,
    workdir: Path,
    *,
    n: int,
    timeout: float,
    threads: int,
    log: Log,
) -> Naive:
    from service.db import utcnow

    block = seed_block(engine, clinic, keys, n, fire_at=utcnow() - timedelta(seconds=1))
    processes = Processes(workdir)
    command = [sys.executable, "-m", "tests.bench.runner_bench", "--naive-worker"]
    command += ["--first", str(block.first_id), "--last", str(block.last_id)]
    command += ["--naive-threads", str(threads)]
    try:
        worker = processes.start(command, child_env(database_url), "naive", stdin=True)
        add_started = time.monotonic()
        wait_for_output(processes, worker, "NAIVE READY", timeout=max(600.0, n * 0.02))
        add_s = time.monotonic() - add_started
        assert worker.stdin is not None
        started = time.monotonic()
        worker.stdin.write(b"GO\n")
        worker.stdin.flush()
        done, delivered, finished = wait_until_delivered(
            engine, block, timeout=timeout, poll=0.1, alive=lambda: worker.poll() is None
        )
        peak = max(processes.peak_rss_mb(), default=float("nan"))
        if worker.poll() is not None:
            raise RuntimeError(f"the naive scheduler died:\n{processes.log_of(worker)[-3000:]}")
    finally:
        processes.stop_all()
    seconds = finished - started
    with engine.connect() as conn:
        counted = tally(conn, block)
    result = Naive(n, done, add_s, seconds, delivered, delivered / seconds, peak, counted)
    log(
        f"  naive APScheduler, N={n}: jobs added in {add_s:.1f} s (not timed);"
        f" {delivered} delivered in {seconds:.2f} s = {result.throughput_per_s:.0f}/s"
        f"{'' if done else ' (stopped at the time limit)'}, peak RSS {peak:.0f} MB, {counted}"
    )
    return result


# -- the naive design ------------------------------------------------------------------------


def naive_deliver(reminder_id: int) -> None:
    """One APScheduler job: what a user would write to post one reminder to the inbox."""
    from service.db import unit_of_work, utcnow
    from service.models import Patient, Reminder
    from service.reminders.inbox import post_to_inbox
    from service.reminders.messages import render

    with unit_of_work() as session:
        reminder = session.get(Reminder, reminder_id)
        if reminder is None or reminder.status == "sent":
            return
        patient = session.get(Patient, reminder.patient_id)
        zone = patient.time_zone if patient is not None else None
        title, body = render(reminder.kind, reminder.payload, audience="patient", time_zone=zone)
        now = utcnow()
        post_to_inbox(
            session,
            patient_id=reminder.patient_id,
            reminder_id=reminder.id,
            kind=reminder.kind,
            title=title,
            body=body,
            now=now,
        )
        reminder.status = "sent"
        reminder.sent_at = now
        reminder.attempts += 1


def naive_worker(database_url: str, first_id: int, last_id: int, threads: int) -> None:
    """Add one DateTrigger job per reminder to a paused scheduler; run them on "GO"."""
    import logging

    from apscheduler.executors.pool import ThreadPoolExecutor
    from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
    from apscheduler.schedulers.background import BackgroundScheduler
    from sqlalchemy import select

    from service.db import init_engine, unit_of_work
    from service.models import Reminder

    logging.basicConfig(level=logging.WARNING)
    init_engine(database_url)
    store = SQLAlchemyJobStore(url=database_url, tablename=NAIVE_TABLE)
    scheduler = BackgroundScheduler(
        jobstores={"default": store},
        executors={"default": ThreadPoolExecutor(threads)},
        timezone="UTC",
        # Every job is already due when the scheduler resumes: run it, however late.
        job_defaults={"misfire_grace_time": None, "coalesce": True},
    )
    scheduler.start(paused=True)
    scheduler.remove_all_jobs()
    with unit_of_work() as session:
        rows = session.execute(
            select(Reminder.id, Reminder.fire_at)
            .where(Reminder.id.between(first_id, last_id))
            .order_by(Reminder.id)
        ).all()
    for reminder_id, fire_at in rows:
        scheduler.add_job(
            "tests.bench.runner_bench:naive_deliver",
            "date",
            run_date=fire_at,
            args=[reminder_id],
            id=f"reminder-{reminder_id}",
        )
    print(f"NAIVE READY {len(rows)} jobs", flush=True)
    sys.stdin.readline()
    scheduler.resume()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    scheduler.shutdown(wait=False)


def drop_naive_table(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(f"DROP TABLE IF EXISTS {NAIVE_TABLE}"))


# -- the whole run ---------------------------------------------------------------------------


@dataclass
class Options:
    patients: int = 1000
    batch_size: int = 500
    every: float = 0.2
    runners: int = 2
    tick_samples: int = 20
    naive: bool = True
    naive_n: int | None = None
    naive_timeout_s: float = 900.0
    steady_n: int | None = None
    steady_spread_s: float = 20.0
    steady_every_s: float = 0.5
    drain_timeout_s: float = 1800.0
    keep: bool = False
    # APScheduler's default thread pool for the naive design.
    naive_threads: int = 10


@contextmanager
def _workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="cd20-bench-") as path:
        yield Path(path)


def run_benchmark(
    database_url: str,
    n: int = 100_000,
    future: int = 1_000_000,
    *,
    log: Log = _stderr,
    **options: Any,
) -> dict[str, Any]:
    """Run every measurement on the database at `database_url`; returns the summary."""
    from service.db import create_db_engine, utcnow
    from service.migrations import upgrade_database

    opts = Options(**options)
    if n < 10 or future < 1:
        raise ValueError("n must be at least 10 and future at least 1")
    upgrade_database(database_url)
    engine = create_db_engine(database_url)
    if engine.dialect.name != "postgresql":
        raise ValueError("the runner benchmark needs PostgreSQL")
    keys = Keys()
    run_started = time.monotonic()
    try:
        with _workdir() as workdir:
            with engine.begin() as conn:
                delete_bench_clinics(conn)
                clinic = seed_clinic(conn, patients=opts.patients)
            drop_naive_table(engine)
            log(f"runner bench: N={n}, future={future}, patients={opts.patients}")

            # Claim cost with a small and a large backlog of future reminders.
            later = utcnow() + FUTURE_START
            small = min(SMALL_FUTURE, future)
            seed_block(engine, clinic, keys, small, fire_at=later, spread_s=3600)
            probe = seed_block(
                engine, clinic, keys, 2 * TICK_BATCH, fire_at=utcnow() - timedelta(hours=1)
            )
            vacuum(engine)
            tick_small = claim_costs(engine, opts.tick_samples)
            started = time.monotonic()
            if future > small:
                seed_block(
                    engine,
                    clinic,
                    keys,
                    future - small,
                    fire_at=later + timedelta(hours=1),
                    spread_s=FUTURE_SPREAD.total_seconds(),
                )
            log(f"  seeded {future} future reminders in {time.monotonic() - started:.1f} s")
            vacuum(engine)
            tick_large = claim_costs(engine, opts.tick_samples)
            with engine.begin() as conn:
                conn.execute(
                    text("DELETE FROM reminder WHERE id BETWEEN :lo AND :hi"),
                    {"lo": probe.first_id, "hi": probe.last_id},
                )
            log(
                f"  claim of {TICK_BATCH}: {tick_small.take_s * 1000:.2f} ms with {small} future,"
                f" {tick_large.take_s * 1000:.2f} ms with {future}; leasing claim"
                f" {tick_small.lease_s * 1000:.2f} ms and {tick_large.lease_s * 1000:.2f} ms"
            )

            def drain(count: int, runners: int) -> Drain:
                vacuum(engine)
                return drain_phase(
                    engine,
                    database_url,
                    clinic,
                    keys,
                    workdir,
                    n=count,
                    runners=runners,
                    batch_size=opts.batch_size,
                    every=opts.every,
                    timeout=opts.drain_timeout_s,
                    log=log,
                )

            tenth = drain(max(n // 10, 1), 1)
            one = drain(n, 1)
            many = drain(n, opts.runners)
            vacuum(engine)
            steady = steady_phase(
                engine,
                database_url,
                clinic,
                keys,
                workdir,
                n=opts.steady_n or min(n, 10_000),
                spread_s=opts.steady_spread_s,
                every=opts.steady_every_s,
                batch_size=opts.batch_size,
                log=log,
            )
            naive = None
            if opts.naive:
                vacuum(engine)
                naive = naive_phase(
                    engine,
                    database_url,
                    clinic,
                    keys,
                    workdir,
                    n=opts.naive_n or n,
                    threads=opts.naive_threads,
                    timeout=opts.naive_timeout_s,
                    log=log,
                )
    finally:
        if not opts.keep:
            with engine.begin() as conn:
                delete_bench_clinics(conn)
            drop_naive_table(engine)
        engine.dispose()

    tallies = [tenth.tally, one.tally, many.tally, steady.tally]
    summary: dict[str, Any] = {
        "n": n,
        "future": future,
        "runners": opts.runners,
        "batch_size": opts.batch_size,
        "every_s": opts.every,
        "throughput_per_s": round(many.throughput_per_s, 1),
        "throughput_1_runner_per_s": round(one.throughput_per_s, 1),
        "naive_throughput_per_s": round(naive.throughput_per_s, 1) if naive else None,
        "ratio": round(many.throughput_per_s / naive.throughput_per_s, 1) if naive else None,
        "ratio_1_runner": round(one.throughput_per_s / naive.throughput_per_s, 1)
        if naive
        else None,
        "naive_n": naive.n if naive else None,
        "naive_threads": opts.naive_threads if naive else None,
        "naive_complete": naive.complete if naive else None,
        "naive_add_s": round(naive.add_s, 1) if naive else None,
        "naive_peak_rss_mb": round(naive.peak_rss_mb, 1) if naive else None,
        "naive_lost": naive.tally.lost if naive else None,
        "naive_duplicates": naive.tally.duplicates if naive else None,
        "tick_cost_small_ms": round(tick_small.take_s * 1000, 3),
        "tick_cost_large_ms": round(tick_large.take_s * 1000, 3),
        "tick_cost_ratio": round(tick_large.take_s / tick_small.take_s, 3),
        "lease_claim_cost_small_ms": round(tick_small.lease_s * 1000, 3),
        "lease_claim_cost_large_ms": round(tick_large.lease_s * 1000, 3),
        "lease_claim_cost_ratio": round(tick_large.lease_s / tick_small.lease_s, 3),
        "tick_future_small": small,
        "lateness_p50_s": round(steady.lateness_p50_s, 3),
        "lateness_p99_s": round(steady.lateness_p99_s, 3),
        "lateness_max_s": round(steady.lateness_max_s, 3),
        "lateness_backlog_p50_s": round(many.lateness_p50_s, 3),
        "lateness_backlog_p99_s": round(many.lateness_p99_s, 3),
        "lateness_method": LATENESS_METHOD,
        "steady_n": steady.n,
        "steady_spread_s": steady.spread_s,
        "steady_every_s": steady.every_s,
        "peak_rss_mb": round(max(one.peak_rss_mb, many.peak_rss_mb), 1),
        "peak_rss_mb_tenth_n": round(tenth.peak_rss_mb, 1),
        "rss_growth_ratio": round(one.peak_rss_mb / tenth.peak_rss_mb, 3),
        "drain_s": {
            "tenth_1_runner": round(tenth.seconds, 2),
            "n_1_runner": round(one.seconds, 2),
            f"n_{opts.runners}_runners": round(many.seconds, 2),
        },
        "lost": sum(t.lost for t in tallies),
        "duplicates": sum(t.duplicates for t in tallies),
        "not_sent": sum(t.not_sent for t in tallies),
        "seq_gaps": sum(t.seq_gaps for t in tallies),
        "total_s": round(time.monotonic() - run_started, 1),
    }
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="due reminders per drain")
    parser.add_argument("--future", type=int, default=1_000_000, help="future reminders")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--every", type=float, default=0.2, help="runner tick interval (s)")
    parser.add_argument("--runners", type=int, default=2)
    parser.add_argument("--naive-n", type=int, help="reminders for the naive design (default N)")
    parser.add_argument("--naive-threads", type=int, default=10, help="its executor's threads")
    parser.add_argument("--naive-timeout", type=float, default=900.0)
    parser.add_argument("--no-naive", action="store_true")
    parser.add_argument("--steady-n", type=int)
    parser.add_argument("--steady-spread", type=float, default=20.0)
    parser.add_argument("--steady-every", type=float, default=0.5)
    parser.add_argument("--tick-samples", type=int, default=20, help="claims timed per backlog")
    parser.add_argument("--keep", action="store_true", help="keep the bench rows at the end")
    parser.add_argument("--naive-worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--last", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    from service.config import normalise_database_url

    url = os.environ.get("DATABASE_URL")
    if not url:
        parser.error("set DATABASE_URL to a PostgreSQL database of the benchmark's own")
    url = normalise_database_url(url)
    if args.naive_worker:
        # SIGTERM is waited for with sigwait, so it must not end the process first.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        naive_worker(url, args.first, args.last, args.naive_threads)
        return
    summary = run_benchmark(
        url,
        args.n,
        args.future,
        batch_size=args.batch_size,
        every=args.every,
        runners=args.runners,
        naive=not args.no_naive,
        naive_n=args.naive_n,
        naive_timeout_s=args.naive_timeout,
        naive_threads=args.naive_threads,
        steady_n=args.steady_n,
        steady_spread_s=args.steady_spread,
        steady_every_s=args.steady_every,
        tick_samples=args.tick_samples,
        keep=args.keep,
    )
    print(json.dumps(summary, sort_keys=False), flush=True)


if __name__ == "__main__":
    main()

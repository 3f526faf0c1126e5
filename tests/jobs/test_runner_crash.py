"""Runner processes SIGKILLed, and PostgreSQL restarted, mid-run: every reminder once in the inbox.

Two `cd20 jobs run` processes work through a few thousand reminders firing over a few seconds,
in a database of their own. Most reminders are inbox-only (delivered in the claiming
transaction); one in ten also goes to a webhook (leased, posted, then recorded), so both ways
through the runner are cut short.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from service.db import create_db_engine, utcnow
from tests.bench.runner_bench import (
    Processes,
    child_env,
    runner_command,
    start_runners,
    wait_connected,
)
from tests.bench.seed import (
    Seeded,
    patients_with_seq_gaps,
    scratch_database,
    seed_clinic,
    seed_reminders,
    tally,
)
from tests.jobs.standins import Recorded, Reply, StandInHTTPServer

INBOX_ONLY = int(os.environ.get("CD20_CRASH_N", "3600"))
WITH_WEBHOOK = max(INBOX_ONLY // 9, 1)
# Reminders fire over this long, so runners are at work whenever they are killed.
SPREAD_S = 10.0
LEASE_S = 3.0
BATCH_SIZE = 50
EVERY_S = 0.1
KILLS = 4
WEBHOOK_DELAY_S = 0.02
DRAIN_TIMEOUT_S = 120.0


@pytest.fixture
def crash_database(requires_postgres: Engine, database_url: str) -> Iterator[str]:
    with scratch_database(database_url, "ci_crash") as url:
        yield url


def slow_ok(_request: Recorded) -> Reply:
    # Webhooks take time: a runner spends most of its work holding leased rows.
    time.sleep(WEBHOOK_DELAY_S)
    return Reply()


@pytest.fixture
def webhook() -> Iterator[StandInHTTPServer]:
    server = StandInHTTPServer()
    server.answer(slow_ok)
    yield server
    server.close()


class Run:
    """Seeded reminders, the runner processes working on them, and what came of it."""

    def __init__(self, url: str, workdir: Path, webhook: StandInHTTPServer) -> None:
        self.url = url
        self.engine = create_db_engine(url)
        self.processes = Processes(workdir)
        self.runners: list[subprocess.Popen[bytes]] = []
        self.blocks: list[Seeded] = []
        self.webhook = webhook
        self.clinic_id = 0
        self.total = INBOX_ONLY + WITH_WEBHOOK

    def seed(self) -> None:
        """The reminders, firing from a moment from now over SPREAD_S seconds."""
        settings = {"webhook": {"url": f"{self.webhook.url}/hook", "secret": "s3cret"}}
        with self.engine.begin() as conn:
            clinic = seed_clinic(conn, patients=200)
            self.clinic_id = clinic.clinic_id
            conn.execute(
                text("UPDATE clinic SET settings = CAST(:settings AS json) WHERE id = :id"),
                {"id": clinic.clinic_id, "settings": json.dumps(settings)},
            )
            first_fire = utcnow() + timedelta(seconds=0.5)
            for key, count, channels in (
                (1, INBOX_ONLY, ("inbox",)),
                (INBOX_ONLY + 1, WITH_WEBHOOK, ("inbox", "webhook")),
            ):
                self.blocks.append(
                    seed_reminders(
                        conn,
                        clinic,
                        first_key=key,
                        count=count,
                        fire_at=first_fire,
                        spread_s=SPREAD_S,
                        channels=channels,
                    )
                )

    def start(self, count: int) -> None:
        self.runners += start_runners(
            self.processes,
            self.engine,
            self.url,
            count,
            batch_size=BATCH_SIZE,
            every=EVERY_S,
            lease=LEASE_S,
        )

    def restart(self, index: int) -> None:
        """Start a new runner in place of a dead one, as a supervisor would."""
        env = child_env(self.url)
        env["PGAPPNAME"] = f"cd20-crash-{time.monotonic_ns()}"
        command = runner_command(batch_size=BATCH_SIZE, every=EVERY_S, lease=LEASE_S)
        self.runners[index] = self.processes.start(command, env, "runner")
        wait_connected(self.engine, env["PGAPPNAME"], self.runners[index], self.processes)

    def sent(self) -> int:
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM reminder WHERE status = 'sent'"
                        " AND id BETWEEN :lo AND :hi"
                    ),
                    {"lo": min(b.first_id for b in self.blocks), "hi": self.blocks[-1].last_id},
                ).scalar_one()
            )

    def statuses(self) -> dict[str, int]:
        with self.engine.connect() as conn:
            rows = conn.execute(text("SELECT status, count(*) FROM reminder GROUP BY status"))
            return {status: count for status, count in rows}

    def wait_until_sent(self, at_least: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.sent() >= at_least:
                    return
            except OperationalError:
                pass  # the server is restarting
            if time.monotonic() > deadline:
                logs = "\n".join(self.processes.log_of(p)[-1500:] for p in self.runners)
                pytest.fail(
                    f"{at_least} of {self.total} reminders not sent within {timeout:.0f} s:"
                    f" {self.statuses()}; runners alive:"
                    f" {[p.poll() is None for p in self.runners]}\n{logs}"
                )
            time.sleep(0.1)

    def wait_for_lease(self, pid: int, timeout: float = 30.0) -> None:
        """Wait until the runner with this pid holds leased rows (it is posting webhooks)."""
        deadline = time.monotonic() + timeout
        while self.orphaned_claims(pid) == 0:
            if time.monotonic() > deadline:
                pytest.fail(f"runner {pid} never held a lease in {timeout:.0f} s")
            time.sleep(0.002)

    def orphaned_claims(self, pid: int) -> int:
        """Rows a killed runner had leased and not finished: they wait for the lease to end."""
        with self.engine.connect() as conn:
            return int(
                conn.execute(
                    text(
                        "SELECT count(*) FROM reminder WHERE status = 'claimed'"
                        " AND lease_owner LIKE :owner"
                    ),
                    {"owner": f"%:{pid}:%"},
                ).scalar_one()
            )

    def close(self) -> None:
        self.processes.stop_all()
        self.engine.dispose()


@pytest.fixture
def run(crash_database: str, tmp_path: Path, webhook: StandInHTTPServer) -> Iterator[Run]:
    seeded = Run(crash_database, tmp_path, webhook)
    yield seeded
    seeded.close()


def assert_each_delivered_once(run: Run, webhook: StandInHTTPServer) -> None:
    with run.engine.connect() as conn:
        for block in run.blocks:
            counted = tally(conn, block)
            assert (counted.lost, counted.duplicates, counted.not_sent) == (0, 0, 0), counted
        # Both blocks post to the same patients: their change numbers count up without gaps.
        assert patients_with_seq_gaps(conn, run.clinic_id) == 0
        webhook_block = run.blocks[-1]
        recorded = conn.execute(
            text(
                "SELECT count(*), count(DISTINCT reminder_id) FROM delivery"
                " WHERE channel = 'webhook' AND outcome = 'sent'"
                " AND reminder_id BETWEEN :lo AND :hi"
            ),
            {"lo": webhook_block.first_id, "hi": webhook_block.last_id},
        ).one()
        keys = set(
            conn.execute(
                text("SELECT idempotency_key FROM reminder WHERE id BETWEEN :lo AND :hi"),
                {"lo": webhook_block.first_id, "hi": webhook_block.last_id},
            ).scalars()
        )
    # The webhook is at least once (a runner killed after posting posts again after its lease
    # ends; the Idempotency-Key tells the receiver), and its success is recorded once.
    assert tuple(recorded) == (WITH_WEBHOOK, WITH_WEBHOOK)
    posted = {r.header("Idempotency-Key") for r in webhook.received("/hook")}
    assert keys <= posted


def test_killed_runners_lose_and_repeat_nothing(run: Run, webhook: StandInHTTPServer) -> None:
    rng = random.Random()
    seed = rng.randrange(1_000_000)
    rng.seed(seed)
    run.start(2)
    run.seed()
    kills: list[tuple[str, int, int]] = []
    for kill in range(KILLS):
        victim = (kill // 2) % 2
        process = run.runners[victim]
        # Half the kills at a random moment, half while the victim holds leased rows.
        moment = "random" if kill % 2 == 0 else "leased"
        if moment == "random":
            time.sleep(rng.uniform(0.3, 1.0))
        else:
            run.wait_for_lease(process.pid)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        kills.append((moment, run.total - run.sent(), run.orphaned_claims(process.pid)))
        run.restart(victim)

    run.wait_until_sent(run.total, DRAIN_TIMEOUT_S)

    # Every kill struck while reminders were left to send; the runners killed holding leased
    # rows left them claimed, and the lease brought them back to another runner.
    assert all(left > 0 for _moment, left, _orphaned in kills), (seed, kills)
    assert sum(orphaned for moment, _left, orphaned in kills if moment == "leased") > 0, kills
    assert_each_delivered_once(run, webhook)


def restart_allowed() -> bool:
    """Restarting the server ends every session on it, other people's too: CI (CI=true, where
    the server is the run's own) or CD20_RESTART_POSTGRES=1 only."""
    return any(os.environ.get(name, "").lower() in ("1", "true", "yes") for name in RESTART_OK)


RESTART_OK = ("CI", "CD20_RESTART_POSTGRES")


@pytest.mark.skipif(
    not restart_allowed(), reason="restarts PostgreSQL: set CD20_RESTART_POSTGRES=1 (CI does)"
)
def test_runners_ride_out_a_postgresql_restart(run: Run, webhook: StandInHTTPServer) -> None:
    run.start(2)
    run.seed()
    run.wait_until_sent(run.total // 4, DRAIN_TIMEOUT_S)

    restart_postgresql(run.url)

    run.wait_until_sent(run.total, DRAIN_TIMEOUT_S)
    # The runners were not restarted: a tick that failed while the server was away is logged,
    # and the next one reconnects (pool_pre_ping) and carries on.
    assert [p.poll() for p in run.runners] == [None, None]
    assert_each_delivered_once(run, webhook)


def restart_postgresql(url: str, timeout: float = 120.0) -> None:
    """Restart the cluster serving `url` (Debian's pg_ctlcluster); return once it takes queries."""
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        message = "restarting PostgreSQL needs pg_ctlcluster (Debian's postgresql-common)"
        if os.environ.get("CD20_REQUIRE_POSTGRES"):
            pytest.fail(message)
        pytest.skip(message)
    port = make_url(url).port or 5432
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], capture_output=True, text=True, check=True
    ).stdout
    clusters = [line.split()[:3] for line in listing.splitlines() if line.strip()]
    matching = [(version, name) for version, name, p in clusters if int(p) == port]
    if not matching:
        pytest.fail(f"no local PostgreSQL cluster listens on port {port}: {listing}")
    version, name = matching[0]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, name, "restart", "-m", "fast"],
        check=True,
        timeout=timeout,
        capture_output=True,
    )
    # Ready means a real query works, not just an open port: the rest of the suite runs next.
    probe = create_db_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                with probe.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return
            except OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)
    finally:
        probe.dispose()

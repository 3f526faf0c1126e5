"""`cd20 jobs run` as a process on a SQLite file: SIGTERM loses nothing, a second runner waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from service.db import create_db_engine
from service.migrations import upgrade_database
from service.models import Clinic, InboxMessage, Patient, Reminder

REMINDERS = 3000
WAIT_S = 60


@pytest.fixture
def database(tmp_path):
    url = f"sqlite:///{tmp_path / 'runner.db'}"
    upgrade_database(url)
    engine = create_db_engine(url)
    now = datetime.now(UTC)
    with Session(engine) as session:
        clinic = Clinic(name="Runner clinic", time_zone="Europe/Berlin", settings={})
        session.add(clinic)
        session.flush()
        patients = [
            Patient(
                clinic_id=clinic.id,
                mrn=f"R{n}",
                given_name="R",
                family_name=f"P{n}",
                birth_date=datetime(1980, 1, 1).date(),
                time_zone="Europe/Berlin",
            )
            for n in range(20)
        ]
        session.add_all(patients)
        session.flush()
        session.execute(
            insert(Reminder),
            [
                {
                    "clinic_id": clinic.id,
                    "patient_id": patients[n % 20].id,
                    "audience": "patient",
                    "kind": "dose_upcoming",
                    "subject_type": "dose",
                    "subject_id": n,
                    "idempotency_key": f"process:{n}",
                    "local_date": now.date(),
                    "local_time": now.time().replace(microsecond=0),
                    "time_zone": "Europe/Berlin",
                    "fire_at": now - timedelta(minutes=1),
                    "due_at": now - timedelta(minutes=1),
                    "channels": ["inbox"],
                    "status": "pending",
                    "payload": {"dose_sequence": 1, "lead_days": 1},
                }
                for n in range(REMINDERS)
            ],
        )
        session.commit()
    yield url, engine
    engine.dispose()


class RunnerProcess:
    """A `cd20 jobs run` process whose output is collected line by line as it runs."""

    def __init__(self, url: str, *extra: str) -> None:
        env = {**os.environ, "DATABASE_URL": url}
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "jobs", "run", "--every", "0.2", *extra],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_for(lambda: self.said("started"), "the runner to start")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    def said(self, text: str) -> bool:
        return any(text in line for line in self.lines)

    def stop(self) -> int:
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=WAIT_S)
        self._reader.join(timeout=WAIT_S)
        assert self.process.stdout is not None
        self.process.stdout.close()
        return code

    @property
    def output(self) -> str:
        return "".join(self.lines)


@pytest.fixture
def spawn(database):
    """Start runners on the test database; any still running at the end are killed."""
    started: list[RunnerProcess] = []

    def start(*extra: str) -> RunnerProcess:
        runner = RunnerProcess(database[0], *extra)
        started.append(runner)
        return runner

    yield start
    for runner in started:
        if runner.process.poll() is None:
            runner.process.kill()
            runner.stop()


def counts(engine) -> dict[str, int]:
    with Session(engine) as session:
        by_status = dict(
            session.execute(select(Reminder.status, func.count()).group_by(Reminder.status)).all()
        )
        by_status["inbox"] = session.scalar(select(func.count()).select_from(InboxMessage)) or 0
    return by_status


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def test_sigterm_finishes_or_releases_the_batch_in_hand(database, spawn):
    _, engine = database
    runner = spawn("--batch-size", "200")
    wait_for(lambda: counts(engine).get("inbox", 0) > 0, "the first deliveries")
    assert runner.stop() == 0, runner.output
    assert runner.said("stopped")

    after = counts(engine)
    assert after.get("claimed", 0) == 0, after
    assert after.get("sent", 0) + after.get("pending", 0) == REMINDERS
    assert after["inbox"] == after.get("sent", 0)

    # A new runner delivers the rest; nothing twice.
    rest = spawn()
    wait_for(lambda: counts(engine).get("sent", 0) == REMINDERS, "the rest")
    assert rest.stop() == 0, rest.output
    assert counts(engine)["inbox"] == REMINDERS


def test_a_second_runner_on_sqlite_waits_for_the_lease(database, spawn):
    _, engine = database
    first = spawn()
    second = spawn()
    wait_for(lambda: second.said("another runner holds the lease"), "the second runner to wait")
    wait_for(lambda: counts(engine).get("sent", 0) == REMINDERS, "all reminders")
    assert first.stop() == 0, first.output
    # The first one gave its lease up on the way out: the second takes over.
    wait_for(lambda: second.said("took over the runner lease"), "the second runner to take over")
    assert second.stop() == 0, second.output
    assert counts(engine)["inbox"] == REMINDERS

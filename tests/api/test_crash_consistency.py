"""kill -9 of `cd20 serve` during a burst of idempotent writes: nothing committed goes unaudited,
and every retry with the same key replays the stored answer or runs once, never 409 after the
lease. Against a real server process, on a new SQLite file and (with TEST_DATABASE_URL) on a
PostgreSQL database of its own."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import Engine, func, select, text

from service.db import create_db_engine
from service.models import AuditEvent, IdempotencyKey, LabResult, Patient
from service.models.idempotency import IN_FLIGHT
from tests.jobs.standins import free_port

PASSWORD = "Quokka-ledger-7319-crash"
ADMIN = "crash-admin@crash.example"
LEASE_S = 1.5
WAIT_S = 30
WRITERS = 6


@dataclass
class Sent:
    key: str
    path: str
    body: dict[str, Any]
    status: int | None = None  # None: the connection died without an answer
    answer: bytes = b""
    request_id: str = ""


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'crash.db'}"
        return
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url.startswith("postgresql"):
        pytest.skip("needs PostgreSQL at TEST_DATABASE_URL")
    base = create_db_engine(url)
    name = f"{base.url.database}_crash_{uuid.uuid4().hex[:8]}"
    admin = base.execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield base.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        base.dispose()


class Server:
    def __init__(self, database_url: str) -> None:
        self.env = {
            **os.environ,
            "DATABASE_URL": database_url,
            "SECRET_KEY": secrets.token_urlsafe(48),
            "CD20_ADMIN_PASSWORD": PASSWORD,
            "CD20_IDEMPOTENCY_LEASE": str(LEASE_S),
        }
        self.env.pop("TEST_DATABASE_URL", None)
        self.process: subprocess.Popen[str] | None = None
        self.base = ""

    def cd20(self, *args: str) -> None:
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr

    def start(self) -> None:
        port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--no-runner"],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        self.base = f"http://127.0.0.1:{port}/api/v1"
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            try:
                if requests.get(f"{self.base}/readyz", timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                time.sleep(0.1)
        self.process.kill()
        pytest.fail("cd20 serve did not start")

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=60)


@pytest.fixture
def server(database: str) -> Iterator[Server]:
    server = Server(database)
    server.cd20("db", "upgrade")
    server.cd20(
        "clinic", "create", "Crash Clinic", "--time-zone", "Europe/Berlin", "--admin-email", ADMIN
    )
    server.start()
    yield server
    server.stop()


def _login(base: str) -> dict[str, str]:
    answer = requests.post(
        f"{base}/auth/token", json={"username": ADMIN, "password": PASSWORD}, timeout=30
    )
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _send(base: str, headers: dict[str, str], sent: Sent, attempt: str) -> Sent:
    request_id = f"{sent.key}-{attempt}"
    answer = requests.post(
        base + sent.path,
        json=sent.body,
        headers={**headers, "Idempotency-Key": sent.key, "X-Request-ID": request_id},
        timeout=60,
    )
    return Sent(sent.key, sent.path, sent.body, answer.status_code, answer.content, request_id)


def _burst(server: Server, headers: dict[str, str], patient_id: int) -> list[Sent]:
    """Writers enrol patients and record labs until the server dies under them."""
    sent: list[Sent] = []
    lock = threading.Lock()
    stop = threading.Event()

    def write(writer: int) -> None:
        for n in range(10_000):
            key = f"w{writer}-{n}"
            if n % 2:
                request = Sent(key, f"/patients/{patient_id}/labs", _lab(n))
            else:
                request = Sent(key, "/patients", _patient(key))
            with lock:
                sent.append(request)
            try:
                answered = _send(server.base, headers, request, "a")
            except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError):
                # kill -9 can land before the answer or in the middle of its body
                return
            request.status, request.answer = answered.status, answered.answer
            request.request_id = answered.request_id
            if stop.is_set():
                return

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with lock:
            answered = sum(1 for s in sent if s.status is not None)
        if answered >= 40:
            break
        time.sleep(0.01)
    server.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    return sent


def _patient(key: str) -> dict[str, Any]:
    return {
        "mrn": f"CRASH-{key}",
        "given_name": "Crash",
        "family_name": f"Test {key}",
        "birth_date": "1980-01-01",
        "time_zone": "Europe/Berlin",
    }


def _lab(n: int) -> dict[str, Any]:
    return {"code": "igg", "value": 5 + n / 1000, "unit": "g/L", "taken_at": "2026-06-18T08:30Z"}


def _engine(server: Server) -> Engine:
    return create_db_engine(server.env["DATABASE_URL"])


def test_kill_9_during_idempotent_writes_loses_no_audit_event_and_never_409s(
    server: Server,
) -> None:
    headers = _login(server.base)
    seed = requests.post(
        f"{server.base}/patients", json=_patient("seed"), headers=headers, timeout=30
    )
    assert seed.status_code == 201
    patient_id = seed.json()["id"]

    sent = _burst(server, headers, patient_id)
    killed_at = time.monotonic()
    engine = _engine(server)
    with engine.connect() as connection:
        left_in_flight = connection.scalar(
            select(func.count()).where(IdempotencyKey.status == IN_FLIGHT)
        )
    unanswered = [s for s in sent if s.status is None]
    assert unanswered, "the kill came after every request was answered"

    server.start()
    time.sleep(max(0.0, killed_at + LEASE_S - time.monotonic()))
    headers = _login(server.base)
    retried = [_send(server.base, headers, s, "b") for s in sent]

    for first, retry in zip(sent, retried, strict=True):
        assert retry.status == 201, (first.key, retry.status, retry.answer)
        if first.status is not None:
            assert first.status == 201, (first.key, first.status, first.answer)
            assert retry.answer == first.answer, first.key  # replayed, not run again

    with engine.connect() as connection:
        patients = connection.execute(
            select(Patient.id, Patient.mrn).where(Patient.mrn.like("CRASH-w%"))
        ).all()
        labs = connection.execute(
            select(LabResult.id).where(LabResult.patient_id == patient_id)
        ).all()
        events = connection.execute(
            select(
                AuditEvent.request_id,
                AuditEvent.resource_type,
                AuditEvent.resource_id,
                AuditEvent.status_code,
            ).where(AuditEvent.action == "create")
        ).all()
    engine.dispose()

    # Every request ran exactly once.
    enrolments = [s for s in sent if s.path == "/patients"]
    assert sorted(mrn for _, mrn in patients) == sorted(s.body["mrn"] for s in enrolments)
    assert len(labs) == len(sent) - len(enrolments)
    # Every committed write has its create event, and every 2xx the client saw its own event.
    created = {(e.resource_type, e.resource_id) for e in events if e.status_code == 201}
    assert {("patient", str(id_)) for id_, _ in patients} <= created
    assert {("lab_result", str(id_)) for (id_,) in labs} <= created
    audited = {e.request_id for e in events if e.status_code == 201}
    seen_2xx = {s.request_id for s in [*sent, *retried] if s.status is not None and s.status < 300}
    assert seen_2xx <= audited
    print(
        f"\n{len(sent)} writes, {len(unanswered)} cut off by kill -9, "
        f"{left_in_flight} keys left in flight; all retried without a 409"
    )

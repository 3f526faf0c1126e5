"""Reads' audit events through a spool (CD20_AUDIT_SPOOL_DIR): a read's request writes nothing to
the database, its event reaches audit_event once moved, each exactly once, and a process killed
after answering loses none. On a SQLite file and on a PostgreSQL database of their own, with
real commits, as a deployed server runs."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from flask import Flask
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.orm import Session

import service.trust.audit_spool as audit_spool
from service.api.middleware.auditing import SPOOL
from service.app import create_app
from service.cli import cli
from service.config import ConfigurationError, Settings
from service.db import engines, init_engine, unit_of_work, utcnow
from service.migrations import upgrade_database
from service.models import AuditEvent, AuditSpoolProgress
from service.trust.audit_spool import AuditSpool
from tests.bench.seed import scratch_database
from tests.conftest import POSTGRES_HINT
from tests.factories import (
    PASSWORD,
    auth_headers,
    make_clinic,
    make_patient,
    make_plan,
    make_user,
)

ROOT = Path(__file__).resolve().parents[2]
COMPARED = (
    "actor_id",
    "actor_role",
    "clinic_id",
    "action",
    "resource_type",
    "resource_id",
    "patient_id",
    "outcome",
    "status_code",
    "source_address",
    "method",
    "path_template",
    "details",
)


@dataclass
class Served:
    url: str
    settings: Settings
    spooled: Flask
    plain: Flask
    spool: AuditSpool
    spool_dir: Path
    staff: dict[str, str]
    admin: dict[str, str]
    patient: dict[str, str]
    patient_login: str
    plan_id: int


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, database_url, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'spool.db'}"
        upgrade_database(url)
        yield url
        return
    if not database_url.startswith("postgresql"):
        if os.environ.get("CD20_REQUIRE_POSTGRES"):
            pytest.fail("CD20_REQUIRE_POSTGRES is set but the test database is not PostgreSQL")
        pytest.skip(POSTGRES_HINT)
    with scratch_database(database_url, f"spool_{uuid.uuid4().hex[:8]}") as url:
        yield url


@pytest.fixture
def served(database, database_url, settings, tmp_path) -> Iterator[Served]:
    spool_dir = tmp_path / "spool"
    own = settings.with_overrides(database_url=database)
    # The spool's thread moves nothing by itself during a test: the test moves.
    spooled = create_app(own, audit_spool_dir=str(spool_dir), audit_spool_flush_s=60)
    plain = create_app(own)
    with unit_of_work() as session:
        clinic = make_clinic(session)
        staff = make_user(session, own, clinic)
        admin = make_user(session, own, clinic, "admin")
        patient = make_patient(session, clinic)
        account = make_user(session, own, clinic, "patient", patient=patient)
        plan = make_plan(session, patient, staff)
        served = Served(
            url=database,
            settings=own,
            spooled=spooled,
            plain=plain,
            spool=spooled.extensions[SPOOL],
            spool_dir=spool_dir,
            staff=auth_headers(own, staff),
            admin=auth_headers(own, admin),
            patient=auth_headers(own, account),
            patient_login=account.email,
            plan_id=plan.id,
        )
    try:
        yield served
    finally:
        served.spool.close()
        for engine in engines():
            engine.dispose()
        init_engine(database_url)  # the process engine the rest of the run uses


def events(url: str, request_id: str | None = None) -> list[dict[str, Any]]:
    """Audit events (of one request), read on a connection of the test's own."""
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            query = select(AuditEvent.__table__).order_by(AuditEvent.id)
            if request_id is not None:
                query = query.where(AuditEvent.request_id == request_id)
            return [dict(row._mapping) for row in connection.execute(query)]
    finally:
        engine.dispose()


def count(url: str, model: Any) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return int(connection.scalar(select(func.count()).select_from(model)) or 0)
    finally:
        engine.dispose()


@contextmanager
def statements() -> Iterator[list[str]]:
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    for engine in engines():
        event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        for engine in engines():
            event.remove(engine, "before_cursor_execute", note)


def test_a_read_inserts_nothing_and_its_event_arrives_as_the_unspooled_one(served):
    path = f"/api/v1/plans/{served.plan_id}"
    plain = served.plain.test_client().get(path, headers=served.staff)
    with statements() as seen:
        answer = served.spooled.test_client().get(path, headers=served.staff)
    assert answer.status_code == plain.status_code == 200
    assert not [sql for sql in seen if "INSERT" in sql.upper()]
    request_id = answer.headers["X-Request-ID"]
    assert events(served.url, request_id) == []

    assert served.spool.flush() == 1
    [moved] = events(served.url, request_id)
    [unspooled] = events(served.url, plain.headers["X-Request-ID"])
    assert {key: moved[key] for key in COMPARED} == {key: unspooled[key] for key in COMPARED}
    assert moved["patient_id"] is not None
    assert moved["status_code"] == 200
    assert abs(moved["occurred_at"] - unspooled["occurred_at"]) < timedelta(seconds=30)
    assert served.spool.flush() == 0  # moved once
    assert len(events(served.url, request_id)) == 1


@pytest.mark.parametrize("database", ["postgresql"], indirect=True)
def test_a_repeated_read_on_postgresql_is_one_statement(served):
    client = served.spooled.test_client()
    for path, headers in (
        ("/api/v1/me/inbox", served.patient),
        (f"/api/v1/plans/{served.plan_id}", served.staff),
    ):
        assert client.get(path, headers=headers).status_code == 200
        with statements() as seen:
            assert client.get(path, headers=headers).status_code == 200
        assert len(seen) == 1, seen  # its stamp, with the caller's account row


def test_refused_reads_are_spooled_and_writes_are_not(served):
    client = served.spooled.test_client()
    missing = client.get("/api/v1/plans/999999", headers=served.staff)
    assert missing.status_code == 404
    login = client.post(
        "/api/v1/auth/token",
        json={"username": served.patient_login, "password": PASSWORD},
    )
    assert login.status_code == 200
    # The write's event is stored with it, before the answer; the read's waits in the spool.
    assert [e["outcome"] for e in events(served.url, login.headers["X-Request-ID"])] == ["success"]
    assert events(served.url, missing.headers["X-Request-ID"]) == []
    served.spool.flush()
    [refused] = events(served.url, missing.headers["X-Request-ID"])
    assert (refused["outcome"], refused["status_code"]) == ("denied", 404)


def test_the_audit_trail_lists_this_process_reads_at_once(served):
    client = served.spooled.test_client()
    inbox = client.get("/api/v1/me/inbox", headers=served.patient)
    assert inbox.status_code == 200
    listed = client.get("/api/v1/audit?page_size=50", headers=served.admin)
    assert listed.status_code == 200
    request_ids = [item["request_id"] for item in listed.get_json()["items"]]
    assert inbox.headers["X-Request-ID"] in request_ids


def test_a_process_killed_after_answering_loses_no_read_event(served, unwatched):
    token = served.staff["Authorization"].removeprefix("Bearer ")
    env = {
        **os.environ,
        "SECRET_KEY": served.settings.signing_key,
        "CD20_PROBE_TOKEN": token,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    probe = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.integration.spool_probe",
            served.url,
            str(unwatched),
            str(served.plan_id),
            "5",
            "2",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        answered = []
        assert probe.stdout is not None
        for line in probe.stdout:
            if line.strip() == "answered":
                break
            request_id, status = line.split()
            assert status == "200"
            answered.append(request_id)
        assert len(answered) == 5
        # Its file is in use while it lives: nobody else moves it.
        adopter = AuditSpool(unwatched, flush_interval_s=60)
        assert adopter.adopt_orphans() == audit_spool.Adopted(files=0, events=0, in_use=1)
        stored = {e["request_id"] for e in events(served.url)}
        assert [rid in stored for rid in answered] == [True, True, False, False, False]
    finally:
        probe.send_signal(signal.SIGKILL)
        probe.wait(timeout=30)
        if probe.stdout is not None:
            probe.stdout.close()

    assert adopter.adopt_orphans() == audit_spool.Adopted(files=1, events=3, in_use=0)
    trail = [e["request_id"] for e in events(served.url) if e["request_id"] in answered]
    assert sorted(trail) == sorted(answered)  # each of the five answers, once
    assert list(unwatched.glob("*.spool")) == []
    assert count(served.url, AuditSpoolProgress) == 0


def row(request_id: str) -> dict[str, Any]:
    return {
        "occurred_at": utcnow(),
        "request_id": request_id,
        "actor_id": None,
        "actor_role": None,
        "clinic_id": None,
        "action": "read",
        "resource_type": "plan",
        "resource_id": "1",
        "patient_id": None,
        "outcome": "denied",
        "status_code": 401,
        "source_address": "127.0.0.1",
        "method": "GET",
        "path_template": "/api/v1/plans/<int:plan_id>",
        "details": {},
    }


@pytest.fixture
def unwatched(tmp_path) -> Path:
    """A spool directory no app's thread watches (each adopts what it finds in its own)."""
    (tmp_path / "unwatched").mkdir()
    return tmp_path / "unwatched"


@pytest.fixture
def orphans(unwatched) -> AuditSpool:
    """A mover of `unwatched`, with no thread: it moves what a test tells it to."""
    return AuditSpool(unwatched, flush_interval_s=60)


def test_a_last_line_cut_short_is_dropped_and_the_whole_ones_moved(served, orphans, caplog):
    orphan = orphans.directory / "elsewhere-1-0123456789ab.spool"
    cut = audit_spool.encode(row("cut"))[:40]
    orphan.write_bytes(audit_spool.encode(row("first")) + audit_spool.encode(row("second")) + cut)
    with caplog.at_level(logging.WARNING, logger="service.trust.audit_spool"):
        adopted = orphans.adopt_orphans()
    assert adopted == audit_spool.Adopted(files=1, events=2, in_use=0)
    assert [e["request_id"] for e in events(served.url)] == ["first", "second"]
    assert f"{len(cut)} bytes after its last whole line dropped" in caplog.text
    assert not orphan.exists()


def test_a_file_left_before_it_was_named_is_removed_only_once_stale(orphans, monkeypatch):
    """A writer locks its new file just after creating it; an adopter that locked it in that
    moment, even to look, would make the writer's lock fail and its read's event with it."""
    young = orphans.directory / "elsewhere-3-0123456789ab.claiming"
    stale = orphans.directory / "elsewhere-4-0123456789ab.claiming"
    young.touch()
    stale.touch()
    long_ago = time.time() - 2 * audit_spool.CLAIM_STALE_S
    os.utime(stale, (long_ago, long_ago))
    locked = []
    real_lock = audit_spool._locked

    def noting_lock(path: Path) -> Any:
        locked.append(path)
        return real_lock(path)

    monkeypatch.setattr(audit_spool, "_locked", noting_lock)
    assert orphans.adopt_orphans() == audit_spool.Adopted(files=0, events=0, in_use=0)
    assert young.exists()
    assert young not in locked
    assert not stale.exists()


def test_a_damaged_line_is_skipped_and_the_rest_moved(served, orphans, caplog):
    orphan = orphans.directory / "elsewhere-2-0123456789ab.spool"
    orphan.write_bytes(
        audit_spool.encode(row("before")) + b'{"not an event\n' + audit_spool.encode(row("after"))
    )
    with caplog.at_level(logging.ERROR, logger="service.trust.audit_spool"):
        adopted = orphans.adopt_orphans()
    assert adopted.events == 2
    assert [e["request_id"] for e in events(served.url)] == ["before", "after"]
    assert "unreadable line" in caplog.text


def test_the_spool_moves_by_itself_within_its_interval(served, unwatched):
    spool = AuditSpool(unwatched, flush_interval_s=0.1)
    spool.start()
    try:
        spool.append(row("on-its-own"))
        deadline = time.monotonic() + 10
        while not events(served.url) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert [e["request_id"] for e in events(served.url)] == ["on-its-own"]
    finally:
        spool.close()


def test_a_moved_event_keeps_its_instant_and_details_exactly(served, unwatched):
    spool = AuditSpool(unwatched, flush_interval_s=60)
    sent = {
        **row("exact"),
        "occurred_at": datetime(2026, 11, 30, 23, 59, 59, 123456, tzinfo=UTC),
        "details": {"code": "invalid_token", "plan_id": 5, "operation": "override"},
        "resource_id": "5/hbv_core_antibody",
    }
    try:
        spool.append(sent)
        assert spool.flush() == 1
    finally:
        spool.close()
    [stored] = events(served.url)
    assert {key: stored[key] for key in sent} == sent


def test_a_batch_whose_commit_went_unanswered_is_not_moved_again(served, unwatched):
    """The connection can drop after the server committed, before the client heard it."""
    lost_answers = [True]

    @contextmanager
    def commit_then_lose_the_answer() -> Iterator[Session]:
        with unit_of_work() as session:
            yield session
        if lost_answers:
            lost_answers.pop()
            raise ConnectionError("server closed the connection unexpectedly")

    spool = AuditSpool(unwatched, flush_interval_s=60, session_scope=commit_then_lose_the_answer)
    try:
        for request_id in ("a", "b", "c"):
            spool.append(row(request_id))
        with pytest.raises(ConnectionError):
            spool.flush()
        spool.append(row("d"))
        assert spool.flush() == 1
    finally:
        spool.close()
    assert [e["request_id"] for e in events(served.url)] == ["a", "b", "c", "d"]
    assert list(unwatched.glob("*.spool")) == []  # closed with everything moved


def test_a_moved_file_past_its_size_is_replaced(served, unwatched, monkeypatch):
    monkeypatch.setattr(audit_spool, "ROTATE_BYTES", 1)
    spool = AuditSpool(unwatched, flush_interval_s=60)
    try:
        spool.append(row("a"))
        [first] = unwatched.glob("*.spool")
        assert spool.flush() == 1
        assert not first.exists()
        assert count(served.url, AuditSpoolProgress) == 0
        spool.append(row("b"))
        [second] = unwatched.glob("*.spool")
        assert second != first
        assert spool.flush() == 1
    finally:
        spool.close()
    assert [e["request_id"] for e in events(served.url)] == ["a", "b"]


def test_cd20_audit_flush_spool_moves_what_stopped_processes_left(served, orphans):
    orphan = orphans.directory / "retired-7-0123456789ab.spool"
    orphan.write_bytes(audit_spool.encode(row("left-1")) + audit_spool.encode(row("left-2")))
    result = CliRunner().invoke(
        cli,
        ["audit", "flush-spool", "--dir", str(orphans.directory)],
        env={"DATABASE_URL": served.url, "SECRET_KEY": ""},
    )
    assert result.exit_code == 0, result.output
    assert "2 audit events moved from 1 spool files" in result.output
    assert [e["request_id"] for e in events(served.url)] == ["left-1", "left-2"]
    again = CliRunner().invoke(cli, ["audit", "flush-spool"], env={"DATABASE_URL": served.url})
    assert again.exit_code != 0
    assert "CD20_AUDIT_SPOOL_DIR" in again.output


def test_an_api_that_cannot_spool_refuses_to_start(settings, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigurationError, match="CD20_AUDIT_SPOOL_DIR"):
        create_app(settings, audit_spool_dir=str(blocker / "spool"))


def test_the_flush_interval_must_be_a_positive_number_of_seconds():
    with pytest.raises(ConfigurationError, match="CD20_AUDIT_SPOOL_FLUSH"):
        Settings.from_env({"CD20_AUDIT_SPOOL_FLUSH": "0"})
    assert Settings.from_env({"CD20_AUDIT_SPOOL_FLUSH": "0.5"}).audit_spool_flush_s == 0.5

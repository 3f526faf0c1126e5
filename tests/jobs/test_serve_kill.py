"""kill -9 of `cd20 serve` takes its reminder runner with it: the runner stops gracefully and
gives up its SQLite lease, so the next `cd20 serve` runs reminders at once."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from service.db import create_db_engine
from service.models import RunnerLease
from tests.jobs.standins import free_port

WAIT_S = 30


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")  # a zombie has exited; only its parent's reaping is left


def _wait_for(condition, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting for {what}")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_kill_9_of_serve_leaves_no_runner_behind(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cd20.db'}"
    env = {**os.environ, "DATABASE_URL": url, "SECRET_KEY": secrets.token_urlsafe(48)}
    env.pop("TEST_DATABASE_URL", None)
    port = free_port()
    serve = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    runner = 0
    try:

        def ready() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/readyz", timeout=1).ok
            except requests.ConnectionError:
                return False

        _wait_for(ready, "cd20 serve to answer")
        _wait_for(lambda: bool(_children(serve.pid)), "the runner to start")
        (runner,) = _children(serve.pid)
        engine = create_db_engine(url)

        def lease_owner() -> str | None:
            with engine.connect() as connection:
                return connection.scalar(select(RunnerLease.owner))

        _wait_for(lambda: lease_owner() is not None, "the runner to take the SQLite lease")
        assert b"jobs\x00run" in Path(f"/proc/{runner}/cmdline").read_bytes()

        os.kill(serve.pid, signal.SIGKILL)
        serve.wait(timeout=WAIT_S)
        _wait_for(lambda: not _alive(runner), "the orphaned runner to exit")
        # It stopped gracefully: the lease is given back, not left to expire.
        assert lease_owner() is None
        engine.dispose()
    finally:
        if serve.poll() is None:
            serve.kill()
            serve.wait()
        if runner and _alive(runner):
            os.kill(runner, signal.SIGKILL)

"""The console in a real browser: `cd20 serve` in its own process on a database of its own,
Debian's Chromium driven by Playwright, axe-core on every page, a screenshot of each.

The browser tests skip where Chromium is missing, unless CD20_REQUIRE_CHROMIUM is set (CI sets
it: there they must run). Screenshots go to $CD20_TEST_ARTIFACTS, or a temporary directory
whose path the run prints.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import requests
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from service.config import Settings
from service.migrations import upgrade_database
from tests.conftest import ROOT, TEST_SECRET
from tests.factories import PASSWORD, make_clinic, make_patient, make_user

CHROMIUM = os.environ.get("CD20_CHROMIUM", "/usr/bin/chromium")
# Zones tried for the test clinic: the one whose wall clock is nearest mid-afternoon now, so a
# dose booked this morning can be given "earlier today" whatever the hour of the run.
ZONES = (
    "Pacific/Kiritimati",
    "Pacific/Auckland",
    "Australia/Sydney",
    "Asia/Tokyo",
    "Asia/Bangkok",
    "Asia/Kolkata",
    "Asia/Dubai",
    "Europe/Berlin",
    "Europe/London",
    "Atlantic/Azores",
    "America/Sao_Paulo",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "Pacific/Honolulu",
)


def afternoon_zone(now: datetime | None = None) -> str:
    now = now or datetime.now(UTC)

    def distance(name: str) -> float:
        local = now.astimezone(ZoneInfo(name))
        return abs(local.hour + local.minute / 60 - 14.5)

    return min(ZONES, key=distance)


@dataclass
class Console:
    base_url: str
    zone: str
    clinician: str
    admin: str
    patient_login: str
    other_clinic_patient_id: int
    password: str = PASSWORD


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _own_database(tmp: Path) -> Iterator[str]:
    """A database for the served console: a SQLite file, or a sibling of the PostgreSQL test
    database (`<name>_console`), dropped at the end."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp / 'console.db'}"
        return
    parsed = make_url(url)
    name = f"{parsed.database}_console"
    # A fresh connection each time: the suite may restart PostgreSQL before this is torn down.
    admin = create_engine(
        parsed.set(database="postgres"), isolation_level="AUTOCOMMIT", poolclass=NullPool
    )
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _seed(url: str, zone: str) -> dict[str, Any]:
    settings = Settings(
        database_url=url,
        secret_key=TEST_SECRET,
        environment="test",
        argon2_time_cost=1,
        argon2_memory_kib=64,
        argon2_parallelism=1,
    )
    engine = create_engine(url)
    with Session(engine) as session:
        clinic = make_clinic(session, name="Console Test Clinic", time_zone=zone)
        clinician = make_user(session, settings, clinic, "clinician", email="nurse@console.test")
        admin = make_user(session, settings, clinic, "admin", email="admin@console.test")
        patient = make_patient(session, clinic, time_zone=zone)
        patient_user = make_user(
            session, settings, clinic, "patient", patient=patient, email="patient@console.test"
        )
        elsewhere = make_patient(session, make_clinic(session, name="Other Clinic"))
        session.commit()
        seeded = {
            "clinician": clinician.email,
            "admin": admin.email,
            "patient_login": patient_user.email,
            "other_clinic_patient_id": elsewhere.id,
        }
    engine.dispose()
    return seeded


@pytest.fixture(scope="session")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    """`cd20 serve` (without the runner) on its own database, seeded with two clinics."""
    tmp = tmp_path_factory.mktemp("console")
    databases = _own_database(tmp)
    url = next(databases)
    upgrade_database(url)
    zone = afternoon_zone()
    seeded = _seed(url, zone)
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "SECRET_KEY": TEST_SECRET,
        "CD20_ENV": "test",
        "CD20_RATE_LIMITS_ENABLED": "0",
        "PYTHONPATH": str(ROOT),
    }
    log = (tmp / "serve.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--no-runner", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(f"{base_url}/healthz", timeout=1).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((tmp / "serve.log").read_text())
            time.sleep(0.2)
        yield Console(base_url=base_url, zone=zone, **seeded)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()
        for _ in databases:
            pass


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """One Chromium for the whole run (Debian's, not a downloaded one)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CD20_REQUIRE_CHROMIUM"):
            pytest.fail(f"CD20_REQUIRE_CHROMIUM is set but {CHROMIUM} is missing")
        pytest.skip(
            f"the console's browser tests need Chromium at {CHROMIUM} "
            "(Debian: apt-get install chromium; or set CD20_CHROMIUM)"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-dev-shm-usage"]
        )
        yield chromium
        chromium.close()


@pytest.fixture(scope="session")
def artifacts() -> Path:
    where = os.environ.get("CD20_TEST_ARTIFACTS")
    path = Path(where) if where else Path(tempfile.mkdtemp(prefix="cd20-console-"))
    database = "postgresql" if os.environ.get("TEST_DATABASE_URL") else "sqlite"
    path = path / f"console-{database}"
    path.mkdir(parents=True, exist_ok=True)
    print(f"\nconsole screenshots: {path}")
    return path


@pytest.fixture
def page(browser: Any, console: Console) -> Iterator[Any]:
    # Reduced motion turns Pico's colour transitions off, so axe measures a button's contrast in
    # its settled colours, never half-way through a hover or focus fade.
    context = browser.new_context(
        viewport={"width": 1280, "height": 900},
        base_url=console.base_url,
        reduced_motion="reduce",
    )
    # Generous waits: CI shares two cores between the browser, the server and the database.
    context.set_default_timeout(20_000)
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)
    tab = context.new_page()
    yield tab
    context.close()

"""`cd20 serve` as a user runs it, on a new SQLite file: a booking reaches the inbox."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, available_timezones

import pytest
import requests

from service.core.wall_clock import is_known_time_zone
from tests.jobs.standins import free_port

PASSWORD = "end-to-end-password"
WAIT_S = 30


def zone_where_it_is_midday() -> str:
    """A region zone whose wall clock now shows about noon (outside quiet hours, after 09:00).

    Region zones only: the API refuses fixed-offset names such as Etc/GMT-5.
    """
    now = datetime.now(UTC)
    ahead = timedelta(hours=12 - now.hour)  # from +12 down to -11 hours
    for name in sorted(available_timezones()):
        if not is_known_time_zone(name) or name == "UTC":
            continue
        if now.astimezone(ZoneInfo(name)).utcoffset() == ahead:
            return name
    pytest.fail(f"no region zone is {ahead} ahead of UTC now")


def cd20(args: list[str], env: dict[str, str], **kwargs):  # type: ignore[no-untyped-def]
    return subprocess.run(
        [sys.executable, "-m", "service.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        **kwargs,
    )


@pytest.fixture
def served(tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'cd20.db'}",
        "CD20_ADMIN_PASSWORD": PASSWORD,
        "SECRET_KEY": "end-to-end-secret-key-0123456789abcdef",
    }
    env.pop("TEST_DATABASE_URL", None)
    created = cd20(
        [
            "clinic",
            "create",
            "E2E Clinic",
            "--time-zone",
            "Europe/Berlin",
            "--admin-email",
            "admin@e2e.example",
        ],
        env,
    )
    assert created.returncode == 0, created.stderr
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            if requests.get(f"{base}/readyz", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    else:
        server.kill()
        pytest.fail(f"cd20 serve did not start:\n{server.communicate()[0]}")
    yield base
    server.terminate()
    output = server.communicate(timeout=60)[0]
    assert server.returncode == 0, output
    assert "reminder runner" in output


def test_booking_for_tomorrow_reaches_the_inbox_within_seconds(served):
    base = served
    login = requests.post(
        f"{base}/auth/token",
        json={"username": "admin@e2e.example", "password": PASSWORD},
        timeout=5,
    )
    assert login.status_code == 200, login.text
    staff = {"Authorization": f"Bearer {login.json()['access_token']}"}
    zone = zone_where_it_is_midday()
    patient = requests.post(
        f"{base}/patients",
        headers=staff,
        json={
            "mrn": "E2E-1",
            "given_name": "Iris",
            "family_name": "Vogel",
            "birth_date": "1980-01-01",
            "time_zone": zone,
            "email": "iris@e2e.example",
        },
        timeout=5,
    ).json()
    code = requests.post(f"{base}/patients/{patient['id']}/invitation", headers=staff, timeout=5)
    assert code.status_code == 201, code.text
    activated = requests.post(
        f"{base}/auth/activate", json={"code": code.json()["code"], "password": PASSWORD}, timeout=5
    )
    assert activated.status_code == 201, activated.text
    me = {"Authorization": f"Bearer {activated.json()['access_token']}"}

    tomorrow = (datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(days=1)).date()
    plan = requests.post(
        f"{base}/patients/{patient['id']}/plans",
        headers=staff,
        json={"regimen": "ocrelizumab-iv", "start_date": tomorrow.isoformat()},
        timeout=5,
    ).json()
    dose_url = f"{base}/doses/{plan['doses'][0]['id']}"
    etag = requests.get(dose_url, headers=staff, timeout=5).headers["ETag"]
    appointment = datetime.combine(tomorrow, datetime.min.time(), ZoneInfo("Europe/Berlin"))
    booked = requests.patch(
        dose_url,
        headers={**staff, "If-Match": etag},
        json={
            "appointment_at": (appointment + timedelta(hours=10)).isoformat(),
            "location": "Chair 2",
        },
        timeout=5,
    )
    assert booked.status_code == 200, booked.text

    deadline = time.monotonic() + WAIT_S
    kinds: list[str] = []
    while time.monotonic() < deadline:
        inbox = requests.get(f"{base}/me/inbox", headers=me, timeout=5)
        assert inbox.status_code == 200, inbox.text
        kinds = [item["kind"] for item in inbox.json()["items"]]
        if "dose_upcoming" in kinds:
            break
        time.sleep(0.5)
    assert "dose_upcoming" in kinds, f"inbox after {WAIT_S}s: {kinds}"
    message = next(i for i in inbox.json()["items"] if i["kind"] == "dose_upcoming")
    assert "tomorrow" in (message["title"] + message["body"]).lower()

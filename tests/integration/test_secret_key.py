"""No default secret: the WSGI app refuses to start without a strong SECRET_KEY; `cd20 serve` on
SQLite keeps a generated key beside its database and reuses it across restarts."""

from __future__ import annotations

import os
import secrets
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from service.config import (
    DEV_SECRET_KEY,
    ConfigurationError,
    Settings,
    embedded_secret_key,
    secret_key_weakness,
)
from tests.conftest import ROOT, TEST_SECRET
from tests.jobs.standins import free_port

WAIT_S = 30
CLINIC_ARGS = ("--time-zone", "Europe/Berlin", "--admin-email", "admin@key.example")
STRONG = "Qm7v-Jd2xR9pLw4TzK8sNc6HbY3fGa5E"
WEAK_KEYS = [
    DEV_SECRET_KEY,
    "short-but-random-9f8e7d",
    "a" * 32,
    "ab" * 24,
    "passwordpasswordpasswordpassword",
    "0123456789abcdef0123456789abcdef",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaab",
]


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("SECRET_KEY", "CD20_ENV", "DATABASE_URL", "TEST_DATABASE_URL")
    }
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'instance' / 'cd20.db'}"
    env.update(extra)
    return env


def _gunicorn(tmp_path: Path, env: dict[str, str], port: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--chdir",
            str(ROOT),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--control-socket",
            str(tmp_path / "gunicorn.ctl"),
            "wsgi:app",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _refused_by_gunicorn(tmp_path: Path, **extra: str) -> str:
    server = _gunicorn(tmp_path, _env(tmp_path, **extra), free_port())
    try:
        output = server.communicate(timeout=60)[0]
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode != 0, output
    assert "Worker failed to boot" in output
    return output


def test_gunicorn_without_a_secret_key_refuses_to_start(tmp_path):
    output = _refused_by_gunicorn(tmp_path)
    assert "SECRET_KEY is not set" in output
    assert not (tmp_path / "instance" / "secret_key").exists()


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"SECRET_KEY": "a" * 32}, "SECRET_KEY is a short text repeated"),
        ({"SECRET_KEY": DEV_SECRET_KEY}, "SECRET_KEY is the published development key"),
        ({"SECRET_KEY": STRONG, "CD20_ENV": "Production"}, "CD20_ENV must be one of"),
        ({"SECRET_KEY": STRONG, "CD20_ENV": "prod"}, "CD20_ENV must be one of"),
        # Production never falls back to a generated key.
        ({"CD20_ENV": "production"}, "SECRET_KEY is not set"),
    ],
)
def test_gunicorn_refuses_a_weak_key_or_an_unknown_environment(tmp_path, extra, reason):
    assert reason in _refused_by_gunicorn(tmp_path, **extra)


def test_gunicorn_with_a_strong_key_serves(tmp_path):
    port = free_port()
    server = _gunicorn(tmp_path, _env(tmp_path, SECRET_KEY=STRONG), port)
    try:
        assert _wait_until_up(f"http://127.0.0.1:{port}/api/v1/healthz", server)
    finally:
        server.terminate()
        server.communicate(timeout=30)


@pytest.mark.parametrize("key", WEAK_KEYS)
def test_weak_keys_are_refused_in_every_environment(settings, key):
    assert secret_key_weakness(key) is not None
    for environment in ("development", "test", "production"):
        with pytest.raises(ConfigurationError):
            settings.with_overrides(secret_key=key, environment=environment).check()


def test_generated_keys_are_accepted():
    for _ in range(200):
        for key in (secrets.token_urlsafe(32), secrets.token_hex(16), secrets.token_hex(32)):
            assert secret_key_weakness(key) is None, key
    assert secret_key_weakness(TEST_SECRET) is None


@pytest.mark.parametrize("value", ["Production", "prod", "PRODUCTION", "dev", "staging", ""])
def test_cd20_env_must_be_a_known_value(value):
    with pytest.raises(ConfigurationError, match="CD20_ENV must be one of"):
        Settings.from_env({"CD20_ENV": value, "SECRET_KEY": STRONG})


def test_without_a_secret_only_embedded_or_explicit_development_get_the_key_file(tmp_path):
    url = f"sqlite:///{tmp_path / 'db' / 'cd20.db'}"
    assert Settings.from_env({"DATABASE_URL": url}).secret_key is None
    assert not (tmp_path / "db" / "secret_key").exists()
    prod = Settings.from_env({"DATABASE_URL": url, "CD20_ENV": "production"}, embedded=True)
    assert prod.secret_key is None
    embedded = Settings.from_env({"DATABASE_URL": url}, embedded=True)
    explicit = Settings.from_env({"DATABASE_URL": url, "CD20_ENV": "development"})
    assert embedded.secret_key == explicit.secret_key
    assert embedded.secret_key is not None
    assert secret_key_weakness(embedded.secret_key) is None
    # PostgreSQL has no folder to keep a key in: the secret must be set.
    postgres = "postgresql+psycopg://u@db.invalid/x"
    assert Settings.from_env({"DATABASE_URL": postgres}, embedded=True).secret_key is None


def test_a_key_file_readable_by_others_is_refused(tmp_path):
    url = f"sqlite:///{tmp_path / 'cd20.db'}"
    embedded_secret_key(url)
    (tmp_path / "secret_key").chmod(0o644)
    with pytest.raises(ConfigurationError, match="chmod 600"):
        embedded_secret_key(url)


def _wait_until_up(url: str, server: subprocess.Popen[str]) -> bool:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            return False
        try:
            if requests.get(url, timeout=5).status_code == 200:
                return True
        except requests.RequestException:
            time.sleep(0.2)
    return False


@contextmanager
def _serving(folder: Path, env: dict[str, str]) -> Iterator[str]:
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--no-runner", "--port", str(port)],
        env=env,
        cwd=folder,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        if not _wait_until_up(f"{base}/readyz", server):
            server.kill()
            pytest.fail(f"cd20 serve did not start:\n{server.communicate()[0]}")
        yield base
    finally:
        if server.poll() is None:
            server.terminate()
        server.communicate(timeout=60)


def test_cd20_serve_on_a_fresh_folder_keeps_its_key_and_tokens_survive_a_restart(tmp_path):
    """The embedded default: no SECRET_KEY, no DATABASE_URL, a new folder."""
    env = _env(tmp_path, CD20_ADMIN_PASSWORD="operator chose this one")
    env.pop("DATABASE_URL")
    key_file = tmp_path / "instance" / "secret_key"

    with _serving(tmp_path, env):
        assert key_file.exists()
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    key = key_file.read_text()
    assert secret_key_weakness(key.strip()) is None

    created = subprocess.run(
        [sys.executable, "-m", "service.cli", "clinic", "create", "Key Clinic", *CLINIC_ARGS],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert created.returncode == 0, created.stderr

    with _serving(tmp_path, env) as base:
        login = requests.post(
            f"{base}/auth/token",
            json={"username": "admin@key.example", "password": "operator chose this one"},
            timeout=5,
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
    with _serving(tmp_path, env) as base:
        me = requests.get(f"{base}/me", headers={"Authorization": f"Bearer {token}"}, timeout=5)
        assert me.status_code == 200, me.text
    assert key_file.read_text() == key


@pytest.mark.parametrize(
    ("command", "extra", "reason"),
    [
        (["serve"], {"CD20_ENV": "prod"}, "CD20_ENV must be one of"),
        (["demo"], {"SECRET_KEY": "a" * 40}, "SECRET_KEY is a short text repeated"),
        (["serve"], {"CD20_ENV": "production"}, "SECRET_KEY is not set"),
    ],
)
def test_cd20_commands_refuse_unusable_settings_with_the_reason(tmp_path, command, extra, reason):
    refused = subprocess.run(
        [sys.executable, "-m", "service.cli", *command],
        env=_env(tmp_path, **extra),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert refused.returncode == 1
    assert f"Error: {reason}" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert not (tmp_path / "instance" / "secret_key").exists()

"""`cd20 clinic create` and `cd20 user create` against a fresh SQLite file (no Flask app)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from service import db as service_db
from service.accounts.passwords import verify_password
from service.cli import cli
from service.config import Settings
from service.db import SessionFactory, unit_of_work
from service.models import Clinic, User

ADMIN_PASSWORD = "operator chose this one"


@pytest.fixture
def cli_env(tmp_path) -> Iterator[dict[str, str]]:
    """DATABASE_URL of a new SQLite file; the process-wide engine is put back afterwards."""
    # init_engine() re-binds the one process-wide SessionFactory: the rest of the suite needs
    # the engine and bind it had before.
    saved_engine = service_db._engine
    saved_kw = dict(SessionFactory.kw)
    # SQLAlchemy's default; the `session` fixture may have left a mode of its own behind.
    SessionFactory.configure(join_transaction_mode="conditional_savepoint")
    env = {"DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "CD20_ADMIN_PASSWORD": ""}
    try:
        yield env
    finally:
        if service_db._engine is not None and service_db._engine is not saved_engine:
            service_db._engine.dispose()
        service_db._engine = saved_engine
        SessionFactory.configure(**saved_kw)


def run(env, *args, input=None):
    return CliRunner().invoke(cli, list(args), env=env, input=input, catch_exceptions=False)


def created_id(output: str, what: str) -> int:
    match = re.search(rf"{what} (\d+) created", output)
    assert match, output
    return int(match.group(1))


def test_clinic_create_migrates_and_makes_an_admin(cli_env):
    env = {**cli_env, "CD20_ADMIN_PASSWORD": ADMIN_PASSWORD}
    result = run(
        env, "clinic", "create", "MS Centre", "--time-zone", "Europe/Berlin",
        "--admin-email", "Boss@Example.org",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    clinic_id = created_id(result.output, "clinic")
    admin_id = created_id(result.output, "admin user")

    with unit_of_work() as session:
        clinic = session.get(Clinic, clinic_id)
        admin = session.get(User, admin_id)
        assert clinic.name == "MS Centre"
        assert clinic.time_zone == "Europe/Berlin"
        assert (admin.email, admin.role, admin.clinic_id) == (
            "boss@example.org",
            "admin",
            clinic_id,
        )
        # The CLI hashes with the real (production) costs from the environment's settings.
        assert verify_password(Settings(), admin.password_hash, ADMIN_PASSWORD)


def test_clinic_create_asks_for_the_password_twice(cli_env):
    result = run(
        cli_env, "clinic", "create", "Prompted", "--time-zone", "UTC",
        "--admin-email", "prompt@example.org", input=f"{ADMIN_PASSWORD}\n{ADMIN_PASSWORD}\n",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "Repeat for confirmation" in result.output
    assert created_id(result.output, "admin user")


def test_clinic_create_refuses_bad_input_clearly(cli_env):
    env = {**cli_env, "CD20_ADMIN_PASSWORD": ADMIN_PASSWORD}
    bad_zone = run(
        env,
        "clinic",
        "create",
        "X",
        "--time-zone",
        "Mars/Olympus",
        "--admin-email",
        "a@example.org",
    )
    assert bad_zone.exit_code == 1
    assert "time zone" in bad_zone.output
    bad_email = run(env, "clinic", "create", "X", "--time-zone", "UTC", "--admin-email", "nope")
    assert bad_email.exit_code == 1
    assert "e-mail" in bad_email.output
    short = run(
        {**cli_env, "CD20_ADMIN_PASSWORD": "short"},
        "clinic", "create", "X", "--time-zone", "UTC", "--admin-email", "a@example.org",
    )  # fmt: skip
    assert short.exit_code == 1
    assert "password" in short.output

    ok = run(env, "clinic", "create", "X", "--time-zone", "UTC", "--admin-email", "a@example.org")
    assert ok.exit_code == 0, ok.output
    duplicate = run(
        env, "clinic", "create", "Y", "--time-zone", "UTC", "--admin-email", "A@example.org"
    )
    assert duplicate.exit_code == 1
    assert "cannot be used" in duplicate.output
    with unit_of_work() as session:
        # The refused clinic was rolled back with its admin.
        assert session.scalars(select(Clinic.name)).all() == ["X"]


def test_user_create_adds_staff_to_an_existing_clinic(cli_env):
    env = {**cli_env, "CD20_ADMIN_PASSWORD": ADMIN_PASSWORD}
    setup = run(
        env, "clinic", "create", "C", "--time-zone", "UTC", "--admin-email", "admin@example.org"
    )
    clinic_id = created_id(setup.output, "clinic")
    user_env = {**cli_env, "CD20_USER_PASSWORD": "a clinician's passphrase"}

    result = run(
        user_env, "user", "create", "--clinic", str(clinic_id), "--role", "clinician",
        "--email", "doc@example.org",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    user_id = created_id(result.output, "clinician user")
    with unit_of_work() as session:
        user = session.get(User, user_id)
        assert (user.clinic_id, user.role) == (clinic_id, "clinician")

    unknown = run(
        user_env, "user", "create", "--clinic", "999", "--role", "admin", "--email", "x@example.org"
    )
    assert unknown.exit_code == 1
    assert "clinic" in unknown.output.lower()
    duplicate = run(
        user_env, "user", "create", "--clinic", str(clinic_id), "--role", "admin",
        "--email", "DOC@example.org",
    )  # fmt: skip
    assert duplicate.exit_code == 1
    assert "cannot be used" in duplicate.output
    bad_role = run(
        user_env, "user", "create", "--clinic", str(clinic_id), "--role", "patient",
        "--email", "p@example.org",
    )  # fmt: skip
    assert bad_role.exit_code == 2


def test_clinic_create_refuses_a_common_admin_password(cli_env):
    refused = run(
        {**cli_env, "CD20_ADMIN_PASSWORD": "password1234"},
        "clinic", "create", "X", "--time-zone", "UTC", "--admin-email", "a@example.org",
    )  # fmt: skip
    assert refused.exit_code == 1
    assert "Too common" in refused.output

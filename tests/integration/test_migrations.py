"""The Alembic migrations and the models agree, and upgrade/downgrade cleanly, on this database."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pytest_alembic import tests as alembic_checks
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from service.db import create_db_engine
from service.migrations import alembic_config as make_alembic_config


@pytest.fixture
def migrations_database_url(tmp_path) -> Iterator[str]:
    """A database of its own: the checks migrate down to nothing and back up."""
    url = os.environ.get("TEST_DATABASE_URL")
    if not url:
        yield f"sqlite:///{tmp_path / 'migrations.db'}"
        return
    parsed = make_url(url)
    name = f"{parsed.database}_migrations"
    admin = create_engine(parsed, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    yield parsed.set(database=name).render_as_string(hide_password=False)
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def alembic_config(migrations_database_url):
    return make_alembic_config(migrations_database_url)


@pytest.fixture
def alembic_engine(migrations_database_url) -> Iterator[Engine]:
    engine = create_db_engine(migrations_database_url)
    yield engine
    engine.dispose()


def test_single_head_revision(alembic_runner):
    alembic_checks.test_single_head_revision(alembic_runner)


def test_upgrade(alembic_runner):
    alembic_checks.test_upgrade(alembic_runner)


def test_model_definitions_match_ddl(alembic_runner):
    alembic_checks.test_model_definitions_match_ddl(alembic_runner)


def test_up_down_consistency(alembic_runner):
    alembic_checks.test_up_down_consistency(alembic_runner)

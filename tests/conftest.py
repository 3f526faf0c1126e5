"""Fixtures: one migrated database per run (SQLite, or PostgreSQL from TEST_DATABASE_URL),
one outer transaction per test rolled back at the end."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import SessionFactory, create_db_engine
from service.migrations import upgrade_database

TEST_SECRET = "test-secret-key-that-is-long-enough-0123456789"


def _test_database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'test.db'}"


def _reset_postgres(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    return _test_database_url(tmp_path_factory)


POSTGRES_HINT = (
    "needs PostgreSQL: run with TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    engine = create_db_engine(database_url)
    if engine.dialect.name == "postgresql":
        try:
            _reset_postgres(engine)
        except OperationalError as exc:
            if os.environ.get("CD20_REQUIRE_POSTGRES"):
                raise
            pytest.skip(f"PostgreSQL at TEST_DATABASE_URL does not answer ({exc.orig})")
    upgrade_database(database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        secret_key=TEST_SECRET,
        environment="test",
        argon2_time_cost=1,
        argon2_memory_kib=64,
        argon2_parallelism=1,
        # Tests log in many times a minute; the rate-limit tests build apps with limits on.
        rate_limits_enabled=False,
    )


@pytest.fixture(scope="session")
def app(settings: Settings, engine: Engine) -> Flask:
    return _make_app(settings)


def _make_app(settings: Settings) -> Flask:
    from service.app import create_app

    app = create_app(settings)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def session(app: Flask, engine: Engine) -> Iterator[Session]:
    """A session inside an outer transaction; commits in the code under test become savepoints."""
    from service.api.middleware.rendered import store_of

    store_of(app).clear()  # bodies of the last test's rows, whose ids may come again
    connection = engine.connect()
    outer = connection.begin()
    SessionFactory.configure(bind=connection, join_transaction_mode="create_savepoint")
    session = SessionFactory()
    try:
        yield session
    finally:
        session.close()
        outer.rollback()
        connection.close()
        SessionFactory.configure(bind=engine, join_transaction_mode="conditional_savepoint")


@pytest.fixture
def client(app: Flask, session: Session) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def requires_postgres(engine: Engine) -> Engine:
    """For tests of PostgreSQL behaviour; CI's PostgreSQL run fails instead of skipping."""
    if engine.dialect.name != "postgresql":
        if os.environ.get("CD20_REQUIRE_POSTGRES"):
            pytest.fail("CD20_REQUIRE_POSTGRES is set but the test database is not PostgreSQL")
        pytest.skip(POSTGRES_HINT)
    return engine


def pytest_report_header(config: pytest.Config) -> list[str]:
    url = os.environ.get("TEST_DATABASE_URL")
    return [f"database: {url or 'SQLite (set TEST_DATABASE_URL for PostgreSQL)'}"]


def read_json(response: Any) -> Any:
    return response.get_json(force=True)


ROOT = Path(__file__).resolve().parent.parent

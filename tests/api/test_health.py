"""Readiness: /readyz is 200 only when the database answers and takes writes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session


@pytest.mark.parametrize("path", ["/readyz", "/api/v1/readyz"])
def test_ready_when_the_database_takes_writes(client, path):
    answer = client.get(path)
    assert answer.status_code == 200
    assert answer.get_json() == {"status": "ready", "database": "ok"}


@pytest.fixture
def read_only(session: Session) -> Iterator[None]:
    """The database refuses writes: SQLite's query_only (as a read-only file or mount does), or
    a read-only PostgreSQL transaction (as a standby or default_transaction_read_only does)."""
    connection = session.connection()
    if connection.dialect.name == "sqlite":
        connection.execute(text("PRAGMA query_only = 1"))
        try:
            yield
        finally:
            connection.execute(text("PRAGMA query_only = 0"))
    else:
        connection.execute(text("SET LOCAL transaction_read_only = on"))
        yield


@pytest.mark.parametrize("path", ["/readyz", "/api/v1/readyz"])
def test_not_ready_when_the_database_refuses_writes(client, read_only, path):
    answer = client.get(path)
    assert answer.status_code == 503
    assert answer.content_type == "application/problem+json"
    assert answer.get_json()["code"] == "database_read_only"
    # Still alive: the process is fine, the database is not.
    assert client.get("/healthz").status_code == 200

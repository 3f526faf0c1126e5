"""Alembic environment: the project's models, batch mode on SQLite."""

from __future__ import annotations

import re
from typing import Any

from alembic import context
from sqlalchemy import Connection, Engine

import service.models  # noqa: F401  (registers every table on Base.metadata)
from service.db import Base, create_db_engine

config = context.config
target_metadata = Base.metadata
# audit_event's month partitions on PostgreSQL (migration 0010) are not models of their own.
AUDIT_PARTITION = re.compile(r"audit_event_(default|[0-9]{4}_[0-9]{2})")


def include_name(name: str | None, type_: str, _parents: Any) -> bool:
    return not (type_ == "table" and name is not None and AUDIT_PARTITION.fullmatch(name))


def run_migrations() -> None:
    given = config.attributes.get("connection")
    if isinstance(given, Engine):
        with given.connect() as connection:
            _run(connection)
        return
    if given is not None:
        _run(given)
        return
    engine = create_db_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        with engine.connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


def _run(connection: Connection) -> None:
    sqlite = connection.dialect.name == "sqlite"
    if sqlite:
        # Batch mode rebuilds a table by copy, drop and rename; with foreign keys on, the drop
        # would cascade and delete the rows that point at it (a dose's reminders, say). The
        # pragma only works outside a transaction, so it goes to the driver's connection.
        _sqlite_pragma(connection, "PRAGMA foreign_keys=OFF")
    try:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=sqlite,
            compare_type=True,
            include_name=include_name,
        )
        with context.begin_transaction():
            context.run_migrations()
            if sqlite and connection.exec_driver_sql("PRAGMA foreign_key_check").first():
                raise RuntimeError("a migration left rows whose foreign keys point nowhere")
    finally:
        if sqlite:
            _sqlite_pragma(connection, "PRAGMA foreign_keys=ON")


def _sqlite_pragma(connection: Connection, statement: str) -> None:
    driver_connection = connection.connection.driver_connection
    assert driver_connection is not None
    driver_connection.execute(statement)


run_migrations()

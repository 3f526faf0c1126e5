"""Alembic environment: the project's models, batch mode on SQLite."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

import service.models  # noqa: F401  (registers every table on Base.metadata)
from service.db import Base, create_db_engine

config = context.config
target_metadata = Base.metadata


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


def _run(connection) -> None:  # type: ignore[no-untyped-def]
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


run_migrations()

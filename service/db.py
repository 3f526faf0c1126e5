"""Engine, session factory and unit of work, shared by the API, the runner and the CLI."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 10_000
SQLITE_BEGIN_OPTION = "sqlite_begin"
# Execution options for a transaction that will write: on SQLite it takes the write lock first.
WRITE_TRANSACTION = {SQLITE_BEGIN_OPTION: "IMMEDIATE"}


class UTCDateTime(TypeDecorator[datetime]):
    """An instant stored in UTC and always returned timezone-aware, on SQLite as on PostgreSQL."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


SessionFactory = sessionmaker(expire_on_commit=False)
_engine: Engine | None = None
_read_engine: Engine | None = None

# A pooled connection of the read engine idle for longer than this is pinged before use; one
# in steady use is not (see read_engine).
PING_AFTER_IDLE_S = 2.0


def utcnow() -> datetime:
    return datetime.now(UTC)


def create_db_engine(url: str, *, echo: bool = False) -> Engine:
    """An engine that never writes a statement's values into a log or an error message: they
    are names, birth dates, e-mail addresses and MRNs (hide_parameters)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            hide_parameters=True,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine, "connect", _configure_sqlite_connection)
        event.listen(engine, "begin", _begin_sqlite_transaction)
        return engine
    return create_engine(url, echo=echo, hide_parameters=True, pool_pre_ping=True)


class _NoResultRows(logging.Filter):
    """SQLAlchemy logs every result row at DEBUG: patient data. Statements still get through."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (isinstance(record.msg, str) and "Row %r" in record.msg)


logging.getLogger("sqlalchemy.engine.Engine").addFilter(_NoResultRows())


def _configure_sqlite_connection(dbapi_connection: Any, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINT; SQLAlchemy emits BEGIN itself.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_sqlite_transaction(connection: Any) -> None:
    # A deferred BEGIN reads from a snapshot and fails at once with "database is locked" if it
    # writes after another connection committed; a unit of work that will write asks for
    # WRITE_TRANSACTION (BEGIN IMMEDIATE) and waits for the lock instead.
    mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "")
    connection.exec_driver_sql("BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN")


def init_engine(url: str, *, echo: bool = False) -> Engine:
    """Bind the process-wide session factory to a database (once per process)."""
    global _engine, _read_engine
    if _engine is not None:
        if _engine.url.render_as_string(hide_password=False) == make_url(url).render_as_string(
            hide_password=False
        ):
            return _engine
        _engine.dispose()
    if _read_engine is not None:
        _read_engine.dispose()
        _read_engine = None
    _engine = create_db_engine(url, echo=echo)
    if _engine.dialect.name == "postgresql":
        _read_engine = _create_read_engine(_engine)
    SessionFactory.configure(bind=_engine)
    return _engine


def get_engine() -> Engine:
    if _engine is None:
        raise RuntimeError("init_engine() has not been called")
    return _engine


def read_engine(bind: Any) -> Engine | None:
    """The engine for API reads when `bind` is the process's PostgreSQL engine, else None.

    Its connections run each statement in a transaction of its own (autocommit) and commit
    without waiting for the WAL flush (synchronous_commit off): a read then costs its
    statements and nothing else, no BEGIN, no COMMIT, and its audit event (its one write)
    commits as it is inserted. Under READ COMMITTED every statement sees a snapshot of its own
    in a transaction too, so the reads see what they saw before. Only reads may use it: a
    session bound to it refuses to flush (see service.api.context).
    """
    if bind is None or bind is not _engine:
        return None
    return _read_engine


def _create_read_engine(engine: Engine) -> Engine:
    reads = create_engine(
        engine.url,
        echo=engine.echo,
        hide_parameters=True,
        isolation_level="AUTOCOMMIT",
        connect_args={"options": "-c synchronous_commit=off"},
        # Between statements its connections hold no transaction: nothing to roll back.
        pool_reset_on_return=None,
    )
    _ping_after_idle(reads)
    return reads


def engines() -> list[Engine]:
    """The process's engines in use (for instruments that count statements)."""
    return [engine for engine in (_engine, _read_engine) if engine is not None]


def _ping_after_idle(engine: Engine) -> None:
    """pool_pre_ping costs a round trip on every checkout; a connection used a moment ago is
    alive, so only one idle for PING_AFTER_IDLE_S is pinged (and replaced if it is dead, e.g.
    after the server restarted)."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("returned_at")  # none on a connection just opened
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_S:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        except Exception as exc:
            raise DisconnectionError("pooled connection is gone") from exc


@contextmanager
def unit_of_work() -> Iterator[Session]:
    """A session whose work is committed at the end of the block, or rolled back on error.

    Units of work write (jobs, the CLI, the audit trail): on SQLite they take the write lock
    at the start (WRITE_TRANSACTION) and wait for it, rather than fail when another process
    committed between their first read and their first write.
    """
    session = SessionFactory()
    try:
        session.connection(execution_options=WRITE_TRANSACTION)
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()

"""The request's transaction ends here, once the response is known.

A view's `db().commit()` only flushes (see `RequestSession`). After the view, every record the
request leaves behind (its audit event, the response kept on its Idempotency-Key) is added to
the same transaction and it commits once: a write, its audit event and its idempotency record
are all stored or none is, whenever the process dies.

A successful read on PostgreSQL that wrote nothing commits its records without waiting for the
WAL flush: on the read engine each INSERT commits as it is written (service.db.read_engine),
otherwise in the read's own transaction (see `_commit_read`). Any other request whose view did not
commit (a refusal, a failure, a read on SQLite) is rolled back first; its records are then
written in transactions of their own, as they must be whatever became of it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Protocol

from flask import Flask, Response, current_app, g, request
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.api.context import SAFE_METHODS, RequestSession
from service.api.problems import constraint_name, domain_problem, log_failure, problem
from service.db import unit_of_work
from service.errors import DomainError

log = logging.getLogger(__name__)

EXTENSION = "cd20_request_records"
# For a read's own records only: its transaction holds nothing else (see _commit_read).
ASYNC_COMMIT = text("SET LOCAL synchronous_commit TO OFF")


class RequestRecord(Protocol):
    def __call__(self, session: Session, *, with_changes: bool) -> None:
        """Add the record to `session`; `with_changes` when it commits with the request's writes.

        Raising refuses the commit: the request's writes are then not stored either.
        """


# Given the response about to be sent, the record to write for it (None: nothing to write).
RecordFactory = Callable[[Response], RequestRecord | None]


def add_record(app: Flask, factory: RecordFactory) -> None:
    """Have `factory`'s record written with every request, in the order they were added."""
    app.extensions.setdefault(EXTENSION, []).append(factory)


def install(app: Flask) -> None:
    """Register last: the response it may replace still passes the other after-request hooks."""
    app.extensions.setdefault(EXTENSION, [])
    app.after_request(finish_request)


def finish_request(response: Response) -> Response:
    factories: list[RecordFactory] = _app_factories()
    records: list[RequestRecord] = []
    session: Session | None = None
    try:
        # Made while the request's session is still the one db() returns: a factory that reads
        # (the audit's caller, from the user row) reads in the request's own transaction rather
        # than opening a second one that would wait on the first's write lock (SQLite).
        records = [record for record in (make(response) for make in factories) if record]
        session = g.pop("db_session", None)
        # A view that committed, then failed (a 5xx, or a database error after its commit),
        # already answered with the error: its transaction is rolled back whole below, so a
        # retry finds nothing half done.
        if (
            isinstance(session, RequestSession)
            and session.commit_held
            and _active(session)
            and response.status_code < 500
        ):
            try:
                for record in records:
                    record(session, with_changes=True)
                session.commit_request()
                return response
            except Exception as error:
                session.rollback()
                response = _refusal(error)
                records = [record for record in (make(response) for make in factories) if record]
        elif records and _read_only(session, response) and _commit_read(session, records):
            return response
    finally:
        if session is None:
            session = g.pop("db_session", None)
        if session is not None:
            session.close()  # ends the request's transaction (and SQLite's write lock) if open
    for record in records:
        try:
            with unit_of_work() as own:
                record(own, with_changes=False)
        except Exception as error:  # the response is decided; a lost record must be loud
            log_failure(
                log, f"request record {getattr(record, '__name__', '?')} NOT written", error
            )
    return response


def _read_only(session: Session | None, response: Response) -> bool:
    """A successful read on PostgreSQL whose transaction wrote nothing."""
    return (
        isinstance(session, RequestSession)
        and not session.commit_held
        and not session.wrote
        and request.method in SAFE_METHODS
        and response.status_code < 400
        and _active(session)
        and session.get_bind().dialect.name == "postgresql"
    )


def _commit_read(session: Session, records: list[RequestRecord]) -> bool:
    """Write a read's records in the read's own transaction and commit it, without waiting for
    the WAL to reach the disk (see README, "The audit trail at scale").

    The commit is done before the response leaves, so killing the process afterwards loses
    nothing; only a crash of the database server (or its machine) within about three
    wal_writer_delay (600 ms by default) of the commit can lose read events. False (the
    transaction rolled back) when that fails: the records then go the usual way.
    """
    assert isinstance(session, RequestSession)
    try:
        # The read engine commits each INSERT as it runs, without waiting for the WAL.
        own_transaction = not session.autocommit_read
        if own_transaction:
            session.connection().execute(ASYNC_COMMIT)
        for record in records:
            record(session, with_changes=False)
        if own_transaction:
            session.commit_request()
    except Exception as error:
        log_failure(log, "read's records not committed with it; writing them on their own", error)
        session.rollback()
        return False
    return True


def _app_factories() -> list[RecordFactory]:
    factories: list[RecordFactory] = current_app.extensions.get(EXTENSION, [])
    return factories


def _active(session: Session) -> bool:
    transaction = session.get_transaction()
    return transaction is not None and transaction.is_active


def _refusal(error: Exception) -> Response:
    """The answer when the request's writes could not be committed: nothing was stored."""
    if isinstance(error, DomainError):
        return domain_problem(error)
    if isinstance(error, IntegrityError):
        log.info("commit refused by constraint %s", constraint_name(error))
        return problem(409, code="conflict", detail="Conflicts with data already stored.")
    log_failure(log, "request not committed", error)
    return problem(500)

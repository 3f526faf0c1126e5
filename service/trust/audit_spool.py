"""Reads' audit events, spooled to a file on the host, then moved into audit_event in batches.

A polled read writes one thing, its audit event, and inserting it costs the read a second round
trip to the database. With a spool directory (CD20_AUDIT_SPOOL_DIR), a read's event is appended
to this process's spool file before the answer leaves, and a thread moves the file's new lines
into audit_event every flush interval, in one transaction with how far it got
(audit_spool_progress). So:

- a process killed after it answered loses nothing: the line is in the file, which the kernel
  keeps. The file's lock dies with the process; the next process on the host to look (every API
  process looks every ADOPT_EVERY_S, and `cd20 audit flush-spool` does on demand) adopts the
  file and moves what was not moved yet;
- each line is moved once: its row and the new offset commit together;
- a crash of the machine itself loses the lines not yet moved, about one flush interval;
- /audit shows a read's event once it is moved: after at most about one flush interval.

A spool directory belongs to one host, on a local disk. Writes keep their event in their own
transaction (service.api.middleware.transaction).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import TextClause, delete, insert, select, text, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from service.config import ConfigurationError
from service.db import unit_of_work, utcnow
from service.models import AuditEvent, AuditSpoolProgress
from service.trust.audit import INSERT_EVENT

log = logging.getLogger(__name__)

SUFFIX = ".spool"
# A spool file's name until its writer holds its lock: adopters only look at SUFFIX files.
CLAIMING = ".claiming"
ADOPT_EVERY_S = 5.0
CLAIM_STALE_S = 60.0
RETRY_MAX_S = 30.0
# A moved file this large is replaced by a new one.
ROTATE_BYTES = 4 * 1024 * 1024
# Moved per transaction.
BATCH_BYTES = 1024 * 1024

SessionScope = Callable[[], AbstractContextManager[Session]]


@dataclass
class _SpoolFile:
    path: Path
    # How far it is moved; None: not known here, read it from audit_spool_progress.
    moved: int | None = None


@dataclass(frozen=True)
class Adopted:
    files: int
    events: int
    in_use: int


class AuditSpool:
    """This process's spool file in `directory`, and the thread that moves it."""

    def __init__(
        self,
        directory: Path,
        *,
        flush_interval_s: float,
        session_scope: SessionScope = unit_of_work,
    ) -> None:
        self.directory = directory
        self.flush_interval_s = flush_interval_s
        self._session_scope = session_scope
        self._moving_on_its_own = False  # start() was called: a thread moves the file
        self._reset()

    def _reset(self) -> None:
        """A fresh state; also in a forked child, whose parent's file and thread are not its."""
        self._pid = os.getpid()
        self._append_lock = threading.Lock()
        self._move_lock = threading.Lock()
        self._own: _SpoolFile | None = None
        self._fd: int | None = None
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the request's side ------------------------------------------------------------------

    def append(self, row: dict[str, Any]) -> None:
        """Add one event. Returns once the line is in the file (not on disk: see the module)."""
        line = encode(row)
        self._ensure_running()
        with self._append_lock:
            fd = self._own_fd()
            view = memoryview(line)
            while view:
                view = view[os.write(fd, view) :]

    def check_writable(self) -> None:
        """Refuse a directory this process cannot spool in: every read's event would be lost."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConfigurationError(f"CD20_AUDIT_SPOOL_DIR {self.directory}: {error}") from error
        if not os.access(self.directory, os.W_OK | os.X_OK):
            raise ConfigurationError(f"CD20_AUDIT_SPOOL_DIR {self.directory} is not writable")

    def start(self) -> None:
        """Have a thread move the file every flush interval (and adopt orphans); without it
        only flush() and close() move."""
        self._moving_on_its_own = True
        self._ensure_running()

    def _ensure_running(self) -> None:
        if self._pid != os.getpid():
            if self._fd is not None:
                os.close(self._fd)  # the parent's descriptor; its lock stays the parent's
            self._reset()
        if self._thread is None and self._moving_on_its_own:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._thread = threading.Thread(target=self._run, name="cd20-audit-spool", daemon=True)
            self._thread.start()

    def _own_fd(self) -> int:
        if self._fd is None:
            self._own, self._fd = self._new_file()
        return self._fd

    def _new_file(self) -> tuple[_SpoolFile, int]:
        """Created under a temporary name and locked before it is named a spool: an adopter
        never takes a file whose writer is about to lock it."""
        name = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:12]}"
        claiming = self.directory / (name + CLAIMING)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND | os.O_CLOEXEC
        fd = os.open(claiming, flags, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)  # waits out an adopter that is looking at it
        path = self.directory / (name + SUFFIX)
        os.rename(claiming, path)
        return _SpoolFile(path, moved=0), fd

    # -- moving ------------------------------------------------------------------------------

    def flush(self) -> int:
        """Move this process's new lines into audit_event now; how many were moved."""
        with self._move_lock:
            own = self._own
            if own is None:
                return 0
            moved = self._move(own)
            if (own.moved or 0) >= ROTATE_BYTES:
                self._retire(own)
            return moved

    def _retire(self, own: _SpoolFile) -> None:
        """Replace a wholly moved file with a new one (at the next append), and remove it."""
        with self._append_lock:
            if own.moved != _size(own.path):  # appended to since it was moved
                return
            fd, self._own, self._fd = self._fd, None, None
        try:
            self._finish(own)
        finally:
            if fd is not None:
                os.close(fd)

    def close(self) -> None:
        """Stop the thread and move what is left; a wholly moved file is removed."""
        if self._pid != os.getpid():
            return
        thread, self._moving_on_its_own = self._thread, False
        if thread is not None:
            self._stopping.set()
            if thread is not threading.current_thread():
                thread.join(timeout=RETRY_MAX_S + 30)
            self._thread = None
            self._stopping = threading.Event()
        try:
            with self._move_lock:
                if self._own is not None:
                    self._move(self._own)
                    self._retire(self._own)
        except Exception:  # the file stays; the next process on the host adopts it
            log.exception("audit spool: not all moved at shutdown; the file stays for adoption")

    def adopt_orphans(self) -> Adopted:
        """Move and remove the spool files no live process holds (their writer died)."""
        files = events = in_use = 0
        own = self._own.path if self._own is not None else None
        for path in sorted(self.directory.glob("*" + SUFFIX)):
            if path == own:
                continue
            with _locked(path) as held:
                if held is None:
                    in_use += path.exists()
                    continue
                orphan = _SpoolFile(path)
                events += self._move(orphan)
                left = _size(path) - (orphan.moved or 0)
                if left:
                    log.warning(
                        "audit spool %s: %d bytes after its last whole line dropped (written as"
                        " its process died, so never answered)",
                        path.name,
                        left,
                    )
                self._finish(orphan)
                files += 1
        for path in self.directory.glob("*" + CLAIMING):
            # Its process died before it wrote a line. A young one is left alone, unlocked: its
            # writer may be about to lock it.
            if _age_s(path) > CLAIM_STALE_S:
                with _locked(path) as held:
                    if held is not None:
                        path.unlink(missing_ok=True)
        return Adopted(files=files, events=events, in_use=in_use)

    def _move(self, spool: _SpoolFile) -> int:
        """Move the file's whole lines after its recorded offset, batch by batch, up to where
        it ended when the move began: lines appended meanwhile wait for the next move."""
        end = _size(spool.path)
        if spool.moved is not None and spool.moved >= end:
            return 0
        total = 0
        try:
            with spool.path.open("rb") as handle:
                while spool.moved is None or spool.moved < end:
                    try:
                        rows = self._move_batch(spool, handle, end)
                    except DataError:  # a damaged line: this batch again, line by line
                        rows = self._move_batch(spool, handle, end, line_by_line=True)
                    if rows is None:
                        break
                    total += rows
        except Exception:
            spool.moved = None  # whether the last batch committed is unknown: ask next time
            raise
        return total

    def _move_batch(
        self, spool: _SpoolFile, handle: Any, end: int, *, line_by_line: bool = False
    ) -> int | None:
        """The rows one transaction moved; None when no whole line was left before `end`."""
        with self._session_scope() as session:
            start = spool.moved
            if start is None:
                start = _recorded_offset(session, spool.path.name)
            handle.seek(start)
            data = handle.read(max(0, min(BATCH_BYTES, end - start)))
            whole = data.rfind(b"\n") + 1
            if whole == 0:
                spool.moved = start
                return None
            lines = data[:whole]
            connection = session.connection()
            if connection.dialect.name == "postgresql" and not line_by_line:
                # PostgreSQL reads the lines as they are: no row is decoded in Python.
                moved = connection.execute(
                    _json_insert(), {"events": "[" + lines.decode().replace("\n", ",")[:-1] + "]"}
                ).rowcount
            else:
                rows = list(_decode_lines(lines, spool.path.name, start))
                if rows:
                    connection.execute(INSERT_EVENT, rows)
                moved = len(rows)
            _record_offset(session, spool.path.name, start + whole)
        spool.moved = start + whole
        return moved

    def _finish(self, spool: _SpoolFile) -> None:
        """Remove a moved file, then its offset: a crash in between leaves only a stale offset
        row, never a file that would be moved again from its start."""
        spool.path.unlink(missing_ok=True)
        with self._session_scope() as session:
            session.execute(
                delete(AuditSpoolProgress).where(AuditSpoolProgress.spool == spool.path.name)
            )

    def _run(self) -> None:
        # Adopts at once: files left by processes that died before this one started.
        next_adoption = time.monotonic()
        failures = 0
        wait = 0.0
        while True:
            stopping = self._stopping.wait(wait)
            try:
                self.flush()
                if not stopping and time.monotonic() >= next_adoption:
                    next_adoption = time.monotonic() + ADOPT_EVERY_S
                    self.adopt_orphans()
                failures = 0
            except Exception as error:
                failures += 1
                if failures == 1:
                    log.exception("audit spool: moving events failed; retrying")
                else:
                    log.error("audit spool: moving events failed %d times: %s", failures, error)
            if stopping:
                return
            # After a failure (the database away, say) it waits longer each time, up to
            # RETRY_MAX_S: the lines wait in the file meanwhile.
            wait = min(RETRY_MAX_S, self.flush_interval_s * 2**failures)


@cache
def _json_insert() -> TextClause:
    """INSERT of a JSON array of spooled events, each an object keyed by column name."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    columns = [column for column in AuditEvent.__table__.columns if column.name != "id"]
    names = ", ".join(column.name for column in columns)
    record = ", ".join(
        f"{column.name} {column.type.compile(dialect=dialect)}" for column in columns
    )
    return text(
        f"INSERT INTO audit_event ({names}) SELECT {names}"
        f" FROM json_to_recordset(CAST(:events AS json)) AS spooled({record})"
    )


def encode(row: dict[str, Any]) -> bytes:
    values = dict(row)
    values["occurred_at"] = row["occurred_at"].isoformat()
    return json.dumps(values, separators=(",", ":")).encode() + b"\n"


def _decode_lines(data: bytes, name: str, offset: int) -> Iterator[dict[str, Any]]:
    for line in data.splitlines():
        try:
            row = json.loads(line)
            row["occurred_at"] = datetime.fromisoformat(row["occurred_at"])
        except (ValueError, KeyError, TypeError):
            # Only a damaged disk writes such a line; keeping it would stop the spool for good.
            log.error("audit spool %s: unreadable line near byte %d skipped", name, offset)
            continue
        yield row
        offset += len(line) + 1


def _recorded_offset(session: Session, name: str) -> int:
    moved = session.scalar(
        select(AuditSpoolProgress.moved_bytes).where(AuditSpoolProgress.spool == name)
    )
    return int(moved or 0)


def _record_offset(session: Session, name: str, moved: int) -> None:
    """Only the holder of the file's lock moves it, so nobody else writes this row."""
    now = utcnow()
    updated = session.execute(
        update(AuditSpoolProgress)
        .where(AuditSpoolProgress.spool == name)
        .values(moved_bytes=moved, updated_at=now)
    )
    if not getattr(updated, "rowcount", 0):
        session.execute(
            insert(AuditSpoolProgress).values(spool=name, moved_bytes=moved, updated_at=now)
        )


class _locked(AbstractContextManager["int | None"]):
    """The file's lock if no live process holds it (None otherwise, or if it is gone)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def __enter__(self) -> int | None:
        try:
            self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        try:  # another adopter may have finished it between our open and our lock
            same = os.stat(self.path).st_ino == os.fstat(self.fd).st_ino
        except FileNotFoundError:
            same = False
        return self.fd if same else None

    def __exit__(self, *_exc: object) -> None:
        if self.fd is not None:
            os.close(self.fd)


def _age_s(path: Path) -> float:
    try:
        return time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _size(path: Path) -> int:
    return path.stat().st_size

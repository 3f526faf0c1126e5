"""One runner process: claims due reminders in batches and delivers them, until told to stop."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from service.config import Settings
from service.db import SessionFactory, get_engine, unit_of_work, utcnow
from service.reminders.channels import Channel, ExternalChannel, Outgoing, Result
from service.reminders.dispatch import (
    Leased,
    Round,
    TickCounts,
    acquire_runner_lease,
    begin_send,
    claim_and_deliver,
    finish_round,
    give_up_runner_lease,
    prepare_round,
    record_send,
    release_claims,
    send_safely,
)
from service.reminders.metrics import record_batch

log = logging.getLogger("jobs.runner")

DEFAULT_BATCH_SIZE = 500
DEFAULT_LEASE = timedelta(seconds=60)
# A tick stops taking new batches after this long, so the scheduler's other jobs get a turn.
MAX_TICK = timedelta(seconds=20)


@contextmanager
def read_only_session() -> Iterator[Session]:
    """A session for reads only: a plain BEGIN (on SQLite no write lock), rolled back after."""
    session = SessionFactory()
    try:
        yield session
    finally:
        session.rollback()
        session.close()


@dataclass
class _InProgress:
    """One leased reminder on its way through its sends."""

    round: Round
    next: int = 0
    results: dict[str, Result] = field(default_factory=dict)
    in_flight: tuple[int, str, ExternalChannel[Any], Any] | None = None
    unrecorded: tuple[int, ExternalChannel[Any], Any, Result] | None = None

    def landed(self, result: Result) -> None:
        assert self.in_flight is not None
        attempt_id, name, channel, prepared = self.in_flight
        self.in_flight = None
        self.results[name] = result
        self.unrecorded = (attempt_id, channel, prepared, result)

    def record(self, session: Session) -> None:
        if self.unrecorded is not None:
            record_send(session, *self.unrecorded)
            self.unrecorded = None


def new_runner_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Runner:
    def __init__(
        self,
        settings: Settings,
        channels: Mapping[str, Channel],
        *,
        owner: str | None = None,
        clock: Callable[[], datetime] = utcnow,
        batch_size: int = DEFAULT_BATCH_SIZE,
        lease: timedelta = DEFAULT_LEASE,
        on_batch: Callable[[TickCounts], None] | None = None,
    ) -> None:
        self.settings = settings
        self.channels = channels
        self.owner = owner or new_runner_id()
        self.clock = clock
        self.batch_size = batch_size
        self.lease = lease
        self.on_batch = on_batch
        self.stopping = threading.Event()
        self._in_hand: list[Outgoing] = []
        self._waiting = False

    @property
    def single_runner_database(self) -> bool:
        return get_engine().dialect.name != "postgresql"

    def hold_single_runner_lease(self) -> bool:
        """SQLite has no SKIP LOCKED: one runner at a time, the others wait for the lease."""
        if not self.single_runner_database:
            return True
        with unit_of_work() as session:
            return acquire_runner_lease(session, owner=self.owner, now=self.clock(), ttl=self.lease)

    def tick(self) -> TickCounts:
        """Claim and deliver batches until nothing is due (or the tick has run long enough)."""
        total = TickCounts()
        if not self.hold_single_runner_lease():
            if not self._waiting:
                log.info("waiting: another runner holds the lease on this SQLite database")
                self._waiting = True
            return total
        if self._waiting:
            log.info("took over the runner lease")
            self._waiting = False
        started = self.clock()
        while not self.stopping.is_set():
            counts = self.run_batch()
            total.add(counts)
            if counts.claimed < self.batch_size or self.clock() - started > MAX_TICK:
                break
        return total

    def run_batch(self) -> TickCounts:
        """Take one batch. Reminders that stay in the database are delivered in the claiming
        transaction; those that also go out are leased, and sent after it has committed."""
        now = self.clock()
        with unit_of_work() as session:
            counts, leased = claim_and_deliver(
                session,
                self.channels,
                owner=self.owner,
                now=now,
                limit=self.batch_size,
                lease=self.lease,
                settings=self.settings,
            )
            record_batch(session, counts)
        if leased:
            counts.add(self.deliver_leased(leased))
        if counts.claimed and self.on_batch is not None:
            self.on_batch(counts)
        return counts

    def deliver_leased(self, leased: Sequence[Leased]) -> TickCounts:
        """Send leased reminders with no transaction open across any network call.

        A short read prepares every send. Then each send has a transaction before it (the
        lease renewed, the send recorded as in flight) and after it (its outcome; after a
        reminder's last send, the reminder's status). Up to `settings.delivery_concurrency`
        sends are on the network at once, on worker threads that never touch the database, so
        a slow server delays only its own reminders. A reminder whose sends fail, by answer or
        by exception, fails alone.
        """
        self._in_hand = [item.message for item in leased]
        total = TickCounts()
        try:
            with read_only_session() as session:
                rounds = prepare_round(session, leased, self.channels)
            workers = max(1, min(self.settings.delivery_concurrency, len(rounds)))
            with ThreadPoolExecutor(workers, thread_name_prefix="send") as pool:
                waiting = deque(_InProgress(this) for this in rounds)
                flying: dict[Future[Result], _InProgress] = {}
                while waiting or flying:
                    while waiting and len(flying) < workers and not self.stopping.is_set():
                        self._advance(waiting.popleft(), pool, flying, total)
                    if not flying:
                        break
                    done, _ = wait(flying, return_when=FIRST_COMPLETED)
                    for future in done:
                        state = flying.pop(future)
                        state.landed(future.result())
                        self._advance(state, pool, flying, total)
            if waiting:
                # Stopping: the reminders not started go back at once.
                self._in_hand = [state.round.leased.message for state in waiting]
                self.release()
            if total.as_log() != TickCounts().as_log() or total.lateness_s:
                with unit_of_work() as session:
                    record_batch(session, total)
        finally:
            self._in_hand = []
        return total

    def _advance(
        self,
        state: _InProgress,
        pool: ThreadPoolExecutor,
        flying: dict[Future[Result], _InProgress],
        total: TickCounts,
    ) -> None:
        """Record the send that landed, then start the reminder's next send or finish it."""
        item = state.round.leased
        try:
            if state.next < len(state.round.sends):
                name, channel, prepared = state.round.sends[state.next]
                with unit_of_work() as session:
                    state.record(session)
                    attempt_id = begin_send(
                        session, item, name, owner=self.owner, now=self.clock(), lease=self.lease
                    )
                if attempt_id is None:
                    total.lost_lease += 1
                    return
                state.next += 1
                state.in_flight = (attempt_id, name, channel, prepared)
                future = pool.submit(send_safely, channel, prepared, item.reminder_id)
                flying[future] = state
                return
            with unit_of_work() as session:
                state.record(session)
                total.add(
                    finish_round(
                        session,
                        state.round,
                        state.results,
                        self.channels,
                        owner=self.owner,
                        now=self.clock(),
                        settings=self.settings,
                    )
                )
        except Exception as exc:
            # Its lease runs out and it is tried again; the batch goes on.
            log.error("reminder %s: recording failed: %s", item.reminder_id, type(exc).__name__)
            log.debug("recording failed", exc_info=True)

    def release(self) -> None:
        """Give claimed-but-undelivered reminders back (graceful shutdown)."""
        ids = [c.reminder_id for c in self._in_hand]
        if ids:
            with unit_of_work() as session:
                released = release_claims(session, ids, owner=self.owner, now=self.clock())
            log.info("released %d claimed reminders", released)
        self._in_hand = []

    def stop(self) -> None:
        self.stopping.set()

    def close(self) -> None:
        if self.single_runner_database:
            with unit_of_work() as session:
                give_up_runner_lease(session, owner=self.owner)

"""One runner process: claims due reminders in batches and delivers them, until told to stop."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

from service.config import Settings
from service.db import get_engine, unit_of_work, utcnow
from service.reminders.channels import Channel, Outgoing
from service.reminders.dispatch import (
    TickCounts,
    acquire_runner_lease,
    claim_and_deliver,
    deliver_claimed,
    give_up_runner_lease,
    release_claims,
)
from service.reminders.metrics import record_batch

log = logging.getLogger("jobs.runner")

DEFAULT_BATCH_SIZE = 500
DEFAULT_LEASE = timedelta(seconds=60)
# A tick stops taking new batches after this long, so the scheduler's other jobs get a turn.
MAX_TICK = timedelta(seconds=20)


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
        """Take one batch: reminders that stay in the database are delivered in the same
        transaction; those for outside channels are leased, then delivered in a second one."""
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
            counts.add(self._deliver_leased(leased))
        if counts.claimed and self.on_batch is not None:
            self.on_batch(counts)
        return counts

    def _deliver_leased(self, leased: list[Outgoing]) -> TickCounts:
        self._in_hand = leased
        try:
            if self.stopping.is_set():
                self.release()
                return TickCounts()
            with unit_of_work() as session:
                counts = deliver_claimed(
                    session,
                    leased,
                    self.channels,
                    owner=self.owner,
                    now=self.clock(),
                    settings=self.settings,
                )
                # Counted as claimed by the first transaction already.
                counts.claimed = 0
                record_batch(session, counts)
        finally:
            self._in_hand = []
        return counts

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

"""The runner process: an APScheduler BlockingScheduler with the reminder jobs."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import datetime
from types import FrameType

from apscheduler.events import EVENT_SCHEDULER_STARTED, SchedulerEvent
from apscheduler.schedulers.blocking import BlockingScheduler

from jobs import tasks
from jobs.runner import Runner
from service.db import utcnow

log = logging.getLogger("jobs.scheduler")

DISPATCH_EVERY_SECONDS = 2


def build_scheduler(
    runner: Runner, *, dispatch_every: float = DISPATCH_EVERY_SECONDS
) -> BlockingScheduler:
    tasks.use_runner(runner)
    scheduler = BlockingScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
    )
    scheduler.add_job(
        tasks.dispatch_due_reminders,
        "interval",
        seconds=dispatch_every,
        id="dispatch_due_reminders",
        replace_existing=True,
        # First run at start, not one interval later.
        next_run_time=_now(),
    )
    scheduler.add_job(
        tasks.mark_overdue_items,
        "cron",
        minute="*/15",
        id="mark_overdue_items",
        replace_existing=True,
    )
    scheduler.add_job(
        tasks.extend_rolling_schedules,
        "cron",
        hour=2,
        minute=30,
        id="extend_rolling_schedules",
        replace_existing=True,
    )
    scheduler.add_job(
        tasks.purge_old_deliveries,
        "cron",
        hour=3,
        minute=15,
        id="purge_old_deliveries",
        replace_existing=True,
    )
    scheduler.add_job(
        tasks.purge_ended_console_sessions,
        "cron",
        minute=50,
        id="purge_ended_console_sessions",
        replace_existing=True,
    )
    scheduler.add_job(
        tasks.purge_expired_idempotency_keys,
        "cron",
        minute=40,
        id="purge_expired_idempotency_keys",
        replace_existing=True,
    )
    scheduler.add_job(
        tasks.ensure_audit_partitions,
        "cron",
        hour=2,
        minute=50,
        id="ensure_audit_partitions",
        replace_existing=True,
    )
    return scheduler


def run_until_stopped(runner: Runner, scheduler: BlockingScheduler) -> None:
    """Start the scheduler; SIGTERM/SIGINT finish the batch in hand, then stop."""
    stopper: list[threading.Thread] = []

    def finish_batch_then_shut_down(signum: int) -> None:
        log.info("signal %s: finishing the current batch, then stopping", signum)
        scheduler.shutdown(wait=True)

    def stop(signum: int, _frame: FrameType | None) -> None:
        runner.stop()
        # The handler runs in the main thread between any two bytecodes, possibly while it holds
        # a logging or scheduler lock that the batch in hand needs to finish: waiting for that
        # batch here could wait forever, so a thread of its own does the waiting.
        if not stopper:
            stopper.append(
                threading.Thread(target=finish_batch_then_shut_down, args=(signum,), daemon=True)
            )
            stopper[0].start()

    def install_signal_handlers(_event: SchedulerEvent) -> None:
        # Only once the scheduler runs can it be shut down; before that the default SIGTERM
        # ends a process that has nothing in hand.
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)
        log.info("runner %s started", runner.owner)

    scheduler.add_listener(install_signal_handlers, EVENT_SCHEDULER_STARTED)
    try:
        scheduler.start()
    finally:
        # The main loop ends as soon as the scheduler is marked stopped, which can be before the
        # batch in hand is done: release and close only after it is.
        for thread in stopper:
            thread.join()
        runner.release()
        runner.close()
        log.info("runner %s stopped", runner.owner)


def _now() -> datetime:
    return utcnow()

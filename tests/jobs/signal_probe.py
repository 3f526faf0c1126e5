"""`python -m tests.jobs.signal_probe <sqlite url>`: SIGTERM arrives while the main thread holds
the lock the batch in hand needs to finish (run by test_runner_signal.py in a process of its own).

The batch logs when it ends; the main thread, meanwhile, logs that the next tick is skipped (the
batch is still running) and the SIGTERM is sent from inside that logging call, so the signal
handler runs with the log handler's lock held. A handler that waited for the batch there would
wait forever. Exits 0 once the runner stopped; the test gives it a deadline.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time

from apscheduler.schedulers.blocking import BlockingScheduler

from jobs.runner import Runner
from jobs.scheduler import run_until_stopped
from service.config import Settings
from service.db import init_engine
from service.migrations import upgrade_database

BATCH_S = 0.5


class SignalFromInsideLogging(logging.Handler):
    """Prints every record; the first one the main thread logs while a batch is in hand sends
    SIGTERM to this process before the record is printed (this handler's lock held)."""

    def __init__(self, batch_in_hand: threading.Event) -> None:
        super().__init__()
        self.batch_in_hand = batch_in_hand
        self.sent = False

    def emit(self, record: logging.LogRecord) -> None:
        main = threading.current_thread() is threading.main_thread()
        if main and self.batch_in_hand.is_set() and not self.sent:
            self.sent = True
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.05)  # the signal handler runs here, between two bytecodes
        print(f"{record.threadName}: {record.getMessage()}", flush=True)


def main(url: str) -> None:
    upgrade_database(url)
    init_engine(url)
    settings = Settings(
        database_url=url, secret_key="signal-probe-" + "x7Kq2Lm9Pz4Rv8Tn3Wb6Yc1Hd5Jf0Gs"
    )
    runner = Runner(settings, {})
    batch_in_hand = threading.Event()
    logging.basicConfig(level=logging.INFO, handlers=[SignalFromInsideLogging(batch_in_hand)])
    log = logging.getLogger("signal_probe")

    def batch() -> None:
        batch_in_hand.set()
        time.sleep(BATCH_S)
        log.info("batch finished")  # takes the handler's lock

    scheduler = BlockingScheduler(
        timezone="UTC", job_defaults={"coalesce": True, "max_instances": 1}
    )
    # Every 0.1 s: while the batch runs, the main thread logs that the next run is skipped.
    scheduler.add_job(batch, "interval", seconds=0.1, id="batch")
    run_until_stopped(runner, scheduler)


if __name__ == "__main__":
    main(sys.argv[1])

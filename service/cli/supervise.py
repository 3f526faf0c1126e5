"""The runner process that `cd20 serve` starts beside the API, restarted if it dies."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading

log = logging.getLogger("cd20.serve")

RESTART_DELAY_S = 5.0
STOP_TIMEOUT_S = 60.0


class RunnerProcess:
    def __init__(self, command: list[str] | None = None) -> None:
        self.command = command or [sys.executable, "-m", "service.cli", "jobs", "run"]
        self._process: subprocess.Popen[bytes] | None = None
        self._stopping = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="runner-watch", daemon=True)

    def start(self) -> None:
        self._spawn()
        self._watcher.start()

    def _spawn(self) -> None:
        self._process = subprocess.Popen(self.command)
        log.info("reminder runner started (pid %s)", self._process.pid)

    def _watch(self) -> None:
        while not self._stopping.is_set():
            process = self._process
            if process is None:
                return
            code = process.wait()
            if self._stopping.is_set():
                return
            log.error("reminder runner exited with %s; restarting in %.0fs", code, RESTART_DELAY_S)
            if self._stopping.wait(RESTART_DELAY_S):
                return
            self._spawn()

    def stop(self) -> None:
        """SIGTERM: the runner finishes or releases its batch, then exits."""
        self._stopping.set()
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

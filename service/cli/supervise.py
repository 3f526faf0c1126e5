"""The runner process that `cd20 serve` starts beside the API, restarted if it dies, and gone
when `cd20 serve` is: even after kill -9, which leaves no chance to stop it.

On Linux the child asks the kernel for SIGTERM when its parent dies (prctl PR_SET_PDEATHSIG),
then becomes the runner (`python -m service.cli.supervise PARENT_PID COMMAND...` execs COMMAND;
the setting survives exec). SIGTERM is the runner's graceful stop: it finishes or releases the
batch in hand and gives up its SQLite lease, and nothing it does not own.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import subprocess
import sys
import threading

log = logging.getLogger("cd20.serve")

RESTART_DELAY_S = 5.0
STOP_TIMEOUT_S = 60.0
PR_SET_PDEATHSIG = 1  # linux/prctl.h


def ends_with_parent(command: list[str]) -> list[str]:
    """`command`, run so that it gets SIGTERM when the process starting it dies (Linux)."""
    if not sys.platform.startswith("linux"):
        return command
    return [sys.executable, "-m", "service.cli.supervise", str(os.getpid()), *command]


def exec_ending_with_parent(parent_pid: int, command: list[str]) -> None:
    """In the child: ask for SIGTERM when the parent dies, then become `command`."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")
    if os.getppid() != parent_pid:  # the parent died before prctl: there is nobody to serve
        sys.exit(0)
    os.execv(command[0], command)


class RunnerProcess:
    def __init__(self, command: list[str] | None = None) -> None:
        self.command = ends_with_parent(
            command or [sys.executable, "-m", "service.cli", "jobs", "run"]
        )
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


if __name__ == "__main__":
    exec_ending_with_parent(int(sys.argv[1]), sys.argv[2:])

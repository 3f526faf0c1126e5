"""SIGTERM stops the runner even when it arrives while the main thread holds a lock the batch in
hand needs (tests/jobs/signal_probe.py sets that up in a process of its own)."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT

DEADLINE_S = 30


def test_sigterm_inside_a_logging_call_still_stops_the_runner(tmp_path):
    url = f"sqlite:///{tmp_path / 'probe.db'}"
    probe = subprocess.run(
        [sys.executable, "-m", "tests.jobs.signal_probe", url],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,  # the way it used to fail: the process never ended
    )
    assert probe.returncode == 0, probe.stdout + probe.stderr
    lines = probe.stdout.splitlines()
    # The signal came while a batch was in hand, the batch finished, then the runner stopped.
    signalled = next(i for i, line in enumerate(lines) if "finishing the current batch" in line)
    finished = next(i for i, line in enumerate(lines) if "batch finished" in line)
    stopped = next(i for i, line in enumerate(lines) if line.endswith("stopped"))
    assert signalled < stopped, probe.stdout
    assert finished < stopped, probe.stdout

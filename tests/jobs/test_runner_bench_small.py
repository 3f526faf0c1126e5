"""The runner benchmark at CI size: every reminder once in the inbox, for runners and naive alike.

Nothing here is timed: the figures are printed for people (run tests/bench/runner_bench.py at
full size on a quiet machine); CI checks that the benchmark runs and that nothing is lost or
repeated along the way.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine

from tests.bench import runner_bench
from tests.bench.seed import scratch_database

REQUIRED = (
    "throughput_per_s",
    "naive_throughput_per_s",
    "ratio",
    "tick_cost_ratio",
    "lateness_p99_s",
    "peak_rss_mb",
    "lost",
    "duplicates",
)


@pytest.fixture
def bench_database(requires_postgres: Engine, database_url: str) -> Iterator[str]:
    with scratch_database(database_url, "ci_bench") as url:
        yield url


def test_small_benchmark_delivers_each_reminder_once(
    bench_database: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", bench_database)
    runner_bench.main(
        [
            "--n", "2000",
            "--future", "5000",
            "--naive-n", "300",
            "--steady-n", "200",
            "--steady-spread", "2",
            "--tick-samples", "5",
        ]
    )  # fmt: skip

    last_line = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(last_line)
    assert set(REQUIRED) <= set(result)
    assert (result["lost"], result["duplicates"], result["not_sent"], result["seq_gaps"]) == (
        0,
        0,
        0,
        0,
    )
    assert (result["naive_lost"], result["naive_duplicates"]) == (0, 0)
    assert result["naive_complete"] is True
    assert result["n"] == 2000
    assert result["naive_n"] == 300

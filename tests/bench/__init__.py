"""Benchmarks of the reminder runner (run by hand: `python -m tests.bench.runner_bench`)."""

from __future__ import annotations

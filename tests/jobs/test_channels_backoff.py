"""Retry backoff: exponential ceilings with full jitter, capped, reproducible with a seeded rng."""

from __future__ import annotations

import itertools
import random
from datetime import timedelta

from service.reminders.channels import http_result
from service.reminders.retry import backoff_delay


def test_delays_stay_under_an_exponential_ceiling(settings):
    rng = random.Random(20270104)
    for attempt in range(1, 12):
        ceiling = min(3600.0, 60.0 * 2 ** (attempt - 1))
        delays = [backoff_delay(attempt, settings, rng).total_seconds() for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        # Jittered across the whole range, not bunched at one value.
        assert min(delays) < ceiling * 0.2
        assert max(delays) > ceiling * 0.8
        assert len(set(delays)) > 150


def test_typical_delay_grows_until_the_cap(settings):
    rng = random.Random(7)

    def mean(attempt):
        samples = [backoff_delay(attempt, settings, rng).total_seconds() for _ in range(400)]
        return sum(samples) / len(samples)

    means = [mean(attempt) for attempt in range(1, 8)]
    for earlier, later in itertools.pairwise(means):
        assert later > earlier * 1.6
    assert mean(30) < 3600 * 0.6


def test_seeded_rng_is_reproducible_and_settings_apply(settings):
    quick = settings.with_overrides(retry_base_delay_s=2, retry_max_delay_s=10)
    first = [backoff_delay(n, quick, random.Random(1)) for n in range(1, 8)]
    again = [backoff_delay(n, quick, random.Random(1)) for n in range(1, 8)]
    assert first == again
    assert all(timedelta(0) <= d <= timedelta(seconds=10) for d in first)
    assert backoff_delay(10_000, settings) <= timedelta(hours=1)
    assert backoff_delay(0, quick, random.Random(1)) <= timedelta(seconds=2)


def test_http_answers_are_classified():
    assert http_result(204).outcome == "sent"
    assert http_result(502).retryable
    assert http_result(429).retryable
    assert not http_result(422).retryable

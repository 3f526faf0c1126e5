"""The retry policy for failed deliveries: exponential backoff with full jitter."""

from __future__ import annotations

import random
from datetime import timedelta

from service.config import Settings

_RNG = random.Random()


def backoff_delay(attempt: int, settings: Settings, rng: random.Random | None = None) -> timedelta:
    """How long to wait after failed attempt number `attempt` (1 for the first failure).

    Full jitter: uniform between zero and base * 2**(attempt - 1), that ceiling capped at the
    maximum delay, so many failed reminders do not all come back at the same moment.
    """
    base = max(0.0, float(settings.retry_base_delay_s))
    cap = max(0.0, float(settings.retry_max_delay_s))
    exponent = min(max(attempt, 1) - 1, 62)
    ceiling = min(cap, base * (2**exponent))
    return timedelta(seconds=(rng or _RNG).uniform(0.0, ceiling))

"""Delivery channels behind one small interface: inbox, webhook, e-mail, push."""

from __future__ import annotations

from jobs.channels.base import (
    Channel,
    Outgoing,
    Result,
    backoff_delay,
    build_channels,
)

__all__ = ["Channel", "Outgoing", "Result", "backoff_delay", "build_channels"]

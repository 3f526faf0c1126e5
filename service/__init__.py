"""cd20-monitor: treatment plans, screening, dose schedules and reminders for anti-CD20 therapy."""

from __future__ import annotations


def create_app(settings=None, **overrides):  # type: ignore[no-untyped-def]
    """Build the Flask application (imported lazily so `service.*` stays free of Flask)."""
    from service.app import create_app as _create_app

    return _create_app(settings, **overrides)

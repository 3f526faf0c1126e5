"""Reading the console's plain HTML forms: typed values, or the per-field errors the API gives."""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Any

from flask import request

from service.errors import Conflict, ValidationFailed


class StaleForm(Conflict):
    code = "stale"
    title = "Someone else changed this since you opened the page"


class Form:
    """One submitted form; problems are collected, then raised together by `check()`."""

    def __init__(self) -> None:
        self.data = request.form
        self.problems: dict[str, list[str]] = {}

    def _missing(self, name: str) -> None:
        self.problems.setdefault(name, []).append("Missing data for required field.")

    def text(self, name: str, *, required: bool = False, max_length: int = 1000) -> str | None:
        value = (self.data.get(name) or "").strip()
        if not value:
            if required:
                self._missing(name)
            return None
        if len(value) > max_length:
            self.problems.setdefault(name, []).append(f"At most {max_length} characters.")
        return value

    def choice(self, name: str, options: tuple[str, ...], *, required: bool = True) -> str | None:
        value = self.text(name, required=required)
        if value is not None and value not in options:
            self.problems.setdefault(name, []).append(f"One of: {', '.join(options)}.")
        return value

    def integer(self, name: str, *, required: bool = False) -> int | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        try:
            return int(value)
        except ValueError:
            self.problems.setdefault(name, []).append("Not a valid integer.")
            return None

    def day(self, name: str, *, required: bool = False) -> date | None:
        value = self.text(name, required=required)
        if value is None:
            return None
        try:
            return date.fromisoformat(value)
        except ValueError:
            self.problems.setdefault(name, []).append("Not a valid date (YYYY-MM-DD).")
            return None

    def local_moment(self, name: str, zone: Any, *, required: bool = False) -> datetime | None:
        """A datetime-local field, read as the clinic's wall-clock time."""
        value = self.text(name, required=required)
        if value is None:
            return None
        try:
            return datetime.fromisoformat(value).replace(tzinfo=zone)
        except ValueError:
            self.problems.setdefault(name, []).append("Not a valid date and time.")
            return None

    def clock(self, name: str, on: date, zone: Any, *, required: bool = False) -> datetime | None:
        """A time field on a given day, in the clinic's zone."""
        value = self.text(name, required=required)
        if value is None:
            return None
        try:
            return datetime.combine(on, time.fromisoformat(value), tzinfo=zone)
        except ValueError:
            self.problems.setdefault(name, []).append("Not a valid time (HH:MM).")
            return None

    def flag(self, name: str) -> bool:
        return self.data.get(name) in ("on", "true", "1", "yes")

    def check(self) -> None:
        if self.problems:
            raise ValidationFailed(errors=self.problems)

    def check_version(self, current: int) -> None:
        """Optimistic concurrency: the form carries the version it was rendered from."""
        sent = self.data.get("version")
        if sent is not None and sent != str(current):
            raise StaleForm(
                "Someone else changed this since you opened the page. Nothing was saved; your "
                "entry is kept below: check the page and send it again.",
                current_version=current,
            )

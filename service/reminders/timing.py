"""When a patient's reminder fires: the preferred local time, moved out of quiet hours."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from service.core.wall_clock import to_utc


@dataclass(frozen=True)
class QuietHours:
    """A nightly period without notifications, e.g. 21:00-08:00 (may span midnight)."""

    start: time
    end: time

    def contains(self, at: time) -> bool:
        if self.start == self.end:
            return False
        if self.start < self.end:
            return self.start <= at < self.end
        return at >= self.start or at < self.end


def push_out_of_quiet_hours(instant: datetime, zone: str, quiet: QuietHours) -> datetime:
    """An instant inside the patient's quiet hours moves to the end of that quiet period."""
    tz = ZoneInfo(zone)
    local = instant.astimezone(tz)
    if not quiet.contains(local.time().replace(tzinfo=None)):
        return instant
    end_day = local.date()
    if quiet.start > quiet.end and local.time().replace(tzinfo=None) >= quiet.start:
        end_day += timedelta(days=1)
    return to_utc(end_day, quiet.end, zone)


def patient_fire_time(day: date, preferred: time, zone: str, quiet: QuietHours) -> datetime:
    """When a patient's reminder for `day` fires: preferred local time, outside quiet hours."""
    return push_out_of_quiet_hours(to_utc(day, preferred, zone), zone, quiet)

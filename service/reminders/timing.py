"""Wall-clock reminder times to UTC instants: DST gaps and folds, and quiet hours, on purpose."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

# The IANA database's geographic areas: a zone named Area/Location is a real place's clock.
REGION_AREAS = frozenset(
    {
        "Africa",
        "America",
        "Antarctica",
        "Arctic",
        "Asia",
        "Atlantic",
        "Australia",
        "Europe",
        "Indian",
        "Pacific",
    }
)


@cache
def _zone_names() -> frozenset[str]:
    regions = {name for name in available_timezones() if name.split("/")[0] in REGION_AREAS}
    return frozenset(regions | {"UTC"})


def is_known_time_zone(name: str) -> bool:
    """A region zone of the IANA database (Europe/Berlin), or UTC.

    Not `localtime` (the server's own clock), `Factory`, POSIX rules (EST5EDT), abbreviations
    (CET), fixed offsets (Etc/GMT+5) or legacy aliases (US/Eastern): none names where a patient
    or a clinic is, and some change with the server.
    """
    return name in _zone_names()


def exists(local: datetime) -> bool:
    """False for a wall-clock time inside a spring-forward gap (it never shows on a clock)."""
    round_trip = local.astimezone(UTC).astimezone(local.tzinfo)
    return round_trip.replace(tzinfo=None) == local.replace(tzinfo=None)


def to_utc(day: date, at: time, zone: str) -> datetime:
    """The instant a wall clock in `zone` shows `at` on `day`.

    In a spring-forward gap the time does not exist: we fire as far after the gap's start as
    `at` was, i.e. shifted forward by the gap (02:30 becomes 03:30), never before the intended
    time. In a fall-back fold the time shows twice: we fire at the first showing (fold=0), so the
    reminder is not an hour late.
    """
    # zoneinfo resolves fold=0 with the offset in force before a transition: in a fold that is
    # the first showing, in a gap it is exactly the forward shift by the gap's length.
    local = datetime.combine(day, at).replace(tzinfo=ZoneInfo(zone), fold=0)
    return local.astimezone(UTC)


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

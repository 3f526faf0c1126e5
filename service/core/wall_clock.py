"""Wall-clock dates and times in IANA zones: to UTC instants (DST gaps and folds), today, a day's
bounds, and a clinic's zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import utcnow
from service.errors import NotFound
from service.models import Clinic

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


def local_today(zone: str, now: datetime | None = None) -> date:
    """The calendar date a wall clock in `zone` shows at `now` (default: the current instant)."""
    return (now or utcnow()).astimezone(ZoneInfo(zone)).date()


def day_bounds(day: date, zone: str) -> tuple[datetime, datetime]:
    """The UTC instants at which `day` starts and ends on a wall clock in `zone`."""
    start = to_utc(day, time(0), zone)
    end = to_utc(day + timedelta(days=1), time(0), zone)
    return start, end


def clinic_zone(session: Session, clinic_id: int) -> str:
    """The clinic's IANA time zone name."""
    zone = session.scalar(select(Clinic.time_zone).where(Clinic.id == clinic_id))
    if zone is None:
        raise NotFound("Clinic not found")
    return zone


def clinic_today(session: Session, clinic_id: int, *, now: datetime | None = None) -> date:
    """Today's date on the clinic's wall clock."""
    return local_today(clinic_zone(session, clinic_id), now)

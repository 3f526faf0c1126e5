"""Reminder fire instants across DST transitions in real zones, and quiet hours."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

import pytest

from service.core.wall_clock import exists, to_utc
from service.reminders.timing import QuietHours, patient_fire_time, push_out_of_quiet_hours

NIGHT = QuietHours(time(21, 0), time(8, 0))


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    ("zone", "day", "at", "expected"),
    [
        # America/New_York 2027: forward on 14 March at 02:00, back on 7 November at 02:00.
        ("America/New_York", date(2027, 3, 13), time(9), utc(2027, 3, 13, 14)),
        ("America/New_York", date(2027, 3, 14), time(9), utc(2027, 3, 14, 13)),
        ("America/New_York", date(2027, 3, 14), time(2, 30), utc(2027, 3, 14, 7, 30)),
        ("America/New_York", date(2027, 11, 7), time(1, 30), utc(2027, 11, 7, 5, 30)),
        ("America/New_York", date(2027, 11, 7), time(9), utc(2027, 11, 7, 14)),
        # Europe/Berlin 2027: forward on 28 March at 02:00, back on 31 October at 03:00.
        ("Europe/Berlin", date(2027, 3, 28), time(2, 30), utc(2027, 3, 28, 1, 30)),
        ("Europe/Berlin", date(2027, 3, 28), time(9), utc(2027, 3, 28, 7)),
        ("Europe/Berlin", date(2027, 10, 31), time(2, 30), utc(2027, 10, 31, 0, 30)),
        ("Europe/Berlin", date(2027, 10, 31), time(9), utc(2027, 10, 31, 8)),
        # Australia/Sydney 2027: back on 4 April at 03:00, forward on 3 October at 02:00.
        ("Australia/Sydney", date(2027, 4, 4), time(2, 30), utc(2027, 4, 3, 15, 30)),
        ("Australia/Sydney", date(2027, 4, 4), time(9), utc(2027, 4, 3, 23)),
        ("Australia/Sydney", date(2027, 10, 3), time(2, 30), utc(2027, 10, 2, 16, 30)),
        ("Australia/Sydney", date(2027, 10, 3), time(9), utc(2027, 10, 2, 22)),
        # Asia/Kolkata has no DST: always +05:30.
        ("Asia/Kolkata", date(2027, 3, 14), time(9), utc(2027, 3, 14, 3, 30)),
        ("Asia/Kolkata", date(2027, 11, 7), time(9), utc(2027, 11, 7, 3, 30)),
        # Pacific/Chatham 2027: back on 4 April at 03:45, forward on 26 September at 02:45.
        ("Pacific/Chatham", date(2027, 4, 4), time(3), utc(2027, 4, 3, 13, 15)),
        ("Pacific/Chatham", date(2027, 4, 4), time(9), utc(2027, 4, 3, 20, 15)),
        ("Pacific/Chatham", date(2027, 9, 26), time(3), utc(2027, 9, 25, 14, 15)),
        ("Pacific/Chatham", date(2027, 9, 26), time(9), utc(2027, 9, 25, 19, 15)),
    ],
)
def test_wall_clock_to_utc(zone, day, at, expected):
    assert to_utc(day, at, zone) == expected


@pytest.mark.parametrize(
    ("zone", "day", "at"),
    [
        ("America/New_York", date(2027, 3, 14), time(2, 30)),
        ("Europe/Berlin", date(2027, 3, 28), time(2, 0)),
        ("Australia/Sydney", date(2027, 10, 3), time(2, 59)),
        ("Pacific/Chatham", date(2027, 9, 26), time(3, 0)),
    ],
)
def test_gap_times_never_fire_before_the_intended_time(zone, day, at):
    from zoneinfo import ZoneInfo

    local = datetime.combine(day, at).replace(tzinfo=ZoneInfo(zone))
    assert not exists(local)
    fired_local = to_utc(day, at, zone).astimezone(ZoneInfo(zone))
    assert fired_local.replace(tzinfo=None) > datetime.combine(day, at)


def test_reminder_in_quiet_hours_moves_to_their_end():
    late_evening = utc(2027, 6, 1, 20, 30)  # 22:30 in Berlin (CEST)
    assert push_out_of_quiet_hours(late_evening, "Europe/Berlin", NIGHT) == utc(2027, 6, 2, 6)
    early_morning = utc(2027, 6, 2, 4, 0)  # 06:00 in Berlin
    assert push_out_of_quiet_hours(early_morning, "Europe/Berlin", NIGHT) == utc(2027, 6, 2, 6)
    daytime = utc(2027, 6, 2, 10, 0)
    assert push_out_of_quiet_hours(daytime, "Europe/Berlin", NIGHT) == daytime


def test_quiet_hours_end_on_a_dst_morning_uses_that_mornings_offset():
    # 23:00 EST on 13 March 2027; quiet hours end at 08:00 EDT the next morning.
    evening = utc(2027, 3, 14, 4, 0)
    assert push_out_of_quiet_hours(evening, "America/New_York", NIGHT) == utc(2027, 3, 14, 12)


def test_daytime_quiet_hours_do_not_span_midnight():
    siesta = QuietHours(time(13, 0), time(15, 0))
    assert siesta.contains(time(14, 0))
    assert not siesta.contains(time(16, 0))
    assert not QuietHours(time(8, 0), time(8, 0)).contains(time(8, 0))


def test_preferred_time_inside_quiet_hours_is_pushed():
    assert patient_fire_time(date(2027, 6, 2), time(7, 0), "Europe/Berlin", NIGHT) == utc(
        2027, 6, 2, 6
    )
    assert patient_fire_time(date(2027, 6, 2), time(9, 0), "Europe/Berlin", NIGHT) == utc(
        2027, 6, 2, 7
    )

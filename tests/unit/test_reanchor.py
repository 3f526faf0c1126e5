"""Missed and late doses by the label: later doses count from the day given, in the regimen's
own unit (calendar months or weeks), never by a count of days (issue examples)."""

from __future__ import annotations

from datetime import date

from service.protocols.catalog import get_regimen
from service.protocols.schedule import plan_doses, reanchor_following


def _plan(code: str, start: date):
    regimen = get_regimen(code)
    settings = regimen.resolve_settings({})
    return regimen, settings, plan_doses(regimen, None, start, settings=settings)


def test_ocrelizumab_maintenance_missed_then_given_resets_six_months_from_the_day_given():
    regimen, settings, doses = _plan("ocrelizumab-iv", date(2027, 1, 4))
    due = next(d for d in doses if d.due_date == date(2027, 7, 4))
    moved = reanchor_following(
        regimen, None, doses, due.sequence, date(2027, 8, 20), settings=settings
    )
    following = next(d for d in moved if d.sequence == due.sequence + 1)
    assert following.due_date == date(2028, 2, 20)  # not 2028-01-04, not a day count


def test_ofatumumab_monthly_dose_given_late_counts_the_next_month_from_that_day():
    regimen, settings, doses = _plan("ofatumumab-sc", date(2026, 12, 31))
    due = next(d for d in doses if d.due_date == date(2027, 3, 28))
    moved = reanchor_following(
        regimen, None, doses, due.sequence, date(2027, 4, 7), settings=settings
    )
    after = [d.due_date for d in moved if d.sequence > due.sequence][:3]
    assert after == [date(2027, 5, 7), date(2027, 6, 7), date(2027, 7, 7)]


def test_ublituximab_given_ten_days_late_next_is_24_weeks_after_the_day_given():
    regimen, settings, doses = _plan("ublituximab-iv", date(2027, 1, 4))
    third = doses[2]
    given = date.fromordinal(third.due_date.toordinal() + 10)
    moved = reanchor_following(regimen, None, doses, third.sequence, given, settings=settings)
    nxt = moved[3]
    assert (nxt.due_date - given).days == 24 * 7


def test_the_minimum_interval_still_holds_after_a_late_day_15():
    regimen, settings, doses = _plan("ocrelizumab-iv", date(2027, 1, 4))
    # Day 15 given two months late: 6 months after Day 1 would be only 4 months after it.
    moved = reanchor_following(regimen, None, doses, 2, date(2027, 3, 18), settings=settings)
    assert moved[2].due_date == date(2027, 8, 18)  # 5 months (the minimum) after Day 15
    assert moved[3].due_date == date(2028, 2, 18)

from __future__ import annotations

from datetime import date

import pytest

from service.errors import NotFound, ValidationFailed
from service.protocols import (
    Interval,
    PlannedDose,
    check_minimum_interval,
    expected_chair_minutes,
    expected_infusion_minutes,
    extend_doses,
    get_regimen,
    hbv_monitoring_dates,
    monitoring_due_dates,
    plan_doses,
    shift_following,
)

# Expected dates below are counted by hand from the label tables (day_offset 0 = Day 1).


def _plan(
    code: str,
    start: date,
    variant: str | None = None,
    *,
    until: date | None = None,
    settings: dict[str, str] | None = None,
) -> list[PlannedDose]:
    """Plan with the chosen option names (defaults when None)."""
    regimen = get_regimen(code)
    values = regimen.resolve_settings(settings)
    return plan_doses(regimen, variant, start, settings=values, until=until)


def _dates(doses: list[PlannedDose]) -> list[tuple[int, date]]:
    return [(d.amount_mg, d.due_date) for d in doses]


# --- one test per dosing table --------------------------------------------------------------


def test_ocrelizumab_iv_label_table() -> None:
    doses = _plan("ocrelizumab-iv", date(2027, 1, 4))

    assert _dates(doses) == [
        (300, date(2027, 1, 4)),
        (300, date(2027, 1, 18)),  # Day 15
        (600, date(2027, 7, 4)),  # 6 months after infusion 1
        (600, date(2028, 1, 4)),
    ]
    assert [d.kind for d in doses] == ["initial", "initial", "maintenance", "maintenance"]
    assert [d.course for d in doses] == [1, 1, 2, 3]  # 300 + 300 is one course
    assert [d.sequence for d in doses] == [1, 2, 3, 4]
    assert [d.earliest_date for d in doses] == [
        None,
        date(2027, 1, 5),  # same course: order only
        date(2027, 6, 18),  # Day 15 (Jan 18) + 5 months
        date(2027, 12, 4),  # Jul 4 + 5 months
    ]


def test_ublituximab_label_table_counts_weeks() -> None:
    doses = _plan("ublituximab-iv", date(2027, 1, 4))

    assert _dates(doses) == [
        (150, date(2027, 1, 4)),
        (450, date(2027, 1, 18)),  # Day 15
        (450, date(2027, 6, 21)),  # + 168 days (24 weeks) from infusion 1
        (450, date(2027, 12, 6)),  # + 336 days (48 weeks)
    ]
    assert [d.course for d in doses] == [1, 1, 2, 3]
    assert doses[2].earliest_date == date(2027, 6, 18)  # Jan 18 + 5 months (EU SmPC)


def test_ocrelizumab_sc_is_920_mg_every_six_months() -> None:
    doses = _plan("ocrelizumab-sc", date(2027, 1, 4))

    assert _dates(doses) == [
        (920, date(2027, 1, 4)),
        (920, date(2027, 7, 4)),
        (920, date(2028, 1, 4)),
    ]
    assert [d.kind for d in doses] == ["initial", "maintenance", "maintenance"]


def test_ofatumumab_loading_then_monthly_for_twelve_months_without_week_3() -> None:
    doses = _plan("ofatumumab-sc", date(2027, 1, 4))

    expected = [date(2027, 1, 4), date(2027, 1, 11), date(2027, 1, 18), date(2027, 2, 1)]
    expected += [date(2027, m, 1) for m in range(3, 13)] + [date(2028, 1, 1)]
    assert [d.due_date for d in doses] == expected
    assert date(2027, 1, 25) not in expected  # day 21: no injection at week 3
    assert {d.amount_mg for d in doses} == {20}
    assert doses[0].kind == "initial"  # the supervised first injection
    assert {d.kind for d in doses[1:]} == {"self_injection"}
    assert [d.course for d in doses] == list(range(1, 16))  # every injection its own course


def test_ofatumumab_monthly_from_a_31st_keeps_the_month_end() -> None:
    doses = _plan("ofatumumab-sc", date(2027, 1, 3))  # day 28 = Jan 31

    monthly = [d.due_date for d in doses[3:]]
    assert monthly == [
        date(2027, 1, 31),
        date(2027, 2, 28),
        date(2027, 3, 31),
        date(2027, 4, 30),
        date(2027, 5, 31),
        date(2027, 6, 30),
        date(2027, 7, 31),
        date(2027, 8, 31),
        date(2027, 9, 30),
        date(2027, 10, 31),
        date(2027, 11, 30),
        date(2027, 12, 31),
    ]


def test_ofatumumab_monthly_from_a_31st_in_a_leap_year() -> None:
    doses = _plan("ofatumumab-sc", date(2028, 1, 3))

    assert [d.due_date for d in doses[3:6]] == [
        date(2028, 1, 31),
        date(2028, 2, 29),
        date(2028, 3, 31),
    ]


def test_rituximab_rifund_is_the_default_variant() -> None:
    doses = _plan("rituximab-iv", date(2027, 1, 4))

    assert _dates(doses) == [
        (1000, date(2027, 1, 4)),
        (500, date(2027, 7, 4)),
        (500, date(2028, 1, 4)),
    ]
    assert doses[1].earliest_date == date(2027, 4, 26)  # + 16 weeks (RA label anchor)


def test_rituximab_umea_switches_to_yearly_after_three_years() -> None:
    doses = _plan("rituximab-iv", date(2027, 1, 4), "umea", until=date(2032, 1, 4))

    assert _dates(doses) == [
        (1000, date(2027, 1, 4)),
        (500, date(2027, 7, 4)),
        (500, date(2028, 1, 4)),
        (500, date(2028, 7, 4)),
        (500, date(2029, 1, 4)),
        (500, date(2029, 7, 4)),
        (500, date(2030, 1, 4)),  # 36 months: last 6-monthly dose
        (500, date(2031, 1, 4)),  # then yearly, if stable
        (500, date(2032, 1, 4)),
    ]
    assert doses[6].rule_key == "maintenance_years_1_3"
    assert doses[7].rule_key == "maintenance_after_year_3"


def test_rituximab_hermes_is_one_course_of_two_infusions() -> None:
    doses = _plan("rituximab-iv", date(2027, 1, 4), "hermes", until=date(2032, 1, 4))

    assert _dates(doses) == [(1000, date(2027, 1, 4)), (1000, date(2027, 1, 18))]
    assert [d.course for d in doses] == [1, 1]


def test_rituximab_oslo_stops_after_four_maintenance_doses() -> None:
    doses = _plan("rituximab-iv", date(2027, 1, 4), "oslo", until=date(2032, 1, 4))

    assert _dates(doses) == [
        (1000, date(2027, 1, 4)),
        (500, date(2027, 7, 4)),
        (500, date(2028, 1, 4)),
        (500, date(2028, 7, 4)),
        (500, date(2029, 1, 4)),
    ]
    assert get_regimen("rituximab-iv").variant("oslo").end_note


def test_plan_always_shows_the_initial_course_and_first_maintenance() -> None:
    doses = _plan("ocrelizumab-iv", date(2027, 1, 4), until=date(2027, 1, 4))

    assert [d.due_date for d in doses] == [date(2027, 1, 4), date(2027, 1, 18), date(2027, 7, 4)]


def test_a_longer_horizon_setting_plans_further() -> None:
    regimen = get_regimen("ocrelizumab-sc")
    settings = regimen.resolve_settings({"schedule_horizon_months": "twenty_four_months"})

    doses = plan_doses(regimen, None, date(2027, 1, 4), settings=settings)

    assert doses[-1].due_date == date(2029, 1, 4)


# --- month ends and leap years ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "first_maintenance"),
    [
        (date(2027, 8, 31), date(2028, 2, 29)),  # leap year
        (date(2026, 8, 31), date(2027, 2, 28)),
    ],
)
def test_six_months_from_a_31st_clips_to_the_end_of_february(
    start: date, first_maintenance: date
) -> None:
    doses = _plan("ocrelizumab-iv", start)

    assert doses[2].due_date == first_maintenance


# --- minimum interval -------------------------------------------------------------------------


def test_ocrelizumab_five_months_is_the_default_minimum() -> None:
    regimen = get_regimen("ocrelizumab-iv")
    settings = regimen.resolve_settings(None)

    def check(proposed: date) -> date | None:
        return check_minimum_interval(
            regimen,
            settings,
            date(2027, 1, 18),
            proposed,
            same_course=False,
            previous_date=date(2027, 1, 18),
        )

    assert check(date(2027, 6, 17)) == date(2027, 6, 18)
    assert check(date(2027, 6, 18)) is None


def test_ocrelizumab_twenty_weeks_option() -> None:
    regimen = get_regimen("ocrelizumab-iv")
    settings = regimen.resolve_settings({"min_interval": "twenty_weeks"})

    def check(proposed: date) -> date | None:
        return check_minimum_interval(
            regimen,
            settings,
            date(2027, 1, 18),
            proposed,
            same_course=False,
            previous_date=date(2027, 1, 18),
        )

    assert check(date(2027, 6, 6)) == date(2027, 6, 7)  # Jan 18 + 140 days
    assert check(date(2027, 6, 7)) is None
    doses = plan_doses(regimen, None, date(2027, 1, 4), settings=settings)
    assert doses[2].earliest_date == date(2027, 6, 7)


def test_option_names_are_accepted_in_place_of_resolved_values() -> None:
    regimen = get_regimen("ocrelizumab-iv")

    earliest = check_minimum_interval(
        regimen,
        {"min_interval": "twenty_weeks"},
        date(2027, 1, 18),
        date(2027, 6, 1),
        same_course=False,
        previous_date=date(2027, 1, 18),
    )

    assert earliest == date(2027, 6, 7)


def test_within_a_course_only_the_order_is_checked() -> None:
    regimen = get_regimen("ocrelizumab-iv")
    settings = regimen.resolve_settings(None)

    def check(proposed: date) -> date | None:
        return check_minimum_interval(
            regimen, settings, None, proposed, same_course=True, previous_date=date(2027, 1, 4)
        )

    assert check(date(2027, 1, 10)) is None
    assert check(date(2027, 1, 4)) == date(2027, 1, 5)


def test_ublituximab_five_months() -> None:
    regimen = get_regimen("ublituximab-iv")
    settings = regimen.resolve_settings(None)

    earliest = check_minimum_interval(
        regimen,
        settings,
        date(2027, 1, 18),
        date(2027, 6, 1),
        same_course=False,
        previous_date=date(2027, 1, 18),
    )

    assert earliest == date(2027, 6, 18)


def test_ofatumumab_has_no_minimum_interval_only_order() -> None:
    regimen = get_regimen("ofatumumab-sc")
    settings = regimen.resolve_settings(None)

    def check(proposed: date) -> date | None:
        return check_minimum_interval(
            regimen,
            settings,
            date(2027, 2, 1),
            proposed,
            same_course=False,
            previous_date=date(2027, 2, 1),
        )

    assert regimen.min_interval(settings) is None
    assert check(date(2027, 2, 2)) is None
    assert check(date(2027, 2, 1)) == date(2027, 2, 2)
    doses = plan_doses(regimen, None, date(2027, 1, 4), settings=settings)
    assert doses[3].earliest_date == date(2027, 1, 19)  # day after the week-2 injection


def test_rituximab_none_option_checks_order_only() -> None:
    regimen = get_regimen("rituximab-iv")
    settings = regimen.resolve_settings({"min_interval": "none"})

    earliest = check_minimum_interval(
        regimen,
        settings,
        date(2027, 1, 4),
        date(2027, 2, 1),
        same_course=False,
        previous_date=date(2027, 1, 4),
    )

    assert earliest is None


# --- shifting and extending -------------------------------------------------------------------


def test_shift_following_moves_later_doses_by_the_same_days() -> None:
    regimen = get_regimen("ocrelizumab-iv")
    settings = regimen.resolve_settings(None)
    doses = plan_doses(regimen, None, date(2027, 1, 4), settings=settings, until=date(2028, 7, 4))

    shifted = shift_following(doses, 3, date(2027, 7, 14), regimen=regimen, settings=settings)

    assert [d.due_date for d in shifted] == [
        date(2027, 1, 4),
        date(2027, 1, 18),
        date(2027, 7, 14),
        date(2028, 1, 14),
        date(2028, 7, 14),
    ]
    assert shifted[:2] == doses[:2]
    assert shifted[2].earliest_date == date(2027, 6, 18)  # still from Day 15
    assert shifted[3].earliest_date == date(2027, 12, 14)  # Jul 14 + 5 months
    assert shifted[4].earliest_date == date(2028, 6, 14)


def test_shift_following_backwards_without_regimen_keeps_gaps() -> None:
    doses = _plan("ofatumumab-sc", date(2027, 1, 4))

    shifted = shift_following(doses, 4, date(2027, 1, 29))  # Feb 1 -> Jan 29: 3 days earlier

    assert shifted[3].due_date == date(2027, 1, 29)
    assert shifted[3].earliest_date == date(2027, 1, 19)  # its predecessor did not move
    assert shifted[4].due_date == date(2027, 2, 26)  # Mar 1 - 3 days
    assert shifted[4].earliest_date == date(2027, 1, 30)  # day after the moved dose
    assert shifted[-1].due_date == date(2027, 12, 29)


def test_shift_following_unknown_sequence() -> None:
    with pytest.raises(ValueError, match="sequence 99"):
        shift_following(_plan("ofatumumab-sc", date(2027, 1, 4)), 99, date(2027, 1, 1))


def test_extend_doses_continues_exactly_like_plan_doses() -> None:
    regimen = get_regimen("ofatumumab-sc")
    settings = regimen.resolve_settings(None)
    first_year = plan_doses(regimen, None, date(2027, 1, 3), settings=settings)

    new = extend_doses(regimen, None, first_year, settings=settings, until=date(2029, 1, 3))

    two_years = plan_doses(
        regimen, None, date(2027, 1, 3), settings=settings, until=date(2029, 1, 3)
    )
    assert new == two_years[len(first_year) :]
    assert [d.due_date for d in new[:3]] == [
        date(2028, 1, 31),
        date(2028, 2, 29),
        date(2028, 3, 31),
    ]
    assert new[0].sequence == len(first_year) + 1


def test_extend_doses_across_umea_phase_switch() -> None:
    regimen = get_regimen("rituximab-iv")
    settings = regimen.resolve_settings(None)
    existing = plan_doses(regimen, "umea", date(2027, 1, 4), settings=settings)

    new = extend_doses(regimen, "umea", existing, settings=settings, until=date(2032, 1, 4))

    full = plan_doses(regimen, "umea", date(2027, 1, 4), settings=settings, until=date(2032, 1, 4))
    assert existing + new == full


def test_extend_doses_continues_from_shifted_stored_doses() -> None:
    regimen = get_regimen("ofatumumab-sc")
    settings = regimen.resolve_settings(None)
    doses = plan_doses(regimen, None, date(2027, 1, 4), settings=settings)
    stored = shift_following(doses, 5, date(2027, 3, 4))  # Mar 1 given 3 days late

    new = extend_doses(regimen, None, stored, settings=settings, until=date(2028, 4, 10))

    assert stored[-1].due_date == date(2028, 1, 4)
    assert [(d.sequence, d.due_date) for d in new] == [
        (16, date(2028, 2, 4)),
        (17, date(2028, 3, 4)),
        (18, date(2028, 4, 4)),
    ]
    assert new[0].earliest_date == date(2028, 1, 5)


def test_extend_doses_after_a_finished_schedule_is_empty() -> None:
    regimen = get_regimen("rituximab-iv")
    settings = regimen.resolve_settings(None)
    existing = plan_doses(
        regimen, "oslo", date(2027, 1, 4), settings=settings, until=date(2035, 1, 1)
    )

    assert extend_doses(regimen, "oslo", existing, settings=settings, until=date(2040, 1, 1)) == []


def test_extend_doses_rejects_doses_of_another_variant() -> None:
    regimen = get_regimen("rituximab-iv")
    settings = regimen.resolve_settings(None)
    hermes = plan_doses(regimen, "hermes", date(2027, 1, 4), settings=settings)

    with pytest.raises(ValueError, match="plans 'induction'"):
        extend_doses(regimen, "rifund", hermes, settings=settings, until=date(2029, 1, 1))


# --- settings ---------------------------------------------------------------------------------


def test_unknown_setting_option_is_refused() -> None:
    regimen = get_regimen("ocrelizumab-iv")

    with pytest.raises(ValidationFailed) as info:
        regimen.resolve_settings({"min_interval": "three_weeks"})

    assert "min_interval" in info.value.errors["settings"]


def test_unknown_setting_name_is_refused() -> None:
    with pytest.raises(ValidationFailed) as info:
        get_regimen("ofatumumab-sc").resolve_settings({"loading_interval": "none"})

    assert "loading_interval" in info.value.errors["settings"]


def test_unknown_setting_option_is_refused_by_plan_doses() -> None:
    with pytest.raises(ValidationFailed):
        _plan("ocrelizumab-iv", date(2027, 1, 4), settings={"min_interval": "six_weeks"})


def test_unknown_variant_and_regimen() -> None:
    with pytest.raises(ValidationFailed) as info:
        _plan("rituximab-iv", date(2027, 1, 4), "stockholm")
    assert "variant" in info.value.errors

    with pytest.raises(NotFound):
        get_regimen("natalizumab-iv")


# --- monitoring and chair time ----------------------------------------------------------------


def test_monitoring_for_ocrelizumab() -> None:
    regimen = get_regimen("ocrelizumab-iv")
    settings = regimen.resolve_settings(None)
    start = date(2027, 1, 4)
    doses = plan_doses(regimen, None, start, settings=settings)

    tasks = monitoring_due_dates(
        regimen, doses, start, settings=settings, anti_hbc_positive=False, until=date(2028, 1, 4)
    )

    assert tasks == [
        ("cbc", date(2027, 1, 4)),  # blood count at baseline (issue 8)
        ("ig_quant", date(2027, 6, 20)),  # 14 days before Jul 4
        ("cbc", date(2027, 7, 4)),  # and every 6 months
        ("mri", date(2027, 7, 4)),  # re-baseline at 6 months
        ("ig_quant", date(2027, 12, 21)),  # 14 days before Jan 4
        ("cbc", date(2028, 1, 4)),
    ]


def test_hbv_monitoring_follows_the_pathway_not_the_plan_start() -> None:
    # Issue 8: HBV DNA and ALT come from the hepatitis B pathway (hbv_monitoring_dates, at the
    # consult's cadence from the baseline), no longer every 6 months from the plan's start.
    regimen = get_regimen("ocrelizumab-iv")
    settings = regimen.resolve_settings({"ig_quant_lead_days": "seven_days"})
    start = date(2027, 1, 4)
    doses = plan_doses(regimen, None, start, settings=settings)

    tasks = monitoring_due_dates(
        regimen, doses, start, settings=settings, anti_hbc_positive=True, until=date(2028, 7, 4)
    )

    assert not [t for t in tasks if t[0] in ("hbv_dna", "alt")]
    assert settings["hbv_dna_interval"] == Interval(months=3)
    pathway = hbv_monitoring_dates(
        regimen, baseline=date(2026, 12, 20), every=Interval(months=3), until=date(2027, 9, 20)
    )
    assert pathway == [
        ("alt", date(2027, 3, 20)),
        ("hbv_dna", date(2027, 3, 20)),
        ("alt", date(2027, 6, 20)),
        ("hbv_dna", date(2027, 6, 20)),
        ("alt", date(2027, 9, 20)),
        ("hbv_dna", date(2027, 9, 20)),
    ]
    assert ("ig_quant", date(2027, 6, 27)) in tasks  # 7-day lead option
    assert ("mri", date(2028, 7, 4)) in tasks  # then every 12 months
    assert [t[1] for t in tasks] == sorted(t[1] for t in tasks)


def test_ofatumumab_immunoglobulins_every_six_months_not_monthly() -> None:
    regimen = get_regimen("ofatumumab-sc")
    settings = regimen.resolve_settings(None)
    start = date(2027, 1, 4)
    doses = plan_doses(regimen, None, start, settings=settings)

    tasks = monitoring_due_dates(
        regimen, doses, start, settings=settings, anti_hbc_positive=False, until=date(2028, 1, 4)
    )

    assert [t for t in tasks if t[0] == "ig_quant"] == [
        ("ig_quant", date(2027, 7, 4)),
        ("ig_quant", date(2028, 1, 4)),
    ]


def test_expected_chair_minutes() -> None:
    ocr = _plan("ocrelizumab-iv", date(2027, 1, 4))
    ubl = _plan("ublituximab-iv", date(2027, 1, 4))
    sc = _plan("ocrelizumab-sc", date(2027, 1, 4))

    # Infusion time from the catalog's rate tables + observation (issue 8: chair time is
    # computed from the rates; infusions 1 and 2 of ocrelizumab run 159 min by the label's
    # table, a little over its ">= 2.5 h").
    ocrelizumab = get_regimen("ocrelizumab-iv")
    assert [expected_chair_minutes(ocrelizumab, d) for d in ocr] == [
        159 + 60,
        159 + 60,
        210 + 60,
        210 + 60,
    ]
    # The shorter option: 15 + 15 + 30 + 60 min at 100/200/250/300 mL/h.
    assert expected_chair_minutes(ocrelizumab, ocr[2], option="short_2h") == 120 + 60
    ublituximab = get_regimen("ublituximab-iv")
    assert [expected_chair_minutes(ublituximab, d) for d in ubl] == [
        240 + 60,
        60 + 60,
        60,
        60,
    ]
    # From the third infusion: the hour of observation after any earlier reaction.
    assert expected_chair_minutes(ublituximab, ubl[2], had_reaction=True) == 60 + 60
    assert [expected_chair_minutes(get_regimen("ocrelizumab-sc"), d) for d in sc] == [70, 25, 25]
    rtx = _plan("rituximab-iv", date(2027, 1, 4))
    rituximab = get_regimen("rituximab-iv")
    # mg/h rates: 1000 mg at 50 mg/h raised by 50 every 30 min to 400 takes 255 min, but the
    # observation after it is unconfirmed, so no chair time.
    assert expected_infusion_minutes(rituximab, rtx[0]) == 255
    assert expected_infusion_minutes(rituximab, rtx[1]) == 120
    assert expected_chair_minutes(rituximab, rtx[0]) is None
    ofa = _plan("ofatumumab-sc", date(2027, 1, 4))
    assert expected_chair_minutes(get_regimen("ofatumumab-sc"), ofa[0]) is None

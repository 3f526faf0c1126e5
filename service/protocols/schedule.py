"""Pure dose and monitoring date arithmetic over the regimen catalog: no database, no Flask."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any

from service.protocols.catalog import DoseRule, Interval, Regimen, Variant

ONE_DAY = timedelta(days=1)


@dataclass(frozen=True)
class PlannedDose:
    sequence: int  # 1-based
    course: int
    kind: str
    amount_mg: int
    due_date: date
    earliest_date: date | None
    rule_key: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "sequence": self.sequence,
            "course": self.course,
            "kind": self.kind,
            "amount_mg": self.amount_mg,
            "due_date": self.due_date.isoformat(),
            "earliest_date": self.earliest_date.isoformat() if self.earliest_date else None,
            "rule_key": self.rule_key,
        }


def _iter_plan(variant: Variant, start: date) -> Iterator[PlannedDose]:
    """Yield the variant's doses in date order (earliest_date unset); endless if the last rule is.

    A repeating rule counts calendar periods from its own first dose (ofatumumab: monthly from
    the week-4 dose; ocrelizumab: 6-monthly from the first 600 mg), so a 31st stays a 31st
    wherever the month allows instead of drifting to the 28th.
    """
    last_date: dict[str, date] = {}
    sequence = course = 0
    for rule in variant.doses:
        if rule.day_offset is not None:
            assert rule.course is not None
            sequence, course = sequence + 1, rule.course
            due = start + timedelta(days=rule.day_offset)
            last_date[rule.key] = due
            yield PlannedDose(sequence, course, rule.kind, rule.amount_mg, due, None, rule.key)
            continue
        assert rule.first_due is not None
        assert rule.repeat is not None
        anchor = last_date.get(rule.first_due.after)
        if anchor is None:  # the anchoring phase produced no dose: nothing can follow
            return
        first = rule.first_due.interval.add_to(anchor)
        end = rule.duration.add_to(start) if rule.duration is not None else None
        n = 0
        while rule.count is None or n < rule.count:
            due = rule.repeat.times(n).add_to(first)
            if end is not None and due > end:
                break
            sequence, course, n = sequence + 1, course + 1, n + 1
            last_date[rule.key] = due
            yield PlannedDose(sequence, course, rule.kind, rule.amount_mg, due, None, rule.key)


def _with_earliest(
    doses: Sequence[PlannedDose], min_interval: Interval | None, *, start: int = 0
) -> list[PlannedDose]:
    """Recompute earliest_date for doses[start:] from the dates before them."""
    result = list(doses)
    for i in range(start, len(result)):
        dose = result[i]
        if i == 0:
            result[i] = replace(dose, earliest_date=None)
            continue
        previous = result[i - 1]
        earliest = previous.due_date + ONE_DAY
        starts_course = dose.course != previous.course
        if starts_course and min_interval is not None:
            # `previous` is the last dose of the previous course: the interval runs from it
            # (ocrelizumab's Day 15 infusion, not Day 1), the stricter reading.
            earliest = max(earliest, min_interval.add_to(previous.due_date))
        result[i] = replace(dose, earliest_date=earliest)
    return result


def _rule(regimen: Regimen, key: str) -> DoseRule | None:
    # A PlannedDose does not carry its variant; keys are looked up default variant first.
    for candidate in (regimen.variants[regimen.default_variant], *regimen.variants.values()):
        for rule in candidate.doses:
            if rule.key == key:
                return rule
    return None


def plan_doses(
    regimen: Regimen,
    variant_code: str | None,
    start_date: date,
    *,
    settings: Mapping[str, Any],
    until: date | None = None,
) -> list[PlannedDose]:
    """Every dose due on or before `until` (default: start + schedule_horizon_months).

    The initial fixed-day doses and the first repeating dose are always included, so a preview
    always shows when maintenance begins; a count or duration limit ends the list.
    """
    variant = regimen.variant(variant_code)
    if until is None:
        until = Interval(months=regimen.horizon_months(settings)).add_to(start_date)
    doses: list[PlannedDose] = []
    repeating_seen = False
    for dose in _iter_plan(variant, start_date):
        rule = variant.rule(dose.rule_key)
        always = rule.day_offset is not None or (rule.repeating and not repeating_seen)
        repeating_seen = repeating_seen or rule.repeating
        if dose.due_date > until and not always:
            break
        doses.append(dose)
    return _with_earliest(doses, regimen.min_interval(settings))


def extend_doses(
    regimen: Regimen,
    variant_code: str | None,
    existing: Sequence[PlannedDose],
    *,
    settings: Mapping[str, Any],
    until: date,
) -> list[PlannedDose]:
    """The doses after `existing` that fall due on or before `until`.

    The stored doses may have been shifted; shift_following moves every later dose by the same
    number of days, so the new doses continue the plan moved by the last stored dose's shift.
    """
    if not existing:
        raise ValueError("extend_doses needs at least the first stored dose")
    variant = regimen.variant(variant_code)
    stored = sorted(existing, key=lambda d: d.sequence)
    plan = _iter_plan(variant, stored[0].due_date)
    planned: list[PlannedDose] = []
    for dose in stored:
        step = next(plan, None)
        if step is None:  # the variant's schedule already ended (e.g. Oslo after 4 doses)
            return []
        if step.rule_key != dose.rule_key:
            raise ValueError(
                f"stored dose {dose.sequence} is '{dose.rule_key}', "
                f"but variant '{variant.code}' plans '{step.rule_key}' there"
            )
        planned.append(step)
    last, planned_last = stored[-1], planned[-1]
    shift = last.due_date - planned_last.due_date
    sequence_offset = last.sequence - planned_last.sequence
    course_offset = last.course - planned_last.course
    new: list[PlannedDose] = []
    for step in plan:
        due = step.due_date + shift
        if due > until:
            break
        new.append(
            replace(
                step,
                sequence=step.sequence + sequence_offset,
                course=step.course + course_offset,
                due_date=due,
            )
        )
    if not new:
        return []
    # Count the new doses from the last stored one in the regimen's own unit (calendar months
    # stay calendar months), the way a dose given late resets the schedule.
    combined = reanchor_following(
        regimen, variant_code, [*stored, *new], last.sequence, last.due_date, settings=settings
    )
    return [dose for dose in combined[len(stored) :] if dose.due_date <= until]


def reanchor_following(
    regimen: Regimen,
    variant_code: str | None,
    doses: Sequence[PlannedDose],
    sequence: int,
    new_date: date,
    *,
    settings: Mapping[str, Any],
) -> list[PlannedDose]:
    """Put dose `sequence` on new_date and count every later dose from it, by the catalog.

    The labels count the next dose from the dose actually given, in their own unit: ocrelizumab
    "6 months after the missed dose is administered", ofatumumab monthly "at the recommended
    intervals", ublituximab "24 weeks after the missed dose was given". So a repeating dose is
    new_date plus n calendar periods (never a count of days), a fixed-day dose keeps its label
    day offset from the one before it, and a new phase starts from its anchor's latest date.
    The minimum interval still holds: a course that would come too soon moves to its earliest
    allowed date and the periods after it count from there.
    """
    variant = regimen.variant(variant_code)

    def rule_of(key: str) -> DoseRule | None:
        try:
            return variant.rule(key)
        except KeyError:
            return _rule(regimen, key)

    ordered = sorted(doses, key=lambda d: d.sequence)
    index = next((i for i, d in enumerate(ordered) if d.sequence == sequence), None)
    if index is None:
        raise ValueError(f"no dose with sequence {sequence}")
    shift = new_date - ordered[index].due_date
    result = [*ordered[:index], replace(ordered[index], due_date=new_date)]
    last_date = {d.rule_key: d.due_date for d in result}
    runs: dict[str, tuple[date, int]] = {}  # repeating rule -> (run anchor, periods since)
    given_rule = rule_of(result[-1].rule_key)
    if given_rule is not None and given_rule.repeating:
        runs[given_rule.key] = (new_date, 0)
    min_interval = regimen.min_interval(settings)
    for dose in ordered[index + 1 :]:
        previous = result[-1]
        rule, previous_rule = rule_of(dose.rule_key), rule_of(previous.rule_key)
        run: tuple[date, int] | None = None
        if rule is None:
            due = dose.due_date + shift
        elif rule.day_offset is not None:
            if previous_rule is not None and previous_rule.day_offset is not None:
                due = previous.due_date + timedelta(days=rule.day_offset - previous_rule.day_offset)
            else:
                due = dose.due_date + shift
        elif rule.key in runs and previous.rule_key == rule.key:
            assert rule.repeat is not None
            anchor, periods = runs[rule.key]
            due = rule.repeat.times(periods + 1).add_to(anchor)
            run = (anchor, periods + 1)
        else:
            assert rule.first_due is not None
            anchor_date = last_date.get(rule.first_due.after)
            due = (
                rule.first_due.interval.add_to(anchor_date)
                if anchor_date is not None
                else dose.due_date + shift
            )
            run = (due, 0)
        earliest = previous.due_date + ONE_DAY
        if dose.course != previous.course and min_interval is not None:
            earliest = max(earliest, min_interval.add_to(previous.due_date))
        if due < earliest:
            due, run = earliest, (earliest, 0)
        if rule is not None and run is not None:
            runs[rule.key] = run
        result.append(replace(dose, due_date=due))
        last_date[dose.rule_key] = due
    return _with_earliest(result, min_interval, start=index)


def shift_following(
    doses: Sequence[PlannedDose],
    sequence: int,
    new_date: date,
    *,
    regimen: Regimen | None = None,
    settings: Mapping[str, Any] | None = None,
) -> list[PlannedDose]:
    """Move dose `sequence` to new_date and every later dose by the same number of days.

    The labels count the next dose from the dose actually given. With `regimen`, earliest dates
    from `sequence` on are recomputed from the minimum-interval setting; without it, each moved
    dose keeps its gap to its earliest date (exact for ordering, within a day or two for months).
    """
    ordered = sorted(doses, key=lambda d: d.sequence)
    index = next((i for i, d in enumerate(ordered) if d.sequence == sequence), None)
    if index is None:
        raise ValueError(f"no dose with sequence {sequence}")
    delta = new_date - ordered[index].due_date
    result = ordered[:index]
    result.append(replace(ordered[index], due_date=new_date))
    for dose in ordered[index + 1 :]:
        earliest = dose.earliest_date + delta if dose.earliest_date is not None else None
        result.append(replace(dose, due_date=dose.due_date + delta, earliest_date=earliest))
    if regimen is not None:
        result = _with_earliest(result, regimen.min_interval(settings or {}), start=index)
    return result


def check_minimum_interval(
    regimen: Regimen,
    settings: Mapping[str, Any],
    previous_course_last_date: date | None,
    proposed: date,
    *,
    same_course: bool,
    previous_date: date | None,
) -> date | None:
    """None if `proposed` is allowed, else the earliest allowed date.

    Within a course (ocrelizumab's Day 15) only the order is checked; a new course must also
    respect the minimum interval from the previous course's last dose, when one is set.
    """
    earliest = previous_date + ONE_DAY if previous_date is not None else None
    interval = regimen.min_interval(settings)
    if not same_course and previous_course_last_date is not None and interval is not None:
        by_interval = interval.add_to(previous_course_last_date)
        earliest = by_interval if earliest is None else max(earliest, by_interval)
    if earliest is not None and proposed < earliest:
        return earliest
    return None


def monitoring_due_dates(
    regimen: Regimen,
    doses: Sequence[PlannedDose],
    start_date: date,
    *,
    settings: Mapping[str, Any],
    anti_hbc_positive: bool,
    until: date,
) -> list[tuple[str, date]]:
    """(task kind, due date) for every monitoring rule due on or before `until`, by date."""
    values = regimen.setting_values(settings)
    due: list[tuple[str, date]] = []
    ordered = sorted(doses, key=lambda d: d.sequence)
    for rule in regimen.monitoring:
        if rule.condition == "anti_hbc_positive" and not anti_hbc_positive:
            continue
        if rule.condition == "hbv_pathway":
            continue  # hbv_monitoring_dates: the consult's cadence, from the baseline
        if rule.schedule == "before_maintenance_course":
            lead = timedelta(days=int(values[str(rule.lead_days_setting)]))
            for previous, dose in zip([None, *ordered], ordered, strict=False):
                starts_course = previous is None or previous.course != dose.course
                if starts_course and dose.kind == "maintenance":
                    due.append((rule.kind, dose.due_date - lead))
            continue
        every = rule.every if rule.every is not None else values[str(rule.every_setting)]
        if rule.baseline:
            due.append((rule.kind, start_date))
        first = (rule.first_due or every).add_to(start_date)
        n = 0
        while (when := every.times(n).add_to(first)) <= until:
            due.append((rule.kind, when))
            n += 1
    return sorted((item for item in due if item[1] <= until), key=lambda item: (item[1], item[0]))


def hbv_monitoring_dates(
    regimen: Regimen, *, baseline: date, every: Interval, until: date
) -> list[tuple[str, date]]:
    """(task kind, due date) of the hepatitis B pathway's tests (HBV DNA, ALT): every `every`
    from the baseline HBV DNA, up to and including `until` (the planned stop)."""
    kinds = sorted(rule.kind for rule in regimen.monitoring if rule.condition == "hbv_pathway")
    due: list[tuple[str, date]] = []
    n = 1
    while (when := every.times(n).add_to(baseline)) <= until:
        due.extend((kind, when) for kind in kinds)
        n += 1
    return due


def expected_infusion_minutes(
    regimen: Regimen, dose: PlannedDose, *, option: str | None = None
) -> int | None:
    """How long the dose's infusion runs by the catalog's rates (the chosen option's), else
    the label's stated minimum; None when a source states neither."""
    rule = _rule(regimen, dose.rule_key)
    if rule is None or rule.infusion is None:
        return None
    return rule.infusion.minutes(dose.amount_mg, option)


def expected_chair_minutes(
    regimen: Regimen,
    dose: PlannedDose,
    *,
    option: str | None = None,
    had_reaction: bool = False,
) -> int | None:
    """Infusion time plus the observation required after it; None when a source states
    neither number. `had_reaction`: the patient had an infusion reaction before (ublituximab
    then asks for the hour of observation from the third infusion on)."""
    minutes = expected_infusion_minutes(regimen, dose, option=option)
    if minutes is None:
        return None
    observation = regimen.observation.minutes_after(dose.sequence, had_reaction=had_reaction)
    if observation is None:
        return None
    return minutes + observation

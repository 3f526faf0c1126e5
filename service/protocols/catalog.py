"""Regimen catalog: the reviewable YAML files in catalog/, parsed, validated and cached."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import date
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import yaml
from dateutil.relativedelta import relativedelta

from service.errors import NotFound, ValidationFailed
from service.vocabulary import (
    ANSWERED_READINESS_CODES,
    RULE_OUTCOMES,
    DoseKind,
    ReadinessCode,
    values,
)

SCREENING_CODES = frozenset(
    {
        "hbsag",
        "anti_hbc",
        "ig_quant",
        "lft",
        "vaccines_live",
        "vaccines_nonlive",
        "active_infection",
        "pregnancy",
        "hcv",
        "hiv",
        "vzv_igg",
        "tb_igra",
        "hbv_dna",
        "hepatology_consult",
    }
)
# The hepatology consult's result is its decision (issue 8: prophylaxis | monitor | not_eligible).
CONSULT_DECISIONS = ("prophylaxis", "monitor", "not_eligible")
SCREENING_RESULTS = frozenset(
    {"negative", "positive", "indeterminate", "done", "low", "normal", "abnormal"}
    | set(CONSULT_DECISIONS)
)
# Items that only exist on the checklist when a hepatitis B marker is positive.
SCREENING_CONDITIONS = frozenset({"hbv_pathway"})
OUTCOMES = frozenset(RULE_OUTCOMES)
DOSE_KINDS = frozenset(values(DoseKind))
LABEL_STATUSES = frozenset({"approved", "off_label"})
STATUSES = frozenset({"confirmed", "unconfirmed", "conflict", "operational"})
MONITORING_SCHEDULES = frozenset({"before_maintenance_course", "periodic"})
MONITORING_CONDITIONS = frozenset({"anti_hbc_positive", "hbv_pathway"})
AFTER_STOP_UNTIL = frozenset({"clinician_ends", "end_date"})
RATE_UNITS = frozenset({"mL/h", "mg/h"})
INFUSION_REQUIREMENTS = frozenset({"no_prior_serious_reaction"})
SETTING_KINDS = frozenset({"interval", "integer", "flag"})
READINESS_CODES = frozenset(values(ReadinessCode))
# Which doses a readiness rule applies to.
READINESS_APPLIES = frozenset({"every_dose", "first_dose", "maintenance_course"})
READINESS_CONDITIONS = frozenset({"can_become_pregnant"})
# The schedule code reads these by name, so every regimen must declare them.
REQUIRED_SETTINGS = ("min_interval", "contraception_after_last_dose", "schedule_horizon_months")
# Ofatumumab is a rolling monthly schedule: a shorter horizon would leave patients without dates.
MIN_HORIZON_MONTHS = 12


class CatalogError(ValueError):
    """A catalog data file is malformed; the message names the file and the key."""


@dataclass(frozen=True)
class Interval:
    months: int = 0
    weeks: int = 0
    days: int = 0

    def _delta(self) -> relativedelta:
        # relativedelta applies months first and clips to the month's end (Jan 31 + 1 month =
        # Feb 28/29), then adds weeks and days: calendar months, as the labels count them.
        return relativedelta(months=self.months, weeks=self.weeks, days=self.days)

    def add_to(self, d: date) -> date:
        result: date = d + self._delta()
        return result

    def subtract_from(self, d: date) -> date:
        result: date = d - self._delta()
        return result

    def times(self, n: int) -> Interval:
        return Interval(months=self.months * n, weeks=self.weeks * n, days=self.days * n)

    def min_days(self) -> int:
        """The fewest days this interval can span (a month is at least 28 days)."""
        return self.months * 28 + self.weeks * 7 + self.days

    def as_dict(self) -> dict[str, int]:
        return {"months": self.months, "weeks": self.weeks, "days": self.days}


@dataclass(frozen=True)
class Statement:
    """A sourced piece of text; `text` is None when the reference could not confirm it."""

    text: str | None
    status: str
    source: str


@dataclass(frozen=True)
class RateStep:
    rate: int
    minutes: int


@dataclass(frozen=True)
class Rates:
    """How fast an infusion runs: fixed steps, or a start rate raised by `step` every
    `step_every_minutes` up to `max` (the labels' tables). `unit` is mL/h or mg/h."""

    unit: str
    source: str
    steps: tuple[RateStep, ...] = ()
    start: int | None = None
    step: int | None = None
    step_every_minutes: int | None = None
    max: int | None = None

    def minutes(self, amount: float | None) -> int | None:
        """Minutes to run `amount` (mL for mL/h, mg for mg/h) at these rates, rounded up;
        fixed steps need no amount."""
        if self.steps:
            return sum(step.minutes for step in self.steps)
        if amount is None or amount <= 0:
            return None
        start, step, every, top = self.start, self.step, self.step_every_minutes, self.max
        if start is None or step is None or every is None or top is None:
            return None  # the loader refuses such rates; never reached
        left, minutes, rate = float(amount), 0.0, start
        while rate < top:
            chunk = rate * every / 60
            if chunk >= left:
                return math.ceil(minutes + left / rate * 60)
            left -= chunk
            minutes += every
            rate = min(rate + step, top)
        return math.ceil(minutes + left / rate * 60)


@dataclass(frozen=True)
class InfusionOption:
    """A named alternative way to run a dose (e.g. ocrelizumab's shorter 2-hour infusion)."""

    label: str
    rates: Rates
    source: str
    requires: str | None = None  # no_prior_serious_reaction


@dataclass(frozen=True)
class Infusion:
    min_minutes: int | None
    source: str
    note: str | None = None
    volume_ml: int | None = None
    rates: Rates | None = None
    options: dict[str, InfusionOption] = field(default_factory=dict)

    def minutes(self, amount_mg: int, option: str | None = None) -> int | None:
        """How long the infusion runs: from its rates (the chosen option's, when one is named)
        when the catalog has them, else the label's stated minimum."""
        rates = self.options[option].rates if option in self.options else self.rates
        if rates is None:
            return self.min_minutes
        amount = self.volume_ml if rates.unit == "mL/h" else amount_mg
        computed = rates.minutes(amount)
        return computed if computed is not None else self.min_minutes


@dataclass(frozen=True)
class FirstDue:
    after: str  # key of the rule whose last dose anchors this one
    interval: Interval


@dataclass(frozen=True)
class DoseRule:
    key: str
    kind: str
    amount_mg: int
    source: str
    course: int | None = None  # fixed-day rules only; each repeat starts its own course
    day_offset: int | None = None  # 0 = the label's Day 1
    first_due: FirstDue | None = None
    repeat: Interval | None = None
    count: int | None = None
    duration: Interval | None = None  # counted from dose 1, inclusive
    condition: str | None = None
    infusion: Infusion | None = None
    note: str | None = None

    @property
    def repeating(self) -> bool:
        return self.repeat is not None


@dataclass(frozen=True)
class Variant:
    code: str
    label: str
    source: str
    doses: tuple[DoseRule, ...]
    end_note: str | None = None

    def rule(self, key: str) -> DoseRule:
        for rule in self.doses:
            if rule.key == key:
                return rule
        raise KeyError(key)

    @property
    def has_maintenance(self) -> bool:
        return any(rule.repeating for rule in self.doses)


@dataclass(frozen=True)
class Window:
    min: int | None
    max: int | None


@dataclass(frozen=True)
class Premedication:
    drug: str
    required: bool
    source: str
    dose_mg: int | None = None
    route: str | None = None
    minutes_before: Window | None = None
    note: str | None = None
    # Drug names on an administration record that count as this premedication (the catalog's
    # own name always does): "antihistamine" is given as diphenhydramine, cetirizine, ...
    accepts: tuple[str, ...] = ()

    def matches(self, drug: str) -> bool:
        name = drug.strip().lower()
        return name == self.drug.lower() or name in (a.lower() for a in self.accepts)


@dataclass(frozen=True)
class ReadinessRule:
    """One item of every dose's own checklist: which doses it applies to, how it is answered."""

    code: str
    label: str
    applies: str  # every_dose | first_dose | maintenance_course
    source: str
    allowed_results: tuple[str, ...] = ()  # answered items only
    outcomes: dict[str, str] = field(default_factory=dict)
    # A patient's "no symptoms" check-in answer clears it for a self-injection (the patient is
    # the one asked); for an infusion staff assess at the chair.
    patient_may_clear: bool = False
    condition: str | None = None
    note: str | None = None

    @property
    def answered(self) -> bool:
        return self.code in ANSWERED_READINESS_CODES

    def outcome_for(self, result: str) -> str:
        if result not in self.allowed_results:
            raise ValidationFailed(
                f"'{result}' is not a result for {self.code}",
                errors={"result": [f"must be one of: {', '.join(self.allowed_results)}"]},
            )
        return self.outcomes.get(result, "cleared")


@dataclass(frozen=True)
class Observation:
    first_doses: int  # how many doses count as "first" for the first_minutes value
    first_minutes: int | None
    later_minutes: int | None
    status: str
    source: str
    note: str | None = None

    # Later doses' minimum when the patient had an infusion reaction before (or in this one).
    later_minutes_after_reaction: int | None = None

    def minutes_after(self, sequence: int, *, had_reaction: bool = False) -> int | None:
        if sequence <= self.first_doses:
            return self.first_minutes
        if had_reaction and self.later_minutes_after_reaction is not None:
            return max(self.later_minutes or 0, self.later_minutes_after_reaction)
        return self.later_minutes

    def reads_reactions(self, sequence: int) -> bool:
        """Whether the patient's infusion reactions can change `minutes_after` for this dose."""
        return sequence > self.first_doses and self.later_minutes_after_reaction is not None


@dataclass(frozen=True)
class ReactionWindow:
    hours: int | None
    status: str
    source: str
    note: str | None = None


@dataclass(frozen=True)
class Contraindication:
    code: str
    text: str
    source: str
    jurisdiction: str | None = None


@dataclass(frozen=True)
class GivenBefore:
    """A result (a vaccine) counts only when dated at least `days` before the first dose."""

    days: int
    advisory: bool  # true: a shorter gap warns (the label's "whenever possible"), never blocks
    results: tuple[str, ...]  # the results whose date is the day the thing was given
    source: str


@dataclass(frozen=True)
class ScreeningRule:
    code: str
    label: str
    required: bool
    per_dose: bool
    allowed_results: tuple[str, ...]
    source: str
    outcomes: dict[str, str] = field(default_factory=dict)
    note: str | None = None
    # How many days before the first dose a result still clears: an integer setting's name
    # (no source states one, so it is a clinic setting); None = the result does not age.
    validity_setting: str | None = None
    validity_note: str | None = None
    given_before: GivenBefore | None = None
    # A flag setting that decides `required` where the label text is unconfirmed.
    required_setting: str | None = None
    condition: str | None = None
    # False: only the structured record clears it, never a clinician's free-text override.
    overridable: bool = True

    def outcome_for(self, result: str | None) -> str:
        if result is None:
            return "pending"
        if result not in self.allowed_results:
            raise ValidationFailed(
                f"'{result}' is not a result for {self.code}",
                errors={"result": [f"must be one of: {', '.join(self.allowed_results)}"]},
            )
        return self.outcomes.get(result, "cleared")


@dataclass(frozen=True)
class AfterStop:
    """Monitoring that goes on after the plan ends: every `every` (or the setting's value),
    counted from the last dose given, until a clinician ends it (`until: clinician_ends`, the
    reason being e.g. B-cell repletion) or until an end date someone records (`until:
    end_date`; open-ended until then)."""

    until: str
    reason: str
    source: str
    every: Interval | None = None
    every_setting: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class MonitoringRule:
    kind: str
    label: str
    schedule: str
    source: str
    first_due: Interval | None = None  # periodic: from the plan start; None = one period
    every: Interval | None = None
    every_setting: str | None = None
    lead_days_setting: str | None = None
    condition: str | None = None
    note: str | None = None
    # periodic: one task on the plan's start date too (a baseline test).
    baseline: bool = False
    after_stop: AfterStop | None = None


@dataclass(frozen=True)
class SettingOption:
    value: Any
    source: str
    note: str | None = None


@dataclass(frozen=True)
class Setting:
    name: str
    label: str
    kind: str
    status: str
    default: str
    options: dict[str, SettingOption]
    note: str | None = None


@dataclass(frozen=True)
class Regimen:
    code: str
    drug: str
    brand: str
    route: str
    label_status: str
    default_variant: str
    variants: dict[str, Variant]
    premedications: tuple[Premedication, ...]
    screening: tuple[ScreeningRule, ...]
    monitoring: tuple[MonitoringRule, ...]
    settings: dict[str, Setting]
    sources: tuple[str, ...]
    administration: Statement
    premedication_note: Statement | None
    observation: Observation
    delayed_reaction: ReactionWindow
    contraindications: tuple[Contraindication, ...]
    missed_dose: Statement
    readiness: tuple[ReadinessRule, ...] = ()

    def readiness_rule(self, code: str) -> ReadinessRule:
        for rule in self.readiness:
            if rule.code == code:
                return rule
        raise NotFound(
            f"{self.code} has no readiness item '{code}'",
            errors={"code": [f"must be one of: {', '.join(r.code for r in self.readiness)}"]},
        )

    def setting_value(self, settings: Mapping[str, Any] | None, name: str, default: Any) -> Any:
        """An optional setting's value (`default` when the regimen does not declare it)."""
        if name not in self.settings:
            return default
        return self.setting_values(settings)[name]

    def variant(self, code: str | None) -> Variant:
        if code is None:
            return self.variants[self.default_variant]
        try:
            return self.variants[code]
        except KeyError:
            raise ValidationFailed(
                f"unknown variant '{code}' for {self.code}",
                errors={"variant": [f"must be one of: {', '.join(sorted(self.variants))}"]},
            ) from None

    def resolve_settings(self, chosen: Mapping[str, str] | None) -> dict[str, Any]:
        """Map each setting to the value of the chosen option (the default when not chosen)."""
        chosen = chosen or {}
        problems: dict[str, list[str]] = {}
        for name in chosen:
            if name not in self.settings:
                problems[name] = [f"unknown setting for {self.code}"]
        values: dict[str, Any] = {}
        for name, setting in self.settings.items():
            option = chosen.get(name, setting.default)
            if option not in setting.options:
                problems[name] = [f"must be one of: {', '.join(setting.options)}"]
                continue
            values[name] = setting.options[option].value
        if problems:
            raise ValidationFailed("invalid regimen settings", errors={"settings": problems})
        return values

    def setting_values(self, settings: Mapping[str, Any] | None) -> dict[str, Any]:
        """Accept resolved values, option names, or a mix (missing -> default); return values."""
        settings = settings or {}
        names = {k: v for k, v in settings.items() if isinstance(v, str)}
        values = self.resolve_settings(names)
        for name, value in settings.items():
            if not isinstance(value, str):
                if name not in self.settings:
                    raise ValidationFailed(
                        "invalid regimen settings",
                        errors={"settings": {name: [f"unknown setting for {self.code}"]}},
                    )
                values[name] = value
        return values

    def min_interval(self, settings: Mapping[str, Any]) -> Interval | None:
        value: Interval | None = self.setting_values(settings)["min_interval"]
        return value

    def horizon_months(self, settings: Mapping[str, Any]) -> int:
        return int(self.setting_values(settings)["schedule_horizon_months"])

    def contraception_window(self, settings: Mapping[str, Any]) -> Interval | None:
        """How long after the last dose contraception is advised (the clinic's option)."""
        value: Interval | None = self.setting_values(settings)["contraception_after_last_dose"]
        return value

    def after_stop_months(self, rule: MonitoringRule, settings: Mapping[str, Any]) -> int | None:
        """The interval, in months, of a rule's monitoring after the plan ends (None: off)."""
        after = rule.after_stop
        if after is None:
            return None
        every = after.every or self.setting_values(settings)[str(after.every_setting)]
        return int(every.months) if every is not None else None

    @property
    def molecule(self) -> str:
        """The antibody itself ("ocrelizumab + hyaluronidase" is ocrelizumab): a history
        with one route of a molecule counts for its other routes."""
        return self.drug.split(" + ")[0].strip()

    def contraindicated_by(self, code: str) -> Contraindication | None:
        return next((c for c in self.contraindications if c.code == code), None)

    def screening_rule(self, code: str) -> ScreeningRule:
        for rule in self.screening:
            if rule.code == code:
                return rule
        raise NotFound(
            f"{self.code} has no screening item '{code}'",
            errors={"code": [f"must be one of: {', '.join(r.code for r in self.screening)}"]},
        )

    def as_dict(self) -> dict[str, Any]:
        result: dict[str, Any] = _jsonable(self)
        return result


def _jsonable(value: Any) -> Any:
    if isinstance(value, Interval):
        return value.as_dict()
    if is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in fields(value)}
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


# --- loading and validation -------------------------------------------------------------------


class _Node:
    """One YAML mapping being read; knows its file and key path so errors can name them."""

    def __init__(self, file: str, path: str, data: Any) -> None:
        self.file = file
        self.path = path
        if not isinstance(data, dict):
            raise self.error("expected a mapping")
        self.data: dict[str, Any] = data
        self._read: set[str] = set()

    def error(self, message: str, key: str | None = None) -> CatalogError:
        where = self._key_path(key) if key is not None else self.path or "<top>"
        return CatalogError(f"{self.file}: {where}: {message}")

    def _key_path(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def raw(self, key: str, *, required: bool = True) -> Any:
        self._read.add(key)
        if key not in self.data:
            if required:
                raise self.error("missing", key)
            return None
        return self.data[key]

    def text(self, key: str, *, required: bool = True) -> str | None:
        value = self.raw(key, required=required)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise self.error("expected a non-empty string", key)
        return value.strip()

    def req_text(self, key: str) -> str:
        value = self.text(key)
        assert value is not None
        return value

    def integer(
        self, key: str, *, required: bool = True, nullable: bool = False, minimum: int = 0
    ) -> int | None:
        """`nullable`: the key must be present, but `null` is allowed (write null when unstated)."""
        value = self.raw(key, required=required)
        if value is None and (nullable or not required):
            return None
        # bool is an int subclass: `true` must not pass as 1.
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.error(f"expected an integer >= {minimum}", key)
        return value

    def flag(self, key: str, *, required: bool = False) -> bool:
        value = self.raw(key, required=required)
        if value is None and not required:
            return False
        if not isinstance(value, bool):
            raise self.error("expected true or false", key)
        return value

    def choice(self, key: str, allowed: frozenset[str], *, required: bool = True) -> str | None:
        value = self.text(key, required=required)
        if value is not None and value not in allowed:
            raise self.error(f"'{value}' is not one of: {', '.join(sorted(allowed))}", key)
        return value

    def node(self, key: str, *, required: bool = True) -> _Node | None:
        value = self.raw(key, required=required)
        if value is None and not required:
            return None
        return _Node(self.file, self._key_path(key), value)

    def req_node(self, key: str) -> _Node:
        value = self.node(key)
        assert value is not None
        return value

    def node_list(self, key: str, *, required: bool = True) -> list[_Node]:
        value = self.raw(key, required=required)
        if value is None and not required:
            return []
        if not isinstance(value, list):
            raise self.error("expected a list", key)
        return [
            _Node(self.file, f"{self._key_path(key)}[{i}]", item) for i, item in enumerate(value)
        ]

    def children(self, key: str) -> dict[str, _Node]:
        parent = self.req_node(key)
        if not parent.data:
            raise self.error("expected at least one entry", key)
        parent._read.update(parent.data)
        return {
            str(name): _Node(self.file, f"{parent.path}.{name}", value)
            for name, value in parent.data.items()
        }

    def done(self) -> None:
        """Reject keys nobody read: a misspelt key must not be silently ignored."""
        unknown = sorted(set(self.data) - self._read)
        if unknown:
            raise self.error(f"unknown key(s): {', '.join(map(str, unknown))}")


def _interval(node: _Node) -> Interval:
    interval = Interval(
        months=node.integer("months", required=False) or 0,
        weeks=node.integer("weeks", required=False) or 0,
        days=node.integer("days", required=False) or 0,
    )
    node.done()
    if interval.min_days() <= 0:
        raise node.error("interval must be longer than zero")
    return interval


def _optional_interval(node: _Node, key: str) -> Interval | None:
    child = node.node(key, required=False)
    return _interval(child) if child is not None else None


def _statement(node: _Node) -> Statement:
    status = node.choice("status", STATUSES)
    text = node.text("text", required=status == "confirmed")
    result = Statement(text=text, status=str(status), source=node.req_text("source"))
    node.done()
    return result


def _rates(node: _Node) -> Rates:
    steps = []
    for step_node in node.node_list("steps", required=False):
        steps.append(
            RateStep(
                rate=int(step_node.integer("rate", minimum=1) or 0),
                minutes=int(step_node.integer("minutes", minimum=1) or 0),
            )
        )
        step_node.done()
    rates = Rates(
        unit=str(node.choice("unit", RATE_UNITS)),
        source=node.req_text("source"),
        steps=tuple(steps),
        start=node.integer("start", required=False, minimum=1),
        step=node.integer("step", required=False, minimum=1),
        step_every_minutes=node.integer("step_every_minutes", required=False, minimum=1),
        max=node.integer("max", required=False, minimum=1),
    )
    node.done()
    escalation = (rates.start, rates.step, rates.step_every_minutes, rates.max)
    if rates.steps and any(v is not None for v in escalation):
        raise node.error("either `steps` or start/step/step_every_minutes/max, not both")
    if not rates.steps and any(v is None for v in escalation):
        raise node.error("needs `steps`, or all of start, step, step_every_minutes and max")
    if rates.start is not None and rates.max is not None and rates.start > rates.max:
        raise node.error("start must not exceed max")
    return rates


def _infusion(node: _Node) -> Infusion:
    rates_node = node.node("rates", required=False)
    options: dict[str, InfusionOption] = {}
    options_node = node.node("options", required=False)
    if options_node is not None:
        options_node._read.update(options_node.data)
        for name, raw in options_node.data.items():
            child = _Node(node.file, f"{options_node.path}.{name}", raw)
            options[str(name)] = InfusionOption(
                label=child.req_text("label"),
                rates=_rates(child.req_node("rates")),
                source=child.req_text("source"),
                requires=child.choice("requires", INFUSION_REQUIREMENTS, required=False),
            )
            child.done()
    result = Infusion(
        min_minutes=node.integer("min_minutes", nullable=True, minimum=1),
        source=node.req_text("source"),
        note=node.text("note", required=False),
        volume_ml=node.integer("volume_ml", required=False, minimum=1),
        rates=_rates(rates_node) if rates_node is not None else None,
        options=options,
    )
    node.done()
    for rates in [result.rates, *(o.rates for o in options.values())]:
        if rates is not None and not rates.steps and rates.unit == "mL/h" and not result.volume_ml:
            raise node.error("escalating mL/h rates need volume_ml")
    return result


def _dose_rule(node: _Node) -> DoseRule:
    key = node.req_text("key")
    first_due_node = node.node("first_due", required=False)
    first_due = None
    if first_due_node is not None:
        after = first_due_node.req_text("after")
        interval = _interval(first_due_node)
        first_due = FirstDue(after=after, interval=interval)
    infusion_node = node.node("infusion", required=False)
    rule = DoseRule(
        key=key,
        kind=str(node.choice("kind", DOSE_KINDS)),
        amount_mg=int(node.integer("amount_mg", minimum=1) or 0),
        source=node.req_text("source"),
        course=node.integer("course", required=False, minimum=1),
        day_offset=node.integer("day_offset", required=False),
        first_due=first_due,
        repeat=_optional_interval(node, "repeat"),
        count=node.integer("count", required=False, minimum=1),
        duration=_optional_interval(node, "duration"),
        condition=node.text("condition", required=False),
        infusion=_infusion(infusion_node) if infusion_node is not None else None,
        note=node.text("note", required=False),
    )
    node.done()
    fixed = rule.day_offset is not None
    if fixed and (rule.course is None or rule.first_due or rule.repeat):
        raise node.error("a fixed-day rule needs `course` and no `first_due`/`repeat`")
    if fixed and (rule.count or rule.duration):
        raise node.error("`count`/`duration` only apply to repeating rules")
    if not fixed and (rule.first_due is None or rule.repeat is None or rule.course is not None):
        raise node.error("a repeating rule needs `first_due` and `repeat`, and no `course`")
    return rule


def _variant(code: str, node: _Node) -> Variant:
    rules = tuple(_dose_rule(n) for n in node.node_list("doses"))
    variant = Variant(
        code=code,
        label=node.req_text("label"),
        source=node.req_text("source"),
        doses=rules,
        end_note=node.text("end_note", required=False),
    )
    node.done()
    _check_dose_order(node, rules)
    return variant


def _check_dose_order(node: _Node, rules: tuple[DoseRule, ...]) -> None:
    """Rules must yield doses in date order, so the schedule can simply walk them."""
    if not rules or rules[0].day_offset != 0:
        raise node.error("the first dose rule must be a fixed-day rule with day_offset 0", "doses")
    seen: dict[str, DoseRule] = {}
    last_offset, last_course, repeating_seen = -1, 0, False
    for i, rule in enumerate(rules):
        where = f"doses[{i}]"
        if rule.key in seen:
            raise node.error(f"duplicate key '{rule.key}'", where)
        if rule.day_offset is not None:
            if repeating_seen:
                raise node.error("fixed-day rules must come before repeating rules", where)
            if rule.day_offset <= last_offset:
                raise node.error("day_offset must increase", where)
            assert rule.course is not None
            if rule.course not in (last_course, last_course + 1) or rule.course < 1:
                raise node.error("course must start at 1 and grow by at most 1", where)
            last_offset, last_course = rule.day_offset, rule.course
        else:
            assert rule.first_due is not None
            anchor = seen.get(rule.first_due.after)
            if anchor is None:
                raise node.error(
                    f"'{rule.first_due.after}' is no earlier rule", f"{where}.first_due"
                )
            if anchor.day_offset is not None and not repeating_seen:
                gap = rule.first_due.interval.min_days()
                if anchor.day_offset + gap <= last_offset:
                    raise node.error(
                        "would fall before the initial doses end", f"{where}.first_due"
                    )
            elif anchor is not rules[i - 1]:
                raise node.error("a later phase must start after the phase right before it", where)
            if i + 1 < len(rules) and rule.count is None and rule.duration is None:
                raise node.error("only the last rule may repeat without count or duration", where)
            repeating_seen = True
        seen[rule.key] = rule


def _premedication(node: _Node) -> Premedication:
    window_node = node.node("minutes_before", required=False)
    window = None
    if window_node is not None:
        window = Window(
            min=window_node.integer("min", required=False),
            max=window_node.integer("max", required=False),
        )
        window_node.done()
        if window.min is not None and window.max is not None and window.min > window.max:
            raise window_node.error("min must not exceed max")
    accepts = node.raw("accepts", required=False) or []
    if not isinstance(accepts, list) or not all(isinstance(a, str) and a.strip() for a in accepts):
        raise node.error("expected a list of drug names", "accepts")
    result = Premedication(
        accepts=tuple(a.strip() for a in accepts),
        drug=node.req_text("drug"),
        required=node.flag("required", required=True),
        source=node.req_text("source"),
        dose_mg=node.integer("dose_mg", required=False, minimum=1),
        route=node.text("route", required=False),
        minutes_before=window,
        note=node.text("note", required=False),
    )
    node.done()
    return result


def _observation(node: _Node) -> Observation:
    result = Observation(
        first_doses=int(node.integer("first_doses", minimum=1) or 1),
        first_minutes=node.integer("first_minutes", nullable=True),
        later_minutes=node.integer("later_minutes", nullable=True),
        status=str(node.choice("status", STATUSES)),
        source=node.req_text("source"),
        note=node.text("note", required=False),
        later_minutes_after_reaction=node.integer(
            "later_minutes_after_reaction", required=False, minimum=1
        ),
    )
    node.done()
    return result


def _reaction_window(node: _Node) -> ReactionWindow:
    result = ReactionWindow(
        hours=node.integer("hours", nullable=True, minimum=1),
        status=str(node.choice("status", STATUSES)),
        source=node.req_text("source"),
        note=node.text("note", required=False),
    )
    node.done()
    return result


def _contraindication(node: _Node) -> Contraindication:
    result = Contraindication(
        code=node.req_text("code"),
        text=node.req_text("text"),
        source=node.req_text("source"),
        jurisdiction=node.text("jurisdiction", required=False),
    )
    node.done()
    return result


def _check_results(node: _Node, allowed: Any) -> None:
    """`allowed_results`: a non-empty list of the screening result words."""
    if (
        not isinstance(allowed, list)
        or not allowed
        or any(r not in SCREENING_RESULTS for r in allowed)
    ):
        raise node.error(
            f"expected a list drawn from: {', '.join(sorted(SCREENING_RESULTS))}", "allowed_results"
        )


def _outcomes(node: _Node, allowed: list[str]) -> dict[str, str]:
    """`outcomes`: result -> outcome, for results the rule allows and outcomes a rule can give."""
    outcomes: dict[str, str] = {}
    outcomes_node = node.node("outcomes", required=False)
    if outcomes_node is not None:
        for result, outcome in outcomes_node.data.items():
            if result not in allowed:
                raise outcomes_node.error("not one of allowed_results", str(result))
            if outcome not in OUTCOMES:
                raise outcomes_node.error(f"must be one of: {', '.join(sorted(OUTCOMES))}", result)
            outcomes[result] = outcome
        outcomes_node._read.update(outcomes_node.data)
    return outcomes


def _screening_rule(node: _Node) -> ScreeningRule:
    code = str(node.choice("code", SCREENING_CODES))
    allowed = node.raw("allowed_results")
    _check_results(node, allowed)
    outcomes = _outcomes(node, allowed)
    given_node = node.node("given_before", required=False)
    given_before = None
    if given_node is not None:
        dated = given_node.raw("results")
        if not isinstance(dated, list) or not dated or any(r not in allowed for r in dated):
            raise given_node.error("expected a list drawn from allowed_results", "results")
        given_before = GivenBefore(
            days=int(given_node.integer("days", minimum=1) or 0),
            advisory=given_node.flag("advisory", required=True),
            results=tuple(dated),
            source=given_node.req_text("source"),
        )
        given_node.done()
    overridable = node.raw("overridable", required=False)
    rule = ScreeningRule(
        code=code,
        label=node.req_text("label"),
        required=node.flag("required", required=True),
        per_dose=node.flag("per_dose"),
        allowed_results=tuple(allowed),
        source=node.req_text("source"),
        outcomes=outcomes,
        note=node.text("note", required=False),
        validity_setting=node.text("validity_setting", required=False),
        validity_note=node.text("validity_note", required=False),
        given_before=given_before,
        required_setting=node.text("required_setting", required=False),
        condition=node.choice("condition", SCREENING_CONDITIONS, required=False),
        overridable=node.flag("overridable") if overridable is not None else True,
    )
    node.done()
    if rule.validity_setting is None and rule.validity_note is None:
        raise node.error("say why a result does not age (validity_note) or name a setting")
    return rule


def _readiness_rule(node: _Node) -> ReadinessRule:
    code = str(node.choice("code", READINESS_CODES))
    allowed = node.raw("allowed_results", required=False) or []
    answered = code in ANSWERED_READINESS_CODES
    if answered:
        _check_results(node, allowed)
    if not answered and allowed:
        raise node.error(f"{code} is worked out from the record, not answered", "allowed_results")
    outcomes = _outcomes(node, allowed)
    rule = ReadinessRule(
        code=code,
        label=node.req_text("label"),
        applies=str(node.choice("applies", READINESS_APPLIES)),
        source=node.req_text("source"),
        allowed_results=tuple(allowed),
        outcomes=outcomes,
        patient_may_clear=node.flag("patient_may_clear"),
        condition=node.choice("condition", READINESS_CONDITIONS, required=False),
        note=node.text("note", required=False),
    )
    node.done()
    return rule


def _after_stop(node: _Node) -> AfterStop:
    result = AfterStop(
        until=str(node.choice("until", AFTER_STOP_UNTIL)),
        reason=str(node.choice("reason", frozenset({"until_b_cell_repletion", "until_end_date"}))),
        source=node.req_text("source"),
        every=_optional_interval(node, "every"),
        every_setting=node.text("every_setting", required=False),
        note=node.text("note", required=False),
    )
    node.done()
    if (result.every is None) == (result.every_setting is None):
        raise node.error("needs exactly one of `every` and `every_setting`")
    if result.every is not None and (result.every.weeks or result.every.days):
        raise node.error("`every` after stopping is counted in months", "every")
    return result


def _monitoring_rule(node: _Node) -> MonitoringRule:
    after_stop = node.node("after_stop", required=False)
    rule = MonitoringRule(
        kind=node.req_text("kind"),
        label=node.req_text("label"),
        schedule=str(node.choice("schedule", MONITORING_SCHEDULES)),
        source=node.req_text("source"),
        first_due=_optional_interval(node, "first_due"),
        every=_optional_interval(node, "every"),
        every_setting=node.text("every_setting", required=False),
        lead_days_setting=node.text("lead_days_setting", required=False),
        condition=node.choice("condition", MONITORING_CONDITIONS, required=False),
        note=node.text("note", required=False),
        baseline=node.flag("baseline"),
        after_stop=_after_stop(after_stop) if after_stop is not None else None,
    )
    node.done()
    if rule.baseline and rule.schedule != "periodic":
        raise node.error("only a periodic rule has a baseline task", "baseline")
    if rule.schedule == "periodic" and (rule.every is None) == (rule.every_setting is None):
        raise node.error("a periodic rule needs exactly one of `every` and `every_setting`")
    if rule.schedule == "before_maintenance_course" and rule.lead_days_setting is None:
        raise node.error("missing", "lead_days_setting")
    return rule


def _setting(name: str, node: _Node) -> Setting:
    kind = str(node.choice("kind", SETTING_KINDS))
    options: dict[str, SettingOption] = {}
    for option_name, option_node in node.children("options").items():
        raw = option_node.raw("value")
        value: Any
        if kind == "interval":
            where = f"{option_node.path}.value"
            value = None if raw is None else _interval(_Node(node.file, where, raw))
        elif kind == "flag":
            value = option_node.flag("value", required=True)
        else:
            value = option_node.integer("value", minimum=1)
        options[option_name] = SettingOption(
            value=value,
            source=option_node.req_text("source"),
            note=option_node.text("note", required=False),
        )
        option_node.done()
    setting = Setting(
        name=name,
        label=node.req_text("label"),
        kind=kind,
        status=str(node.choice("status", STATUSES)),
        default=node.req_text("default"),
        options=options,
        note=node.text("note", required=False),
    )
    node.done()
    if setting.default not in options:
        raise node.error(f"'{setting.default}' is not one of the options", "default")
    return setting


def _regimen(file: str, data: Any) -> Regimen:
    node = _Node(file, "", data)
    code = node.req_text("code")
    if f"{code}.yaml" != file:
        raise node.error(f"code '{code}' does not match the file name", "code")
    sources = node.raw("sources")
    if (
        not isinstance(sources, list)
        or not sources
        or not all(isinstance(s, str) and s.strip() for s in sources)
    ):
        raise node.error("expected a non-empty list of source strings", "sources")
    variants = {name: _variant(name, child) for name, child in node.children("variants").items()}
    settings = {name: _setting(name, child) for name, child in node.children("settings").items()}
    pre_note = node.node("premedication_note", required=False)
    regimen = Regimen(
        code=code,
        drug=node.req_text("drug"),
        brand=node.req_text("brand"),
        route=node.req_text("route"),
        label_status=str(node.choice("label_status", LABEL_STATUSES)),
        default_variant=node.req_text("default_variant"),
        variants=variants,
        premedications=tuple(_premedication(n) for n in node.node_list("premedications")),
        screening=tuple(_screening_rule(n) for n in node.node_list("screening")),
        monitoring=tuple(_monitoring_rule(n) for n in node.node_list("monitoring")),
        settings=settings,
        sources=tuple(s.strip() for s in sources),
        administration=_statement(node.req_node("administration")),
        premedication_note=_statement(pre_note) if pre_note is not None else None,
        observation=_observation(node.req_node("observation")),
        delayed_reaction=_reaction_window(node.req_node("delayed_reaction")),
        contraindications=tuple(_contraindication(n) for n in node.node_list("contraindications")),
        missed_dose=_statement(node.req_node("missed_dose")),
        readiness=tuple(_readiness_rule(n) for n in node.node_list("readiness")),
    )
    node.done()
    _check_references(node, regimen)
    return regimen


def _check_references(node: _Node, regimen: Regimen) -> None:
    if regimen.default_variant not in regimen.variants:
        raise node.error(f"'{regimen.default_variant}' is not a variant", "default_variant")
    for name in REQUIRED_SETTINGS:
        if name not in regimen.settings:
            raise node.error(f"missing setting '{name}'", "settings")
    kinds = {"min_interval": "interval", "contraception_after_last_dose": "interval"}
    kinds["schedule_horizon_months"] = "integer"
    for name, kind in kinds.items():
        if regimen.settings[name].kind != kind:
            raise node.error(f"must be of kind {kind}", f"settings.{name}.kind")
    for option in regimen.settings["schedule_horizon_months"].options.values():
        if option.value < MIN_HORIZON_MONTHS:
            raise node.error(
                f"options must be >= {MIN_HORIZON_MONTHS}", "settings.schedule_horizon_months"
            )
    codes = [rule.code for rule in regimen.screening]
    if len(codes) != len(set(codes)):
        raise node.error("duplicate screening code", "screening")
    readiness = [rule.code for rule in regimen.readiness]
    if len(readiness) != len(set(readiness)):
        raise node.error("duplicate readiness code", "readiness")
    if ReadinessCode.ACTIVE_INFECTION not in readiness:
        # §11: every regimen's label asks to delay a dose during an active infection.
        raise node.error("every regimen checks active_infection before each dose", "readiness")
    for i, screening_rule in enumerate(regimen.screening):
        for key, kind in (("validity_setting", "integer"), ("required_setting", "flag")):
            name = getattr(screening_rule, key)
            if name is not None and (
                name not in regimen.settings or regimen.settings[name].kind != kind
            ):
                raise node.error(f"'{name}' is no {kind} setting", f"screening[{i}].{key}")
    for code in ("hbv_dna", "hepatology_consult"):
        if code in codes and regimen.screening_rule(code).overridable:
            raise node.error("only the structured record clears it", f"screening.{code}")
    for i, rule in enumerate(regimen.monitoring):
        after = rule.after_stop
        if after is not None and after.every_setting is not None:
            setting = regimen.settings.get(after.every_setting)
            # A null option switches the monitoring after stopping off.
            if setting is None or any(
                o.value is not None
                and (not isinstance(o.value, Interval) or o.value.weeks or o.value.days)
                for o in setting.options.values()
            ):
                raise node.error(
                    f"'{after.every_setting}' is no interval setting in months",
                    f"monitoring[{i}].after_stop.every_setting",
                )
        for key, kind in (("every_setting", "interval"), ("lead_days_setting", "integer")):
            name = getattr(rule, key)
            if name is None:
                continue
            setting = regimen.settings.get(name)
            if setting is None or setting.kind != kind:
                raise node.error(f"'{name}' is no {kind} setting", f"monitoring[{i}].{key}")
            if any(option.value is None for option in setting.options.values()):
                raise node.error(f"'{name}' options must all have a value", f"settings.{name}")


def load_catalog(directory: Path | Traversable) -> dict[str, Regimen]:
    """Read and validate every *.yaml file in `directory`; raise CatalogError on the first fault."""
    files = sorted(
        (entry for entry in directory.iterdir() if entry.name.endswith(".yaml")),
        key=lambda entry: entry.name,
    )
    if not files:
        raise CatalogError(f"{directory}: no catalog files (*.yaml)")
    regimens: dict[str, Regimen] = {}
    for entry in files:
        try:
            data = yaml.safe_load(entry.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise CatalogError(f"{entry.name}: invalid YAML: {exc}") from exc
        regimen = _regimen(entry.name, data)
        regimens[regimen.code] = regimen
    return regimens


@functools.cache
def _catalog() -> dict[str, Regimen]:
    return load_catalog(resources.files("service.protocols") / "catalog")


def get_regimen(code: str) -> Regimen:
    try:
        return _catalog()[code]
    except KeyError:
        raise NotFound(f"unknown regimen '{code}'", errors={"regimen": ["unknown code"]}) from None


def all_regimens() -> list[Regimen]:
    return [regimen for _, regimen in sorted(_catalog().items())]

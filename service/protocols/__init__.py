"""Regimen catalog (reviewable YAML data) and pure schedule arithmetic; no database, no Flask."""

from __future__ import annotations

from service.protocols.catalog import (
    CatalogError,
    DoseRule,
    Interval,
    MonitoringRule,
    Premedication,
    Regimen,
    ScreeningRule,
    Setting,
    SettingOption,
    Variant,
    all_regimens,
    get_regimen,
    load_catalog,
)
from service.protocols.schedule import (
    PlannedDose,
    check_minimum_interval,
    expected_chair_minutes,
    expected_infusion_minutes,
    extend_doses,
    hbv_monitoring_dates,
    monitoring_due_dates,
    plan_doses,
    shift_following,
)

__all__ = [
    "CatalogError",
    "DoseRule",
    "Interval",
    "MonitoringRule",
    "PlannedDose",
    "Premedication",
    "Regimen",
    "ScreeningRule",
    "Setting",
    "SettingOption",
    "Variant",
    "all_regimens",
    "check_minimum_interval",
    "expected_chair_minutes",
    "expected_infusion_minutes",
    "extend_doses",
    "get_regimen",
    "hbv_monitoring_dates",
    "load_catalog",
    "monitoring_due_dates",
    "plan_doses",
    "shift_following",
]

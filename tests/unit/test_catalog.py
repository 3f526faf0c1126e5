from __future__ import annotations

import json
import shutil
from datetime import date
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from service.errors import NotFound, ValidationFailed
from service.protocols import CatalogError, Interval, all_regimens, get_regimen, load_catalog

SCREENING_CODES = {
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
    # Issue 8: the hepatitis B pathway's items.
    "hbv_dna",
    "hepatology_consult",
}
RESULTS = {"negative", "positive", "indeterminate", "done", "low", "normal", "abnormal"} | {
    "prophylaxis",
    "monitor",
    "not_eligible",
}
CATALOG_DIR = Path(str(resources.files("service.protocols") / "catalog"))


def test_catalog_holds_the_five_regimens_sorted() -> None:
    assert [r.code for r in all_regimens()] == [
        "ocrelizumab-iv",
        "ocrelizumab-sc",
        "ofatumumab-sc",
        "rituximab-iv",
        "ublituximab-iv",
    ]
    assert get_regimen("rituximab-iv").label_status == "off_label"
    assert {r.label_status for r in all_regimens() if r.code != "rituximab-iv"} == {"approved"}


def test_rituximab_variants() -> None:
    regimen = get_regimen("rituximab-iv")

    assert set(regimen.variants) == {"rifund", "umea", "hermes", "oslo"}
    assert regimen.variant(None).code == "rifund"
    umea_yearly = regimen.variant("umea").rule("maintenance_after_year_3")
    assert umea_yearly.condition == "stable disease"
    assert not regimen.variant("hermes").has_maintenance


def _sourced_dicts(value: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every mapping in the as_dict tree that should carry a source: those with a `source` key."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(value, dict):
        if "source" in value:
            found.append((path, value))
        for key, child in value.items():
            found += _sourced_dicts(child, f"{path}.{key}")
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += _sourced_dicts(child, f"{path}[{i}]")
    return found


@pytest.mark.parametrize("regimen", all_regimens(), ids=lambda r: r.code)
def test_every_rule_has_a_source(regimen: Any) -> None:
    assert regimen.sources
    sourced = _sourced_dicts(regimen.as_dict())
    for path, item in sourced:
        assert isinstance(item["source"], str), path
        assert item["source"].strip(), path
    sourced_paths = {path for path, _ in sourced}
    # the collections that must each carry a source, item by item
    expected = [f".screening[{i}]" for i in range(len(regimen.screening))]
    expected += [f".monitoring[{i}]" for i in range(len(regimen.monitoring))]
    expected += [f".premedications[{i}]" for i in range(len(regimen.premedications))]
    expected += [f".contraindications[{i}]" for i in range(len(regimen.contraindications))]
    expected += [".observation", ".delayed_reaction", ".missed_dose", ".administration"]
    for code, variant in regimen.variants.items():
        expected.append(f".variants.{code}")
        expected += [f".variants.{code}.doses[{i}]" for i in range(len(variant.doses))]
    for name, setting in regimen.settings.items():
        expected += [f".settings.{name}.options.{option}" for option in setting.options]
    assert set(expected) <= sourced_paths


@pytest.mark.parametrize("regimen", all_regimens(), ids=lambda r: r.code)
def test_screening_codes_and_results_are_from_the_allowed_sets(regimen: Any) -> None:
    codes = [rule.code for rule in regimen.screening]
    assert set(codes) <= SCREENING_CODES
    assert {"hbsag", "anti_hbc", "ig_quant", "vaccines_live", "active_infection"} <= set(codes)
    for rule in regimen.screening:
        assert set(rule.allowed_results) <= RESULTS
        assert set(rule.outcomes) <= set(rule.allowed_results)
        assert set(rule.outcomes.values()) <= {"cleared", "needs_review", "contraindicated"}


@pytest.mark.parametrize("regimen", all_regimens(), ids=lambda r: r.code)
def test_as_dict_is_json_serialisable(regimen: Any) -> None:
    data = json.loads(json.dumps(regimen.as_dict()))

    assert data["code"] == regimen.code
    assert (
        data["settings"]["min_interval"]["default"] in data["settings"]["min_interval"]["options"]
    )
    assert data["variants"][data["default_variant"]]["doses"][0]["day_offset"] == 0


@pytest.mark.parametrize("regimen", all_regimens(), ids=lambda r: r.code)
def test_shared_screening_rules(regimen: Any) -> None:
    hbsag = regimen.screening_rule("hbsag")
    assert hbsag.required
    assert hbsag.outcome_for(None) == "pending"
    assert hbsag.outcome_for("negative") == "cleared"
    assert hbsag.outcome_for("positive") == "contraindicated"
    assert hbsag.outcome_for("indeterminate") == "needs_review"
    anti_hbc = regimen.screening_rule("anti_hbc")
    assert anti_hbc.outcome_for("positive") == "needs_review"
    assert anti_hbc.outcome_for("indeterminate") == "needs_review"
    assert regimen.screening_rule("ig_quant").outcome_for("low") == "needs_review"
    assert regimen.screening_rule("ig_quant").outcome_for("normal") == "cleared"
    live = regimen.screening_rule("vaccines_live")
    assert live.required
    assert live.outcome_for("done") == "cleared"
    assert live.outcome_for("positive") == "needs_review"
    assert not regimen.screening_rule("vaccines_nonlive").required
    infection = regimen.screening_rule("active_infection")
    assert infection.required
    assert infection.per_dose
    assert infection.outcome_for("positive") == "needs_review"
    for code in ("hcv", "hiv", "tb_igra"):
        rule = regimen.screening_rule(code)
        assert not rule.required
        assert rule.outcome_for("positive") == "needs_review"
        assert rule.outcome_for("indeterminate") == "needs_review"
    # VZV IgG: seronegative is what needs action (vaccination before start)
    assert regimen.screening_rule("vzv_igg").outcome_for("negative") == "needs_review"
    assert regimen.screening_rule("vzv_igg").outcome_for("positive") == "cleared"


@pytest.mark.parametrize(
    ("code", "required", "setting"),
    [
        ("ocrelizumab-iv", True, None),
        ("ublituximab-iv", True, None),
        # Issue 8: a clinic setting, default "required", until the label text is confirmed.
        ("ocrelizumab-sc", False, "lft_before_start"),
        ("ofatumumab-sc", False, "lft_before_start"),
        ("rituximab-iv", False, None),
    ],
)
def test_lft_required_where_the_8_2025_label_says_so_else_a_setting(
    code: str, required: bool, setting: str | None
) -> None:
    regimen = get_regimen(code)
    lft = regimen.screening_rule("lft")

    assert lft.required is required
    assert lft.required_setting == setting
    if setting is not None:
        assert regimen.settings[setting].default == "required"
        assert regimen.resolve_settings(None)[setting] is True
        assert regimen.settings[setting].status == "unconfirmed"
    # Values with ranges: normal clears, abnormal needs review; "done" says nothing.
    assert lft.outcome_for("normal") == "cleared"
    assert lft.outcome_for("abnormal") == "needs_review"
    with pytest.raises(ValidationFailed):
        lft.outcome_for("done")


def test_pregnancy_is_checked_before_every_ublituximab_infusion() -> None:
    pregnancy = get_regimen("ublituximab-iv").screening_rule("pregnancy")

    assert pregnancy.required
    assert pregnancy.per_dose
    assert pregnancy.outcome_for("positive") == "needs_review"
    for code in ("ocrelizumab-iv", "ocrelizumab-sc", "ofatumumab-sc", "rituximab-iv"):
        rule = get_regimen(code).screening_rule("pregnancy")
        assert not rule.required
        assert not rule.per_dose


def test_unknown_screening_code_is_not_found() -> None:
    with pytest.raises(NotFound):
        get_regimen("ocrelizumab-iv").screening_rule("jcv")


@pytest.mark.parametrize(
    ("code", "default", "options"),
    [
        ("ocrelizumab-iv", Interval(months=5), {"five_months", "twenty_weeks"}),
        ("ocrelizumab-sc", Interval(months=5), {"five_months", "none"}),
        ("ublituximab-iv", Interval(months=5), {"five_months"}),
        ("rituximab-iv", Interval(weeks=16), {"sixteen_weeks", "none"}),
        ("ofatumumab-sc", None, {"none"}),
    ],
)
def test_minimum_interval_settings(code: str, default: Interval | None, options: set[str]) -> None:
    regimen = get_regimen(code)

    assert set(regimen.settings["min_interval"].options) == options
    assert regimen.min_interval(regimen.resolve_settings(None)) == default


def test_ocrelizumab_twenty_weeks_option_resolves_to_weeks() -> None:
    regimen = get_regimen("ocrelizumab-iv")

    settings = regimen.resolve_settings({"min_interval": "twenty_weeks"})

    assert regimen.min_interval(settings) == Interval(weeks=20)


@pytest.mark.parametrize(
    ("code", "months"),
    [
        ("ocrelizumab-iv", {"US": 6, "EU_UK": 4, "legacy_EU_HK": 12, "CH": 6}),
        ("ublituximab-iv", {"US": 6, "CH": 4}),
        ("rituximab-iv", {"rixathon_truxima_PI": 12}),
        ("ofatumumab-sc", {"EU_HK": 6, "US": 6}),
    ],
)
def test_contraception_is_keyed_by_jurisdiction(code: str, months: dict[str, int]) -> None:
    setting = get_regimen(code).settings["contraception_after_last_dose"]

    assert {name: opt.value.months for name, opt in setting.options.items()} == months


def test_every_regimen_plans_at_least_twelve_months_by_default() -> None:
    for regimen in all_regimens():
        assert regimen.horizon_months(regimen.resolve_settings(None)) == 12


def test_observation_is_null_where_unconfirmed() -> None:
    rituximab = get_regimen("rituximab-iv").observation
    assert rituximab.status == "unconfirmed"
    assert rituximab.first_minutes is None
    ublituximab = get_regimen("ublituximab-iv").observation
    assert [ublituximab.minutes_after(n) for n in (1, 2, 3)] == [60, 60, 0]
    sc = get_regimen("ocrelizumab-sc").observation
    assert [sc.minutes_after(n) for n in (1, 2)] == [60, 15]


def test_interval_arithmetic_uses_calendar_months() -> None:
    assert Interval(months=1).add_to(date(2027, 1, 31)) == date(2027, 2, 28)
    assert Interval(months=1).add_to(date(2028, 1, 31)) == date(2028, 2, 29)
    assert Interval(months=1).subtract_from(date(2027, 3, 31)) == date(2027, 2, 28)
    assert Interval(weeks=24).add_to(date(2027, 1, 4)) == date(2027, 6, 21)
    assert Interval(months=1, days=1).add_to(date(2027, 1, 31)) == date(2027, 3, 1)
    assert Interval(months=5).as_dict() == {"months": 5, "weeks": 0, "days": 0}


# --- the loader on broken files -----------------------------------------------------------------


@pytest.fixture
def catalog_copy(tmp_path: Path) -> Path:
    shutil.copy(CATALOG_DIR / "ocrelizumab-iv.yaml", tmp_path)
    return tmp_path


def test_the_packaged_directory_loads(tmp_path: Path) -> None:
    for path in CATALOG_DIR.glob("*.yaml"):
        shutil.copy(path, tmp_path)

    assert sorted(load_catalog(tmp_path)) == [r.code for r in all_regimens()]


def test_invalid_yaml_names_the_file(catalog_copy: Path) -> None:
    (catalog_copy / "broken.yaml").write_text("code: broken\nvariants: [unclosed\n")

    with pytest.raises(CatalogError, match=r"broken\.yaml"):
        load_catalog(catalog_copy)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def test_missing_key_names_file_and_key(catalog_copy: Path) -> None:
    _edit(catalog_copy / "ocrelizumab-iv.yaml", "        amount_mg: 300\n", "")

    with pytest.raises(CatalogError) as info:
        load_catalog(catalog_copy)

    assert str(info.value).startswith("ocrelizumab-iv.yaml: variants.standard.doses[0].amount_mg")


def test_unknown_screening_code_fails_loudly(catalog_copy: Path) -> None:
    _edit(catalog_copy / "ocrelizumab-iv.yaml", "  - code: hiv\n", "  - code: hiv_rna\n")

    with pytest.raises(CatalogError, match=r"ocrelizumab-iv\.yaml: screening\[\d+\]\.code"):
        load_catalog(catalog_copy)


def test_misspelt_key_fails_loudly(catalog_copy: Path) -> None:
    _edit(catalog_copy / "ocrelizumab-iv.yaml", "    per_dose: true\n", "    perdose: true\n")

    with pytest.raises(CatalogError, match=r"unknown key.*perdose"):
        load_catalog(catalog_copy)


def test_unknown_setting_default_fails_loudly(catalog_copy: Path) -> None:
    _edit(catalog_copy / "ocrelizumab-iv.yaml", "default: five_months", "default: 5_months")

    with pytest.raises(CatalogError, match=r"settings\.min_interval\.default"):
        load_catalog(catalog_copy)


def test_empty_source_fails_loudly(catalog_copy: Path) -> None:
    _edit(catalog_copy / "ocrelizumab-iv.yaml", "  source: ocrevus.com\n", '  source: ""\n')

    with pytest.raises(CatalogError, match=r"administration\.source"):
        load_catalog(catalog_copy)


def test_file_name_must_match_code(tmp_path: Path) -> None:
    shutil.copy(CATALOG_DIR / "ocrelizumab-iv.yaml", tmp_path / "ocrevus.yaml")

    with pytest.raises(CatalogError, match=r"ocrevus\.yaml: code"):
        load_catalog(tmp_path)


def test_empty_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="no catalog files"):
        load_catalog(tmp_path)


def test_unstated_numbers_must_be_written_as_null(catalog_copy: Path) -> None:
    _edit(catalog_copy / "ocrelizumab-iv.yaml", "          min_minutes: 150\n", "")

    with pytest.raises(CatalogError, match=r"doses\[0\]\.infusion\.min_minutes: missing"):
        load_catalog(catalog_copy)

"""The code table (service/exports/codes.yaml) against the code: every lab, checklist item and
drug is either mapped, with a source, or listed as unmapped; mapped units are units we store."""

from __future__ import annotations

import re

import yaml

from service.exports.codes import CODES_FILE, code_table
from service.protocols import all_regimens
from service.treatment.labs import LAB_CODES

LOINC_CODE = re.compile(r"^\d{1,7}-\d$")


def _raw():
    return yaml.safe_load(CODES_FILE.read_text())


def _unmapped_text() -> str:
    return " ".join(entry["concept"] for entry in _raw()["unmapped"])


def test_every_mapped_lab_is_one_we_store_in_units_we_store():
    raw = _raw()
    for lab, entry in raw["labs"].items():
        assert lab in LAB_CODES, lab
        assert set(entry["units"]) <= set(LAB_CODES[lab].units), lab
        assert LOINC_CODE.match(entry["loinc"]["code"]), lab
        assert entry["source"], lab
    for lab, rules in raw["conversions"].items():
        assert {rule["to"] for rule in rules.values()} <= set(LAB_CODES[lab].units), lab


def test_every_lab_and_checklist_item_is_mapped_or_said_to_be_unmapped():
    table, unmapped = code_table(), _unmapped_text()
    for lab in LAB_CODES:
        assert lab in table.labs or lab in unmapped, lab
    items = {rule.code for regimen in all_regimens() for rule in regimen.screening}
    for item in items:
        assert item in table.screening or item in unmapped, item
    for regimen in all_regimens():
        codings = table.drugs[regimen.drug]
        assert codings, regimen.drug  # at least one standard code per drug


def test_qualitative_results_use_the_snomed_qualifiers_the_issue_names():
    table = code_table()
    assert table.result_for("http://snomed.info/sct", "260385009") == "negative"
    assert table.result_for("http://snomed.info/sct", "10828004") == "positive"
    interpretation = table.systems["interpretation"]
    assert table.result_for(interpretation, "IND") == "indeterminate"

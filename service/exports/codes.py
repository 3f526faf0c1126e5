"""The code table (codes.yaml beside this module), read once: LOINC per lab and screening item,
SNOMED CT and interpretation codes for qualitative results, ATC / SNOMED CT per drug, UCUM units.

Every standard code the exports write or the import accepts comes from this table; what it
lists under `unmapped` is written with text and this service's local code system only.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml

CODES_FILE = Path(__file__).with_name("codes.yaml")


@dataclass(frozen=True)
class Coding:
    system: str
    code: str
    display: str | None = None

    def as_fhir(self) -> dict[str, Any]:
        out = {"system": self.system, "code": self.code}
        if self.display:
            out["display"] = self.display
        return out


@dataclass(frozen=True)
class Conversion:
    to: str
    factor: float


@dataclass(frozen=True)
class CodeTable:
    systems: dict[str, str]
    # lab code -> (LOINC coding, {our unit: UCUM code})
    labs: dict[str, tuple[Coding, dict[str, str]]]
    conversions: dict[str, dict[str, Conversion]]
    # screening item code -> LOINC codings, the first one is what the export writes
    screening: dict[str, tuple[Coding, ...]]
    # result word -> (SNOMED CT qualifier or None, interpretation coding)
    results: dict[str, tuple[Coding | None, Coding]]
    # drug -> codings (ATC first, then SNOMED CT), possibly empty
    drugs: dict[str, tuple[Coding, ...]]

    @property
    def loinc(self) -> str:
        return self.systems["loinc"]

    @property
    def ucum(self) -> str:
        return self.systems["ucum"]

    def lab_for_loinc(self, code: str) -> str | None:
        return next((lab for lab, (c, _u) in self.labs.items() if c.code == code), None)

    def item_for_loinc(self, code: str) -> str | None:
        for item, codings in self.screening.items():
            if any(c.code == code for c in codings):
                return item
        return None

    def result_for(self, system: str, code: str) -> str | None:
        for word, (snomed, interpretation) in self.results.items():
            for coding in (snomed, interpretation):
                if coding is not None and (coding.system, coding.code) == (system, code):
                    return word
        return None


@cache
def code_table() -> CodeTable:
    raw: dict[str, Any] = yaml.safe_load(CODES_FILE.read_text())
    systems: dict[str, str] = raw["systems"]

    def coding(system: str, entry: dict[str, Any] | None) -> Coding | None:
        if entry is None:
            return None
        return Coding(systems[system], str(entry["code"]), entry.get("display"))

    labs = {}
    for code, entry in raw["labs"].items():
        loinc = coding("loinc", entry["loinc"])
        assert loinc is not None
        labs[code] = (loinc, {str(k): str(v) for k, v in entry["units"].items()})
    screening = {}
    for item, entry in raw["screening"].items():
        found = [coding("loinc", entry["loinc"]), *(coding("loinc", a) for a in entry["also"])]
        screening[item] = tuple(c for c in found if c is not None)
    results = {}
    for word, entry in raw["results"].items():
        interpretation = coding("interpretation", entry["interpretation"])
        assert interpretation is not None
        results[word] = (coding("snomed", entry["snomed"]), interpretation)
    drugs = {}
    for drug, entry in raw["drugs"].items():
        found = [coding("atc", entry["atc"]), coding("snomed", entry["snomed"])]
        drugs[drug] = tuple(c for c in found if c is not None)
    conversions = {
        lab: {
            str(unit): Conversion(str(rule["to"]), float(rule["factor"]))
            for unit, rule in units.items()
        }
        for lab, units in raw["conversions"].items()
    }
    return CodeTable(systems, labs, conversions, screening, results, drugs)

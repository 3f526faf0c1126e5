"""Lab and screening results in, from FHIR R4B Observations (one, or a Bundle of them), the way
an EHR or a laboratory system sends them.

Each Observation must validate as a FHIR resource, be final (or amended / corrected), carry an
identifier (system and value: how a resend is recognised) and a code this service maps
(codes.yaml: LOINC, or this service's own local codes). A quantitative result becomes a lab
result in a unit we store (converted where the table says how); a qualitative one (SNOMED CT
260385009 Negative / 10828004 Positive, or the interpretation codes NEG / POS / IND) becomes the
result of the checklist item of the patient's open plan.

All or nothing: if any Observation is refused, nothing is stored and the problem lists each
refused entry by its place ("entry[3]") with the reasons. Importing the same identifier again
with the same content changes nothing ("unchanged"); with other content it is refused.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from fhir.resources.R4B.observation import Observation
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from service.core.access import Actor
from service.errors import NotFound, ValidationFailed
from service.exports.codes import CodeTable, code_table
from service.models import ImportedObservation, Patient, TreatmentPlan
from service.treatment.labs import LAB_CODES, normalise_unit, record_lab
from service.treatment.screening import record_screening_result
from service.vocabulary import OPEN_PLAN_STATUSES

MAX_OBSERVATIONS = 200
ACCEPTED_STATUSES = ("final", "amended", "corrected")


class ObservationsRejected(ValidationFailed):
    code = "fhir_observations_rejected"
    title = "One or more FHIR Observations were refused; nothing was imported"


@dataclass(frozen=True)
class LabValue:
    code: str
    value: float
    unit: str
    taken_at: datetime
    ref_low: float | None
    ref_high: float | None


@dataclass(frozen=True)
class ScreeningValue:
    item_code: str
    result: str
    result_date: date


@dataclass(frozen=True)
class Incoming:
    key: str
    system: str
    value: str
    content: LabValue | ScreeningValue

    @property
    def content_hash(self) -> str:
        parts = {
            name: (item.isoformat() if isinstance(item, date) else item)
            for name, item in vars(self.content).items()
        }
        parts["kind"] = type(self.content).__name__
        return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def import_observations(
    session: Session, actor: Actor, patient_id: int, resource: dict[str, Any]
) -> dict[str, Any]:
    actor.require_staff()
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("Patient not found")
    actor.ensure_can_see(clinic_id=patient.clinic_id, patient_id=patient.id, what="Patient")
    errors: dict[str, list[str]] = {}
    raw = _observations(resource, errors)
    codes = code_table()
    zone = patient.clinic.time_zone
    incoming: list[Incoming] = []
    for key, data in raw:
        found = _read(key, data, codes, zone, errors)
        if found is not None:
            incoming.append(found)
    if errors:
        raise ObservationsRejected(errors=errors)

    items: list[dict[str, Any]] = []
    seen: dict[tuple[str, str], str] = {}
    for obs in incoming:
        outcome = _store(session, actor, patient, obs, seen, errors)
        if outcome is not None:
            items.append(outcome)
    if errors:
        raise ObservationsRejected(errors=errors)
    session.flush()
    return {
        "created": sum(1 for item in items if item["outcome"] == "created"),
        "unchanged": sum(1 for item in items if item["outcome"] == "unchanged"),
        "items": items,
    }


def _observations(
    resource: dict[str, Any], errors: dict[str, list[str]]
) -> list[tuple[str, dict[str, Any]]]:
    kind = resource.get("resourceType")
    if kind == "Observation":
        return [("observation", resource)]
    if kind != "Bundle":
        raise ObservationsRejected(errors={"resourceType": ["Send an Observation or a Bundle."]})
    entries = resource.get("entry") or []
    if not isinstance(entries, list) or not entries:
        raise ObservationsRejected(errors={"entry": ["The Bundle has no entries."]})
    if len(entries) > MAX_OBSERVATIONS:
        raise ObservationsRejected(errors={"entry": [f"At most {MAX_OBSERVATIONS} entries."]})
    out = []
    for index, entry in enumerate(entries):
        key = f"entry[{index}]"
        inner = entry.get("resource") if isinstance(entry, dict) else None
        if not isinstance(inner, dict) or inner.get("resourceType") != "Observation":
            errors[key] = ["Each entry's resource must be an Observation."]
            continue
        out.append((key, inner))
    return out


def _read(
    key: str, data: dict[str, Any], codes: CodeTable, zone: str, errors: dict[str, list[str]]
) -> Incoming | None:
    try:
        observation = Observation.model_validate(data)
    except ValidationError as exc:
        errors[key] = [
            f"{'.'.join(str(part) for part in problem['loc'])}: {problem['msg']}"
            for problem in exc.errors()
        ]
        return None
    problems: list[str] = []
    if observation.status not in ACCEPTED_STATUSES:
        problems.append(f"status must be one of {', '.join(ACCEPTED_STATUSES)}.")
    identifier = next((i for i in observation.identifier or [] if i.system and i.value), None)
    if identifier is None:
        problems.append("identifier: needs a system and a value (a resend is known by it).")
    lab, item = _target(observation, codes)
    if lab is None and item is None:
        shown = [f"{c.system}|{c.code}" for c in observation.code.coding or []]
        problems.append(f"code: no code this service maps ({', '.join(shown) or 'none'}).")
    when = observation.effectiveDateTime or (
        observation.effectivePeriod.start if observation.effectivePeriod else None
    )
    content: LabValue | ScreeningValue | None = None
    if lab is not None:
        content = _lab_value(lab, observation, when, codes, problems)
    elif item is not None:
        content = _screening_value(item, observation, when, codes, zone, problems)
    if problems or content is None or identifier is None:
        errors[key] = problems or ["Not understood."]
        return None
    return Incoming(key, str(identifier.system), str(identifier.value), content)


def _target(observation: Observation, codes: CodeTable) -> tuple[str | None, str | None]:
    for coding in observation.code.coding or []:
        system, code = str(coding.system or ""), str(coding.code or "")
        if system == codes.loinc:
            lab, item = codes.lab_for_loinc(code), codes.item_for_loinc(code)
            if lab or item:
                return lab, item
        elif system == codes.systems["local_lab"] and code in LAB_CODES:
            return code, None
        elif system == codes.systems["local_screening"]:
            return None, code
    return None, None


def _lab_value(
    lab: str,
    observation: Observation,
    when: Any,
    codes: CodeTable,
    problems: list[str],
) -> LabValue | None:
    quantity = observation.valueQuantity
    if quantity is None or quantity.value is None:
        problems.append(f"valueQuantity: a {lab} result needs a value and a unit.")
        return None
    convert = _unit_converter(lab, quantity, codes)
    if convert is None:
        accepted = ", ".join(LAB_CODES[lab].units)
        problems.append(
            f"valueQuantity.unit: '{quantity.code or quantity.unit}' is not a unit we take or "
            f"convert for {lab} (we store {accepted})."
        )
        return None
    unit, factor = convert
    if not isinstance(when, datetime) or when.tzinfo is None:
        problems.append("effectiveDateTime: a lab result needs a date and time with an offset.")
        return None
    low = high = None
    for range_ in observation.referenceRange or []:
        for name in ("low", "high"):
            bound = getattr(range_, name)
            if bound is None or bound.value is None:
                continue
            if (bound.code or bound.unit) not in (None, quantity.code, quantity.unit):
                problems.append(f"referenceRange.{name}: must be in the value's unit.")
                continue
            value = float(Decimal(bound.value) * Decimal(str(factor)))
            low, high = (value, high) if name == "low" else (low, value)
        break
    return LabValue(
        code=lab,
        value=float(Decimal(quantity.value) * Decimal(str(factor))),
        unit=unit,
        taken_at=when,
        ref_low=low,
        ref_high=high,
    )


def _unit_converter(lab: str, quantity: Any, codes: CodeTable) -> tuple[str, float] | None:
    """Our unit and the factor to it, from a UCUM code, or from a unit string we store."""
    ucum_units = codes.labs[lab][1] if lab in codes.labs else {}
    if quantity.system == codes.ucum and quantity.code:
        for ours, ucum in ucum_units.items():
            if ucum == quantity.code:
                return ours, 1.0
        rule = codes.conversions.get(lab, {}).get(str(quantity.code))
        if rule is not None:
            return rule.to, rule.factor
        return None
    written = normalise_unit(str(quantity.code or quantity.unit or ""))
    if written in LAB_CODES[lab].units:
        return written, 1.0
    return None


def _screening_value(
    item: str,
    observation: Observation,
    when: Any,
    codes: CodeTable,
    zone: str,
    problems: list[str],
) -> ScreeningValue | None:
    result = None
    concepts = [observation.valueCodeableConcept, *(observation.interpretation or [])]
    for concept in concepts:
        for coding in (concept.coding if concept is not None else None) or []:
            result = result or codes.result_for(str(coding.system), str(coding.code))
    if result is None and observation.valueString:
        result = observation.valueString.strip().lower()
    if result is None:
        problems.append(
            "value: a qualitative result needs valueCodeableConcept with SNOMED CT 260385009 "
            "(Negative) or 10828004 (Positive), or an interpretation NEG / POS / IND."
        )
        return None
    if isinstance(when, datetime):
        day = when.astimezone(ZoneInfo(zone)).date() if when.tzinfo else when.date()
    elif isinstance(when, date):
        day = when
    else:
        problems.append("effectiveDateTime: needs the date of the result (YYYY-MM-DD or more).")
        return None
    return ScreeningValue(item_code=item, result=result, result_date=day)


def _store(
    session: Session,
    actor: Actor,
    patient: Patient,
    obs: Incoming,
    seen: dict[tuple[str, str], str],
    errors: dict[str, list[str]],
) -> dict[str, Any] | None:
    identity = (obs.system, obs.value)
    described = {"index": obs.key, "identifier": {"system": obs.system, "value": obs.value}}
    earlier = session.scalar(
        select(ImportedObservation).where(
            ImportedObservation.patient_id == patient.id,
            ImportedObservation.identifier_system == obs.system,
            ImportedObservation.identifier_value == obs.value,
        )
    )
    known_hash = earlier.content_hash if earlier is not None else seen.get(identity)
    if known_hash is not None:
        if known_hash != obs.content_hash:
            errors[obs.key] = ["identifier: imported before with other content."]
            return None
        return {**described, "outcome": "unchanged"}
    record = ImportedObservation(
        clinic_id=patient.clinic_id,
        patient_id=patient.id,
        identifier_system=obs.system,
        identifier_value=obs.value,
        content_hash=obs.content_hash,
        imported_by_id=actor.user_id,
    )
    content = obs.content
    try:
        if isinstance(content, LabValue):
            lab = record_lab(
                session,
                actor,
                patient.id,
                code=content.code,
                value=content.value,
                unit=content.unit,
                taken_at=content.taken_at,
                ref_low=content.ref_low,
                ref_high=content.ref_high,
            )
            record.lab_result_id = lab.id
            target = {"type": "lab_result", "id": lab.id, "code": content.code}
        else:
            item = _checklist_item(session, patient, content.item_code)
            record_screening_result(
                session, actor, item, result=content.result, result_date=content.result_date
            )
            record.screening_item_id = item.id
            target = {"type": "screening_item", "id": item.id, "code": item.code}
    except ValidationFailed as exc:
        errors[obs.key] = [
            f"{field}: {message}"
            for field, messages in exc.errors.items()
            for message in (messages if isinstance(messages, list) else [messages])
        ] or [exc.detail]
        return None
    except NotFound as exc:
        errors[obs.key] = [exc.detail]
        return None
    session.add(record)
    seen[identity] = obs.content_hash
    return {**described, "outcome": "created", "target": target}


def _checklist_item(session: Session, patient: Patient, code: str) -> Any:
    plan = session.scalar(
        select(TreatmentPlan)
        .where(
            TreatmentPlan.patient_id == patient.id,
            TreatmentPlan.status.in_(OPEN_PLAN_STATUSES),
        )
        .order_by(TreatmentPlan.id.desc())
        .limit(1)
    )
    if plan is None:
        raise NotFound("The patient has no open treatment plan whose checklist could take it.")
    for item in plan.screening_items:
        if item.code == code:
            return item
    raise NotFound(f"The plan's checklist has no item '{code}'.")

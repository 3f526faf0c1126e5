"""Use cases for lab results: the accepted codes and units, range flags, alerts, task completion.

Reference ranges come from the request (the reporting laboratory's own range, in the unit of
the value). Only two codes have a default lower limit, and both are research definitions from
one cohort, not label thresholds (reference §3 and §8.7):

- IgG < 6.7 g/L and IgM < 0.27 g/L: below the lower limit of normal as defined in Hallberg,
  Eur J Neurol 2024 (PMC11236063), 2745 rituximab-treated MS patients.

No unit conversion is made: a default applies only when the value is in the unit it is cited in.
Without a range the flag is "unknown" and no alert is raised. No source gives a neutrophil
threshold, so a neutrophil count is flagged only against the laboratory's own range; a low one
raises the `neutropenia` alert (late-onset neutropenia, reference §1 and §3).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from service.core.access import Actor
from service.core.paging import Page, paginate
from service.db import utcnow
from service.errors import InvalidTransition, NotFound, ValidationFailed
from service.models import LabResult, MonitoringTask, Patient, ScreeningItem, TreatmentPlan
from service.reminders.derive import sync_plan_reminders
from service.staff.alerts import raise_alert
from service.treatment.monitoring import complete_task

# A clinic's clock may run a little ahead of ours; more than this is "in the future".
CLOCK_SKEW = timedelta(minutes=5)
MAX_ABS_VALUE = 1e13  # fits Numeric(18, 4)


@dataclass(frozen=True)
class DefaultRange:
    unit: str
    low: float | None
    high: float | None
    reference: str


@dataclass(frozen=True)
class LabCode:
    code: str
    label: str
    units: tuple[str, ...]
    default: DefaultRange | None = None


HALLBERG_2024 = (
    "Research definition, not a label threshold: Hallberg, Eur J Neurol 2024 (PMC11236063)"
)

LAB_CODES: dict[str, LabCode] = {
    lab.code: lab
    for lab in (
        LabCode(
            "igg",
            "Immunoglobulin G",
            ("g/L", "mg/dL"),
            DefaultRange("g/L", 6.7, None, f"IgG lower limit 6.7 g/L. {HALLBERG_2024}"),
        ),
        LabCode(
            "igm",
            "Immunoglobulin M",
            ("g/L", "mg/dL"),
            DefaultRange("g/L", 0.27, None, f"IgM lower limit 0.27 g/L. {HALLBERG_2024}"),
        ),
        LabCode("iga", "Immunoglobulin A", ("g/L", "mg/dL")),
        LabCode("alt", "Alanine aminotransferase", ("U/L", "ukat/L")),
        LabCode("ast", "Aspartate aminotransferase", ("U/L", "ukat/L")),
        LabCode("alp", "Alkaline phosphatase", ("U/L", "ukat/L")),
        LabCode("bilirubin", "Total bilirubin", ("umol/L", "mg/dL")),
        LabCode("wbc", "White blood cells", ("10^9/L", "cells/uL")),
        LabCode("neutrophils", "Neutrophils (absolute)", ("10^9/L", "cells/uL")),
        LabCode("lymphocytes", "Lymphocytes (absolute)", ("10^9/L", "cells/uL")),
        LabCode("platelets", "Platelets", ("10^9/L",)),
        LabCode("hemoglobin", "Haemoglobin", ("g/L", "g/dL")),
        LabCode("cd19", "CD19+ B cells", ("cells/uL", "%")),
        LabCode("hbv_dna", "HBV DNA", ("IU/mL",)),
        LabCode("creatinine", "Creatinine", ("umol/L", "mg/dL")),
    )
}

# Which lab codes can complete a monitoring task of each catalog kind (an MRI needs no lab).
TASK_LAB_CODES: dict[str, frozenset[str]] = {
    "ig_quant": frozenset({"igg", "igm", "iga"}),
    "hbv_dna": frozenset({"hbv_dna"}),
    "alt": frozenset({"alt"}),
    "lft": frozenset({"alt", "ast", "alp", "bilirubin"}),
    "cbc": frozenset({"wbc", "neutrophils", "lymphocytes", "platelets", "hemoglobin"}),
    "neutrophils": frozenset({"neutrophils"}),
    "cd19": frozenset({"cd19"}),
}


def normalise_unit(unit: str) -> str:
    """Accept the micro sign as 'u' (µmol/L == umol/L) and ignore surrounding spaces."""
    return unit.strip().replace("\u00b5", "u").replace("\u03bc", "u")


def lab_code_problems(code: str, unit: str) -> dict[str, list[str]]:
    """Per-field problems with a code/unit pair (empty when both are accepted)."""
    lab = LAB_CODES.get(code)
    if lab is None:
        return {"code": [f"must be one of: {', '.join(sorted(LAB_CODES))}"]}
    if normalise_unit(unit) not in lab.units:
        return {"unit": [f"{code} is reported in: {', '.join(lab.units)}"]}
    return {}


def flag_for(value: float, low: float | None, high: float | None) -> str:
    if low is None and high is None:
        return "unknown"
    if low is not None and value < low:
        return "low"
    if high is not None and value > high:
        return "high"
    return "normal"


def list_labs(
    session: Session,
    actor: Actor,
    patient_id: int,
    *,
    page: int,
    page_size: int,
    code: str | None = None,
) -> Page[LabResult]:
    _patient(session, actor, patient_id)
    stmt = (
        select(LabResult)
        .where(LabResult.patient_id == patient_id)
        .options(selectinload(LabResult.task))
        .order_by(LabResult.taken_at.desc(), LabResult.id.desc())
    )
    if code:
        stmt = stmt.where(LabResult.code == code)
    return paginate(session, stmt, page=page, page_size=page_size)


def record_lab(
    session: Session,
    actor: Actor,
    patient_id: int,
    *,
    code: str,
    value: float,
    unit: str,
    taken_at: datetime,
    ref_low: float | None = None,
    ref_high: float | None = None,
    notes: str | None = None,
    task_id: int | None = None,
    now: datetime | None = None,
) -> LabResult:
    """Store a result, flag it against its range, alert staff when it is out of range, and
    complete the monitoring task it answers (task_id)."""
    actor.require_staff()
    patient = _patient(session, actor, patient_id)
    unit = normalise_unit(unit)
    # The column keeps 4 decimals: answer with what is stored.
    value = round(value, 4)
    ref_low = round(ref_low, 4) if ref_low is not None else None
    ref_high = round(ref_high, 4) if ref_high is not None else None
    problems = _check_values(code, unit, value, ref_low, ref_high, taken_at, now or utcnow())
    if problems:
        raise ValidationFailed(errors=problems)
    task = _task_for(session, patient, task_id, code) if task_id is not None else None

    range_source, reference = None, None
    if ref_low is not None or ref_high is not None:
        range_source = "request"
    else:
        default = LAB_CODES[code].default
        if default is not None and default.unit == unit:
            ref_low, ref_high = default.low, default.high
            range_source, reference = "default", default.reference
    result = LabResult(
        clinic_id=patient.clinic_id,
        patient_id=patient.id,
        code=code,
        value=value,
        unit=unit,
        ref_low=ref_low,
        ref_high=ref_high,
        flag=flag_for(value, ref_low, ref_high),
        range_source=range_source,
        range_reference=reference,
        taken_at=taken_at.astimezone(UTC),
        notes=notes,
        recorded_by_id=actor.user_id,
    )
    session.add(result)
    session.flush()
    if result.flag in ("low", "high"):
        details: dict[str, str] = {"code": code, "flag": result.flag}
        kind = f"lab_{result.flag}"
        if code == "neutrophils" and result.flag == "low":
            # Late-onset neutropenia is reported after anti-CD20 infusions (reference §1, §3):
            # its own alert kind, so the worklist can tell it from any other low value.
            kind, details["concern"] = "neutropenia", "late_onset_neutropenia"
        raise_alert(
            session,
            clinic_id=patient.clinic_id,
            patient_id=patient.id,
            kind=kind,
            subject=("lab_result", result.id),
            details=details,
        )
    if code == "hbv_dna":
        _alert_on_hbv_dna(session, result)
    if task is not None:
        complete_task(session, actor, task, lab_result=result)
        sync_plan_reminders(session, task.plan)
    session.flush()
    return result


def _alert_on_hbv_dna(session: Session, result: LabResult) -> None:
    """HBV DNA on the hepatitis B pathway: detected, or higher than the one before it (the
    previous result, else the plan's baseline), is a possible reactivation: staff are alerted.

    "Detected" is above the laboratory's upper limit when one is given, else above 0."""
    previous = session.scalar(
        select(LabResult.value)
        .where(
            LabResult.patient_id == result.patient_id,
            LabResult.code == "hbv_dna",
            LabResult.id != result.id,
            LabResult.taken_at <= result.taken_at,
        )
        .order_by(LabResult.taken_at.desc(), LabResult.id.desc())
        .limit(1)
    )
    if previous is None:
        previous = _baseline_hbv_dna(session, result.patient_id)
    kinds = []
    if result.value > (result.ref_high if result.ref_high is not None else 0):
        kinds.append("hbv_dna_detectable")
    if previous is not None and result.value > previous:
        kinds.append("hbv_dna_rising")
    for kind in kinds:
        raise_alert(
            session,
            clinic_id=result.clinic_id,
            patient_id=result.patient_id,
            kind=kind,
            subject=("lab_result", result.id),
            details={"code": "hbv_dna"},
        )


def _baseline_hbv_dna(session: Session, patient_id: int) -> float | None:
    values = session.scalars(
        select(ScreeningItem.value)
        .join(TreatmentPlan, TreatmentPlan.id == ScreeningItem.plan_id)
        .where(
            TreatmentPlan.patient_id == patient_id,
            ScreeningItem.code == "hbv_dna",
            ScreeningItem.value.is_not(None),
        )
        .order_by(ScreeningItem.result_date.desc())
    ).all()
    for value in values:
        try:
            return float(value or "")
        except (TypeError, ValueError):
            continue
    return None


def _check_values(
    code: str,
    unit: str,
    value: float,
    ref_low: float | None,
    ref_high: float | None,
    taken_at: datetime,
    now: datetime,
) -> dict[str, list[str]]:
    problems = lab_code_problems(code, unit)
    for name, number in (("value", value), ("ref_low", ref_low), ("ref_high", ref_high)):
        if number is not None and not -MAX_ABS_VALUE < number < MAX_ABS_VALUE:
            problems[name] = ["Out of the range this service stores."]
    if ref_low is not None and ref_high is not None and ref_low > ref_high:
        problems["ref_low"] = ["Must not be above ref_high."]
    if taken_at.tzinfo is None:
        problems["taken_at"] = ["Must carry a UTC offset, e.g. 2027-01-04T08:30:00+01:00."]
    elif taken_at > now + CLOCK_SKEW:
        problems["taken_at"] = ["Must not be in the future."]
    return problems


def _patient(session: Session, actor: Actor, patient_id: int) -> Patient:
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("Patient not found")
    actor.ensure_can_see(clinic_id=patient.clinic_id, patient_id=patient.id, what="Patient")
    return patient


def _task_for(session: Session, patient: Patient, task_id: int, code: str) -> MonitoringTask:
    task = session.scalar(
        select(MonitoringTask)
        .join(TreatmentPlan, TreatmentPlan.id == MonitoringTask.plan_id)
        .where(MonitoringTask.id == task_id, TreatmentPlan.patient_id == patient.id)
    )
    if task is None:
        # Another patient's (or clinic's) task is reported like a missing one.
        raise ValidationFailed(errors={"task_id": ["No such monitoring task for this patient."]})
    accepted = TASK_LAB_CODES.get(task.kind, frozenset())
    if code in LAB_CODES and code not in accepted:
        raise ValidationFailed(
            errors={"task_id": [f"A {code} result cannot complete a '{task.kind}' task."]}
        )
    if not task.is_open:
        raise InvalidTransition(
            f"The monitoring task is already {task.status}",
            errors={"task_id": [f"Task is {task.status}."]},
        )
    return task

"""The states the staff views select by, stored again by every flush that changes their inputs.

A plan's screening gate (Checklist.passes_gate), an open dose's readiness (Readiness.ready) and
whether a given dose's recorded observation falls short of the catalog's are worked out on the
models from many rows. The worklist needs them as indexed columns so that it reads only what is
on it. Rather than trusting each use case to remember every input, one before_flush hook finds
the plans whose rows the flush changes and works the three out again, in the same transaction:
a stored state is never older than the last write. None (rows from before the columns existed)
is read as "look" and worked out on the read.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import event, inspect, select
from sqlalchemy.orm import Session, selectinload

from service.models.clinic import Clinic
from service.models.dose import Dose, DoseAdministration, DoseCheck, DoseReadinessOverride
from service.models.monitoring import LabResult, MonitoringTask
from service.models.patient import Patient
from service.models.plan import ScreeningItem, ScreeningOverride, TreatmentPlan
from service.vocabulary import OPEN_PLAN_STATUSES, DoseStatus

# What a plan's gate and its doses' readiness read, loaded in one go for a stored plan.
_PLAN_LOADS = (
    selectinload(TreatmentPlan.screening_items),
    selectinload(TreatmentPlan.overrides),
    selectinload(TreatmentPlan.doses).selectinload(Dose.checks),
    selectinload(TreatmentPlan.doses).selectinload(Dose.readiness_overrides),
    selectinload(TreatmentPlan.doses).selectinload(Dose.administration),
    selectinload(TreatmentPlan.monitoring_tasks).selectinload(MonitoringTask.lab_result),
)
_PLAN_CHILDREN = (ScreeningItem, ScreeningOverride, MonitoringTask, Dose)
_DOSE_CHILDREN = (DoseCheck, DoseReadinessOverride, DoseAdministration)


def observation_short(dose: Dose) -> bool:
    """Whether a given dose's recorded observation is missing or shorter than required."""
    record = dose.administration
    required = dose.required_observation_minutes
    if required is None or record is None:
        return False
    recorded = record.observation_minutes
    return recorded is None or recorded < required


def store_states(session: Session, plan: TreatmentPlan, *, observation: bool) -> None:
    """Work out and store the plan's gate and each dose's readiness (and, with `observation`,
    each given dose's observation state). Plans that ended are left as they are: the views
    read open plans only."""
    if plan.status not in OPEN_PLAN_STATUSES:
        return
    state = inspect(plan)
    if state.persistent:
        session.scalars(
            select(TreatmentPlan).where(TreatmentPlan.id == plan.id).options(*_PLAN_LOADS)
        ).all()
    # A plan added with bare ids has no patient or clinic to read yet (the identity map has).
    if plan.patient is None:
        plan.patient = session.get_one(Patient, plan.patient_id)
    if plan.clinic is None:
        plan.clinic = session.get_one(Clinic, plan.clinic_id)
    gate = plan.checklist.passes_gate
    if plan.gate_open is not gate:
        plan.gate_open = gate
    for dose in plan.doses:
        if dose.is_open:
            ready = dose.readiness.ready
            if dose.ready is not ready:
                dose.ready = ready
        elif dose.status == DoseStatus.ADMINISTERED and (
            observation or dose.observation_short is None
        ):
            short = observation_short(dose)
            if dose.observation_short is not short:
                dose.observation_short = short


def _plan_of(session: Session, obj: Any, plan_id: int | None) -> TreatmentPlan | None:
    plan = obj.plan if "plan" not in inspect(obj).unloaded else None
    if plan is None and plan_id is not None:
        plan = session.get(TreatmentPlan, plan_id)
    return plan


def _dose_of(session: Session, obj: Any) -> Dose | None:
    dose = obj.dose if "dose" not in inspect(obj).unloaded else None
    if dose is None and obj.dose_id is not None:
        dose = session.get(Dose, obj.dose_id)
    return dose


def _touched(session: Session, obj: Any) -> Iterable[TreatmentPlan]:
    if isinstance(obj, TreatmentPlan):
        yield obj
    elif isinstance(obj, _PLAN_CHILDREN):
        plan = _plan_of(session, obj, obj.plan_id)
        if plan is not None:
            yield plan
    elif isinstance(obj, _DOSE_CHILDREN):
        dose = _dose_of(session, obj)
        if dose is not None:
            plan = _plan_of(session, dose, dose.plan_id)
            if plan is not None:
                yield plan
    elif isinstance(obj, LabResult):
        task = obj.task
        if task is not None:
            yield from _touched(session, task)
    elif isinstance(obj, Patient) and inspect(obj).attrs.can_become_pregnant.history.has_changes():
        # The pregnancy item of each dose's readiness depends on it.
        yield from obj.plans


@event.listens_for(Session, "before_flush")
def _store_touched_states(session: Session, _context: Any, _instances: Any) -> None:
    plans: dict[int, TreatmentPlan] = {}
    observed: set[int] = set()
    changed = [obj for obj in session.dirty if session.is_modified(obj)]
    for obj in (*session.new, *changed, *session.deleted):
        for plan in _touched(session, obj):
            plans[id(plan)] = plan
            if isinstance(obj, DoseAdministration | Dose):
                observed.add(id(plan))
    for key, plan in plans.items():
        store_states(session, plan, observation=key in observed)

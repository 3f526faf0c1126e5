"""The states the staff views select by, stored again by every flush that changes their inputs.

A plan's screening gate (Checklist.passes_gate), an open dose's readiness (Readiness.ready) and
whether a given dose's recorded observation falls short of the catalog's are worked out on the
models from many rows. The worklist needs them as indexed columns so that it reads only what is
on it. Rather than trusting each use case to remember every input, one before_flush hook finds
the plans whose rows the flush changes and works the three out again, in the same transaction:
a stored state is never older than the last write. None (rows from before the columns existed)
is read as "look" and worked out on the read. Beside the gate the plan keeps what the staff
views show of its checklist (outcome, blocking items, override in effect), and beside `ready`
an open dose keeps its readiness's blocking items, so that they show them without loading the
plan's items.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import JSON, bindparam, event, inspect, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from service.models.clinic import Clinic
from service.models.dose import Dose, DoseAdministration, DoseCheck, DoseReadinessOverride
from service.models.monitoring import LabResult, MonitoringTask
from service.models.patient import Patient
from service.models.plan import Checklist, ScreeningItem, ScreeningOverride, TreatmentPlan
from service.vocabulary import OPEN_PLAN_STATUSES, DoseStatus

# What a plan's gate and its doses' readiness read, beyond the plan's own columns.
_PLAN_COLLECTIONS = ("screening_items", "overrides", "doses", "monitoring_tasks")
_DOSE_RELATIONS = ("checks", "readiness_overrides", "administration")
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


def store_states(
    session: Session, plan: TreatmentPlan, *, doses: bool, observation: bool = False
) -> None:
    """Work out and store the plan's gate; with `doses` (something a dose's readiness reads
    changed), or when the gate moved, each open dose's readiness too; with `observation`
    (an administration changed), each given dose's observation state. Plans that ended are
    left as they are: the views read open plans only."""
    if plan.status not in OPEN_PLAN_STATUSES:
        return
    if inspect(plan).pending:
        _known_empty(plan, _PLAN_COLLECTIONS)
        for dose in plan.doses:
            _known_empty(dose, _DOSE_RELATIONS)
    # A plan added with bare ids has no clinic or patient to read yet (the identity map has).
    if plan.clinic is None:
        plan.clinic = session.get_one(Clinic, plan.clinic_id)
    checklist = plan.checklist
    gate = checklist.passes_gate
    moved = plan.gate_open is not gate
    if moved:
        plan.gate_open = gate
    _store_checklist(plan, checklist)
    unknown = any(
        (dose.ready is None or dose.readiness_blocking is None)
        if dose.is_open
        else dose.observation_short is None
        for dose in plan.doses
        if dose.is_open or dose.status == DoseStatus.ADMINISTERED
    )
    if not (doses or moved or observation or unknown):
        return
    if plan.patient is None:
        plan.patient = session.get_one(Patient, plan.patient_id)
    _load_dose_relations(session, plan)
    moved_blocking: list[tuple[Dose, list[dict[str, str]]]] = []
    for dose in plan.doses:
        if dose.is_open:
            readiness = dose.readiness
            ready = readiness.ready
            if dose.ready is not ready:
                dose.ready = ready
            blocking = readiness.blocking_items
            if inspect(dose).persistent and dose.readiness_blocking != blocking:
                moved_blocking.append((dose, [dict(item) for item in blocking]))
        elif dose.status == DoseStatus.ADMINISTERED and (
            observation or dose.observation_short is None
        ):
            short = observation_short(dose)
            if dose.observation_short is not short:
                dose.observation_short = short
    _store_blocking(session, moved_blocking)


def _store_checklist(plan: TreatmentPlan, checklist: Checklist) -> None:
    """What the staff views show of the checklist, each assigned only when it differs, so a
    flush that changes nothing writes nothing."""
    if plan.checklist_outcome != checklist.outcome:
        plan.checklist_outcome = checklist.outcome
    if plan.checklist_blocking != checklist.blocking_items:
        plan.checklist_blocking = [dict(item) for item in checklist.blocking_items]
    overridden = checklist.override_in_effect
    if plan.checklist_overridden is not overridden:
        plan.checklist_overridden = overridden


_UPDATE_BLOCKING = (
    update(Dose)
    .where(Dose.id == bindparam("dose_id"))
    .values(readiness_blocking=bindparam("blocking", type_=JSON))
)


def _store_blocking(session: Session, moved: list[tuple[Dose, list[dict[str, str]]]]) -> None:
    """The doses' new blocking items in one statement, beside the ORM's writes. Assigned
    through the ORM they would cost a versioned UPDATE per dose, and some inputs (the patient's
    pregnancy answer, the plan's monitoring tasks) change the items of many open doses at once.
    Doses about to be inserted are left out (None, "not worked out"): the monitoring tasks their
    items read are made once the doses have ids, and the plan's next flush stores them."""
    if not moved:
        return
    session.connection().execute(
        _UPDATE_BLOCKING, [{"dose_id": dose.id, "blocking": items} for dose, items in moved]
    )
    for dose, items in moved:
        set_committed_value(dose, "readiness_blocking", items)


def _known_empty(obj: Any, keys: tuple[str, ...]) -> None:
    """A row about to be inserted has no children but those given to it: say so, so that
    later flushes of this session do not ask the database."""
    state = inspect(obj)
    if not state.pending:
        return
    for key in keys:
        if key in state.unloaded:
            uselist = state.mapper.relationships[key].uselist
            set_committed_value(obj, key, [] if uselist else None)


def _load_dose_relations(session: Session, plan: TreatmentPlan) -> None:
    """What the doses' readiness reads and this session has not loaded yet, one statement per
    kind of row whatever the number of doses (right after a plan was made: none)."""
    stored = [dose for dose in plan.doses if inspect(dose).persistent]
    for key in _DOSE_RELATIONS:
        waiting = [dose for dose in stored if key in inspect(dose).unloaded]
        if not waiting:
            continue
        relation = Dose.__mapper__.relationships[key]
        child = relation.mapper.class_
        found: dict[int, list[Any]] = {dose.id: [] for dose in waiting}
        for row in session.scalars(
            select(child).where(child.dose_id.in_(list(found))).order_by(child.id)
        ):
            found[row.dose_id].append(row)
        for dose in waiting:
            rows = found[dose.id]
            set_committed_value(dose, key, rows if relation.uselist else next(iter(rows), None))
    tasks = [t for t in plan.monitoring_tasks if t.lab_result_id is not None]
    if any("lab_result" in inspect(t).unloaded for t in tasks):
        # Into the identity map, where each task's lab_result is then found without a query.
        session.scalars(
            select(LabResult).where(LabResult.id.in_([t.lab_result_id for t in tasks]))
        ).all()


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
    dose_inputs: set[int] = set()
    observed: set[int] = set()
    changed = [obj for obj in session.dirty if session.is_modified(obj)]
    for obj in (*session.new, *changed, *session.deleted):
        for plan in _touched(session, obj):
            plans[id(plan)] = plan
            if _reaches_doses(session, obj):
                dose_inputs.add(id(plan))
            if isinstance(obj, DoseAdministration | Dose):
                observed.add(id(plan))
    for key, plan in plans.items():
        store_states(session, plan, doses=key in dose_inputs, observation=key in observed)


# Plan columns a change of which leaves every dose's readiness as it was.
_CHECKLIST_ONLY_COLUMNS = {
    "updated_at",
    "version",
    "notes",
    "gate_open",
    "checklist_outcome",
    "checklist_blocking",
    "checklist_overridden",
}


def _reaches_doses(session: Session, obj: Any) -> bool:
    """Whether a change to `obj` can change a dose's readiness other than through the gate
    (which store_states compares itself): only checklist rows and plan notes cannot."""
    if isinstance(obj, ScreeningItem | ScreeningOverride):
        return False
    if isinstance(obj, TreatmentPlan) and not inspect(obj).pending:
        state = inspect(obj)
        return any(
            state.attrs[attr.key].history.has_changes()
            for attr in state.mapper.column_attrs
            if attr.key not in _CHECKLIST_ONLY_COLUMNS
        )
    return True

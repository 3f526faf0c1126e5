"""Stamps of what phones and screens poll: a few aggregates over the rows a response shows.

A stamp changes whenever the response would (a row added, removed or changed, or the day it is
read on), and costs one statement without loading or rendering anything, so an unchanged
resource can be answered 304. Versions only grow, so a (count, sum of versions) pair moves on
every insert, update and delete; rows without a version count by their newest timestamp.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Connection,
    Integer,
    Select,
    String,
    bindparam,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.orm import Session, aliased

from service.accounts.tokens import ACCOUNT_COLUMNS, Caller, with_account
from service.core.access import Actor
from service.core.wall_clock import local_today
from service.db import utcnow
from service.errors import Forbidden, NotFound
from service.models import (
    Clinic,
    Dose,
    DoseAdministration,
    DoseCheck,
    DoseReadinessOverride,
    InboxCounter,
    LabResult,
    MonitoringFollowUp,
    MonitoringTask,
    Patient,
    Reminder,
    ScreeningItem,
    ScreeningOverride,
    TreatmentPlan,
    User,
)
from service.trust import audit
from service.vocabulary import ACTIVE_REMINDER_STATUSES, Audience

Stamp = tuple[Any, ...]


def _scalars(*expressions: Any) -> list[Any]:
    return [expression.scalar_subquery() for expression in expressions]


# Constants written into the SQL rather than bound: a stamp's statement then stays under the
# 4 kB up to which psycopg keeps a statement's parsed form (a longer one is parsed again on every
# execution), and has no parameters to send besides the ids.
_DOT = literal_column("'.'", String)
_NOTHING = literal_column("''", String)
_ZERO = literal_column("0", Integer)


def _joined(*aggregates: Any) -> Any:
    """Aggregates over the same rows as one value ("first.second..."): one subquery reads the
    rows once, where one per aggregate would read them once each."""
    texts = [func.coalesce(cast(aggregate, String), _NOTHING) for aggregate in aggregates]
    joined: ColumnElement[str] = texts[0]
    for text in texts[1:]:
        joined = joined + _DOT + text
    return joined


def _pair(first: Any, second: Any, where: ColumnElement[bool]) -> list[Any]:
    return _scalars(select(_joined(first, second)).where(where))


def _versions(model: Any, where: ColumnElement[bool]) -> list[Any]:
    return _pair(func.count(), func.coalesce(func.sum(model.version), _ZERO), where)


def _dated(model: Any, column: Any, where: ColumnElement[bool]) -> list[Any]:
    return _pair(func.count(), func.max(column), where)


def _plans_parts(plan_ids: Select[Any]) -> list[Any]:
    """Everything a plan's body shows: the plan, its checklist, doses and what hangs off them."""
    dose_ids = select(Dose.id).where(Dose.plan_id.in_(plan_ids))
    return [
        *_versions(TreatmentPlan, TreatmentPlan.id.in_(plan_ids)),
        *_versions(Dose, Dose.plan_id.in_(plan_ids)),
        *_versions(DoseCheck, DoseCheck.dose_id.in_(dose_ids)),
        *_versions(MonitoringTask, MonitoringTask.plan_id.in_(plan_ids)),
        *_versions(MonitoringFollowUp, MonitoringFollowUp.plan_id.in_(plan_ids)),
        *_versions(ScreeningItem, ScreeningItem.plan_id.in_(plan_ids)),
        *_dated(
            ScreeningOverride, ScreeningOverride.created_at, ScreeningOverride.plan_id.in_(plan_ids)
        ),
        *_dated(
            DoseAdministration,
            DoseAdministration.recorded_at,
            DoseAdministration.dose_id.in_(dose_ids),
        ),
        *_dated(
            DoseReadinessOverride,
            DoseReadinessOverride.created_at,
            DoseReadinessOverride.dose_id.in_(dose_ids),
        ),
    ]


def _patient_parts(patient_id: ColumnElement[Any]) -> list[Any]:
    """The patient row (reaction history, preferences) and their lab results."""
    return [
        *_scalars(select(Patient.version).where(Patient.id == patient_id)),
        *_dated(LabResult, LabResult.recorded_at, LabResult.patient_id == patient_id),
        *_scalars(
            select(Clinic.time_zone)
            .join(Patient, Patient.clinic_id == Clinic.id)
            .where(Patient.id == patient_id)
        ),
    ]


# Built once: a statement of twenty subqueries costs more to build (and key for SQLAlchemy's
# compiled cache) than to run, and the same object's cache key is computed only once.
@cache
def _patients_plans() -> Select[Any]:
    patient_id: BindParameter[int] = bindparam("patient_id", type_=Integer)
    return select(*_parts_of(patient_id))


def _parts_of(patient_id: ColumnElement[Any]) -> list[Any]:
    # The patient's plans are read from the table itself, whatever encloses it; only an
    # owner row from the outermost statement is correlated.
    plan_ids = (
        select(TreatmentPlan.id)
        .where(TreatmentPlan.patient_id == patient_id)
        .correlate_except(TreatmentPlan)
    )
    return [*_plans_parts(plan_ids), *_patient_parts(patient_id)]


# The same aggregates, for the plan or patient the URL names, with who it belongs to, beside the
# caller's account row: one statement authenticates the caller, checks they may see it and
# stamps it.
_OWNER_PLAN = aliased(TreatmentPlan, name="owner_plan")
_OWNER_PATIENT = aliased(Patient, name="owner_patient")


@cache
def _plan_by_id() -> Select[Any]:
    owner = _OWNER_PLAN
    parts = _parts_of(owner.patient_id.expression)
    named = owner.id == bindparam("plan_id", type_=Integer)
    stamp = with_account(owner.patient_id, owner.clinic_id, *parts)
    return stamp.outerjoin_from(User, owner, named)


@cache
def _patient_by_id() -> Select[Any]:
    owner = _OWNER_PATIENT
    parts = _parts_of(owner.id.expression)
    named = owner.id == bindparam("patient_id", type_=Integer)
    stamp = with_account(owner.id, owner.clinic_id, *parts)
    return stamp.outerjoin_from(User, owner, named)


@cache
def _my_plans() -> Select[Any]:
    return with_account(*_parts_of(User.patient_id.expression))


def _connection(session: Session) -> Connection:
    """The session's connection, what it holds flushed: a stamp is a Core statement, and the
    ORM's handling of one costs more than running it."""
    session.flush()
    return session.connection()


def _stamp(
    session: Session, statement: Select[Any], params: dict[str, int], now: datetime | None
) -> Stamp:
    return _dated_values(_connection(session).execute(statement, params).one(), now)


def _dated_values(row: Sequence[Any], now: datetime | None) -> Stamp:
    """The aggregates, plus the day on the clinic's clock (the last part is its zone) and in UTC:
    what is due or overdue changes with them."""
    values = tuple(v.isoformat() if isinstance(v, datetime) else v for v in row)
    zone = values[-1]
    today = local_today(zone, now).isoformat() if zone else None
    return (*values, today, local_today("UTC", now).isoformat())


def plan_stamp(session: Session, plan: TreatmentPlan, *, now: datetime | None = None) -> Stamp:
    """A plan as GET /plans/{id} shows it (the caller has checked the plan is visible). Its body
    lists the patient's reactions under any of their plans: all of them count."""
    return ("plan", plan.id, *patient_plans_stamp(session, plan.patient_id, now=now))


def patient_plans_stamp(session: Session, patient_id: int, *, now: datetime | None = None) -> Stamp:
    """A patient's plans, as /me/plans and /patients/{id}/plans list them."""
    params = {"patient_id": patient_id}
    return ("plans", patient_id, *_stamp(session, _patients_plans(), params, now))


def patient_stamp(session: Session, patient: Patient, *, now: datetime | None = None) -> Stamp:
    """A patient as GET /patients/{id} shows them, with what continues after their plans."""
    return ("patient", *patient_plans_stamp(session, patient.id, now=now))


def _admitted(
    session: Session, caller: Caller, statement: Select[Any], params: dict[str, Any]
) -> tuple[Actor, Sequence[Any]]:
    """Run a `with_account` statement: the caller's actor, and what follows the account row."""
    row = _connection(session).execute(statement, {"user_id": caller.user_id, **params}).first()
    actor = caller.admit(row)
    assert row is not None  # admit refuses a missing account row
    return actor, row[len(ACCOUNT_COLUMNS) :]


def visible_plan_stamp(
    session: Session, caller: Caller, plan_id: int, *, now: datetime | None = None
) -> Stamp:
    """`plan_stamp` of a plan by its id, in one statement that also authenticates the caller and
    checks they may see it (refused as `plans.get_plan` refuses): a read asked again needs
    nothing more."""
    actor, (patient_id, clinic_id, *parts) = _admitted(
        session, caller, _plan_by_id(), {"plan_id": plan_id}
    )
    if patient_id is None:
        raise NotFound("Plan not found")
    actor.ensure_can_see(clinic_id=clinic_id, patient_id=patient_id, what="Plan")
    audit.note_owner(session, "plan", plan_id, patient_id=patient_id, clinic_id=clinic_id)
    return ("plan", plan_id, "plans", patient_id, *_dated_values(parts, now))


def visible_patient_stamp(
    session: Session, caller: Caller, patient_id: int, *, now: datetime | None = None
) -> Stamp:
    """`patient_stamp` of a patient by id, authenticating the caller and checking they may see
    them in the same statement (refused as `records.get_patient` refuses)."""
    actor, (found, clinic_id, *parts) = _admitted(
        session, caller, _patient_by_id(), {"patient_id": patient_id}
    )
    if found is None:
        raise NotFound("Patient not found")
    actor.ensure_can_see(clinic_id=clinic_id, patient_id=patient_id, what="Patient")
    audit.note_owner(session, "patient", patient_id, patient_id=patient_id, clinic_id=clinic_id)
    return ("patient", "plans", patient_id, *_dated_values(parts, now))


def my_plans_stamp(session: Session, caller: Caller, *, now: datetime | None = None) -> Stamp:
    """`patient_plans_stamp` of the caller's own plans (/me/plans), authenticating them in the
    same statement."""
    actor, parts = _admitted(session, caller, _my_plans(), {})
    return ("plans", my_patient_id(actor), *_dated_values(parts, now))


def my_patient_id(actor: Actor) -> int:
    if actor.is_staff or actor.patient_id is None:
        raise Forbidden("This is a patient's own view")
    return actor.patient_id


def me_stamp(session: Session, actor: Actor) -> Stamp:
    """The account /me shows, and the patient's preferences (their row's version)."""
    user = session.get(User, actor.user_id)
    account = (user.id, user.email, user.role, user.clinic_id) if user else None
    version = None
    if actor.patient_id is not None:
        version = session.scalar(select(Patient.version).where(Patient.id == actor.patient_id))
    return ("me", account, actor.patient_id, version)


def inbox_stamp(session: Session, caller: Caller) -> Stamp:
    """The patient's last inbox change number: every new or changed message takes a new one."""
    actor, (seq,) = _admitted(session, caller, _INBOX_SEQ, {})
    return ("inbox", my_patient_id(actor), seq or 0)


_INBOX_SEQ = with_account(
    select(InboxCounter.seq).where(InboxCounter.patient_id == User.patient_id).scalar_subquery()
)


def upcoming_stamp(session: Session, caller: Caller, *, now: datetime | None = None) -> Stamp:
    """The patient's reminders still to come: a fired one leaves the set (its count and first
    moment move), a re-derived one is a new row or a newer `updated_at`."""
    actor, (reminders,) = _admitted(session, caller, _UPCOMING, {"now": now or utcnow()})
    return ("upcoming", my_patient_id(actor), reminders)


_UPCOMING = with_account(
    select(
        _joined(
            func.count(),
            func.min(Reminder.fire_at),
            func.max(Reminder.updated_at),
            func.max(Reminder.id),
        )
    )
    .where(
        (Reminder.patient_id == User.patient_id)
        & (Reminder.audience == Audience.PATIENT)
        & Reminder.status.in_(ACTIVE_REMINDER_STATUSES)
        & (Reminder.fire_at >= bindparam("now", type_=Reminder.fire_at.type))
    )
    .scalar_subquery()
)

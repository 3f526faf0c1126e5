"""Use cases for the audit trail: record one event per request, and let admins examine it."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Executable, insert, inspect, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.util import identity_key

from service.core.access import Actor
from service.core.paging import Page, paginate
from service.models import (
    AuditEvent,
    Device,
    Dose,
    DoseReadinessOverride,
    InboxMessage,
    LabResult,
    MonitoringTask,
    Patient,
    Reminder,
    ScreeningOverride,
    StaffAlert,
    TreatmentPlan,
)


@dataclass(frozen=True)
class AuditedRequest:
    """What the HTTP layer saw of one request: ids and codes only, never a body or a query text.

    `subjects` are the objects the URL names, outermost first (e.g. plan 5, then its screening
    item); the innermost one whose patient can be looked up decides the event's patient.
    """

    request_id: str
    method: str
    path_template: str | None
    action: str
    resource_type: str
    resource_id: str | None
    status_code: int
    source_address: str | None
    occurred_at: datetime
    subjects: Sequence[tuple[str, int]] = ()
    operation: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    # The clinic of a request nobody authenticated, when it names one of its accounts (log-in).
    clinic_id: int | None = None


def outcome_for(status_code: int) -> str:
    if status_code < 400:
        return "success"
    if status_code in (401, 403, 404, 429):
        return "denied"
    if status_code < 500:
        return "failed"
    return "error"


# Built once; its parameters are given per event. Inline: nothing is read back (no RETURNING of
# the new id, which no caller uses), which spares every request a result to fetch.
INSERT_EVENT = insert(AuditEvent).inline()


def record_event(session: Session, actor: Actor | None, seen: AuditedRequest) -> None:
    """Append the request's event; the caller commits it in a transaction of its own.

    One INSERT, outside the session's unit of work: every API request writes one, and nothing
    reads it back.
    """
    session.connection().execute(INSERT_EVENT, event_row(session, actor, seen))


def event_row(session: Session, actor: Actor | None, seen: AuditedRequest) -> dict[str, Any]:
    """The audit_event row of the request.

    The patient is recorded only when the actor may see that patient's data: a probe of another
    clinic's plan names the plan it tried, but not whose plan it is.
    """
    outcome = outcome_for(seen.status_code)
    details = dict(seen.details)
    if seen.operation is not None:
        details["operation"] = seen.operation
    if seen.operation == "override" and outcome == "success" and actor is not None:
        details.update(_override_reference(session, actor, seen.subjects))
    return {
        "occurred_at": seen.occurred_at,
        "request_id": seen.request_id,
        "actor_id": actor.user_id if actor else None,
        "actor_role": actor.role if actor else None,
        "clinic_id": actor.clinic_id if actor else seen.clinic_id,
        "action": seen.action,
        "resource_type": seen.resource_type,
        "resource_id": seen.resource_id,
        "patient_id": _patient_in_scope(session, actor, seen.subjects),
        "outcome": outcome,
        "status_code": seen.status_code,
        "source_address": seen.source_address,
        "method": seen.method,
        "path_template": seen.path_template,
        "details": details,
    }


def list_events(
    session: Session,
    actor: Actor,
    *,
    page: int,
    page_size: int,
    patient_id: int | None = None,
    actor_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    action: str | None = None,
    outcome: str | None = None,
) -> Page[AuditEvent]:
    """The admin's clinic's events, newest first."""
    actor.require_role("admin")
    stmt = select(AuditEvent).where(AuditEvent.clinic_id == actor.clinic_id)
    if patient_id is not None:
        stmt = stmt.where(AuditEvent.patient_id == patient_id)
    if actor_id is not None:
        stmt = stmt.where(AuditEvent.actor_id == actor_id)
    if since is not None:
        stmt = stmt.where(AuditEvent.occurred_at >= since)
    if until is not None:
        stmt = stmt.where(AuditEvent.occurred_at < until)
    if action is not None:
        stmt = stmt.where(AuditEvent.action == action)
    if outcome is not None:
        stmt = stmt.where(AuditEvent.outcome == outcome)
    stmt = stmt.order_by(AuditEvent.occurred_at.desc(), AuditEvent.id.desc())
    return paginate(session, stmt, page=page, page_size=page_size)


# For each kind of object a URL can name: its (patient_id, clinic_id), in one small query.
_PATIENT_OF: dict[str, Callable[[int], Executable]] = {
    "patient": lambda id_: select(Patient.id, Patient.clinic_id).where(Patient.id == id_),
    "plan": lambda id_: select(TreatmentPlan.patient_id, TreatmentPlan.clinic_id).where(
        TreatmentPlan.id == id_
    ),
    "dose": lambda id_: (
        select(TreatmentPlan.patient_id, TreatmentPlan.clinic_id)
        .join(Dose, Dose.plan_id == TreatmentPlan.id)
        .where(Dose.id == id_)
    ),
    "monitoring_task": lambda id_: (
        select(TreatmentPlan.patient_id, TreatmentPlan.clinic_id)
        .join(MonitoringTask, MonitoringTask.plan_id == TreatmentPlan.id)
        .where(MonitoringTask.id == id_)
    ),
    "lab_result": lambda id_: select(LabResult.patient_id, LabResult.clinic_id).where(
        LabResult.id == id_
    ),
    "reminder": lambda id_: select(Reminder.patient_id, Reminder.clinic_id).where(
        Reminder.id == id_
    ),
    "staff_alert": lambda id_: select(StaffAlert.patient_id, StaffAlert.clinic_id).where(
        StaffAlert.id == id_
    ),
    "inbox_message": lambda id_: (
        select(InboxMessage.patient_id, Patient.clinic_id)
        .join(Patient, Patient.id == InboxMessage.patient_id)
        .where(InboxMessage.id == id_)
    ),
    "device": lambda id_: (
        select(Device.patient_id, Patient.clinic_id)
        .join(Patient, Patient.id == Device.patient_id)
        .where(Device.id == id_)
    ),
}

# Objects whose (patient_id, clinic_id) are columns of their own row.
_LOADED: dict[str, tuple[type[Any], str]] = {
    "patient": (Patient, "id"),
    "plan": (TreatmentPlan, "patient_id"),
}


def note_owner(
    session: Session, resource_type: str, resource_id: int, *, patient_id: int, clinic_id: int
) -> None:
    """Who the object belongs to, as the request just read it without loading the object: its
    audit event, written in the same session, names its patient without a query."""
    session.info.setdefault(_OWNERS, {})[(resource_type, resource_id)] = (patient_id, clinic_id)


_OWNERS = "cd20_audit_owners"


def _loaded_patient_of(
    session: Session, resource_type: str, resource_id: int
) -> tuple[int, int] | None:
    """The object's (patient_id, clinic_id) from the request's own session when the request
    loaded it and nothing expired it since (a read does), or noted who owns it: the same values
    without a query."""
    noted: tuple[int, int] | None = session.info.get(_OWNERS, {}).get((resource_type, resource_id))
    if noted is not None:
        return noted
    model, patient_column = _LOADED.get(resource_type, (None, ""))
    if model is None:
        return None
    loaded = session.identity_map.get(identity_key(model, resource_id))
    if loaded is None:
        return None
    values = inspect(loaded).dict  # only what is loaded and not expired
    if patient_column not in values or "clinic_id" not in values:
        return None
    return values[patient_column], values["clinic_id"]


# Resource types whose patient is the caller's own: /me and what hangs under it.
OWN = "me"


def resolvable(resource_type: str) -> bool:
    return resource_type in _PATIENT_OF or resource_type == OWN


def _patient_in_scope(
    session: Session, actor: Actor | None, subjects: Sequence[tuple[str, int]]
) -> int | None:
    if actor is None:
        return None
    for resource_type, resource_id in reversed(subjects):
        if resource_type == OWN:
            return actor.patient_id
        query = _PATIENT_OF.get(resource_type)
        if query is None:
            continue
        row = _loaded_patient_of(session, resource_type, resource_id)
        if row is None:
            row = session.execute(query(resource_id)).first()
        if row is None:
            return None
        patient_id, clinic_id = row
        if clinic_id != actor.clinic_id or not (actor.is_staff or patient_id == actor.patient_id):
            return None
        return int(patient_id) if patient_id is not None else None
    return None


def _override_reference(
    session: Session, actor: Actor, subjects: Sequence[tuple[str, int]]
) -> dict[str, Any]:
    """The override just signed, by id, and a digest of its reason (the text stays on the row).

    The digest lets a reviewer check that the reason on the override was not edited since.
    A plan's screening override or a dose's readiness override, whichever the URL names.
    """
    dose_ids = [id_ for type_, id_ in subjects if type_ == "dose"]
    plan_ids = [id_ for type_, id_ in subjects if type_ == "plan"]
    if dose_ids:
        row = session.execute(
            select(DoseReadinessOverride.id, DoseReadinessOverride.reason)
            .where(
                DoseReadinessOverride.dose_id == dose_ids[-1],
                DoseReadinessOverride.clinician_id == actor.user_id,
            )
            .order_by(DoseReadinessOverride.id.desc())
            .limit(1)
        ).first()
    elif plan_ids:
        row = session.execute(
            select(ScreeningOverride.id, ScreeningOverride.reason)
            .where(
                ScreeningOverride.plan_id == plan_ids[-1],
                ScreeningOverride.clinician_id == actor.user_id,
            )
            .order_by(ScreeningOverride.id.desc())
            .limit(1)
        ).first()
    else:
        return {}
    if row is None:
        return {}
    return {
        "override_id": row.id,
        "reason_sha256": hashlib.sha256(row.reason.encode()).hexdigest(),
    }

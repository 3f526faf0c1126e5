"""Typed SQLAlchemy models, one module per aggregate; importing this registers them all."""

from __future__ import annotations

from service.models.audit import AuditEvent, AuditSpoolProgress
from service.models.clinic import Clinic
from service.models.console import ConsoleSession
from service.models.dose import (
    Dose,
    DoseAdministration,
    DoseCheck,
    DoseReadinessOverride,
    PremedicationGiven,
)
from service.models.export import CalendarFeed, ImportedObservation
from service.models.idempotency import IdempotencyKey
from service.models.metric import MetricCounter
from service.models.monitoring import LabResult, MonitoringFollowUp, MonitoringTask, StaffAlert
from service.models.patient import Patient
from service.models.plan import ScreeningItem, ScreeningOverride, TreatmentPlan
from service.models.reminder import (
    Delivery,
    Device,
    InboxCounter,
    InboxMessage,
    Reminder,
    RunnerLease,
)
from service.models.user import Invitation, LoginLock, RefreshToken, User

# Registers the before_flush hook that keeps the staff views' stored states.
from service.models import stored_state  # noqa: F401  # isort: skip

__all__ = [
    "AuditEvent",
    "AuditSpoolProgress",
    "CalendarFeed",
    "Clinic",
    "ConsoleSession",
    "Delivery",
    "Device",
    "Dose",
    "DoseAdministration",
    "DoseCheck",
    "DoseReadinessOverride",
    "IdempotencyKey",
    "ImportedObservation",
    "InboxCounter",
    "InboxMessage",
    "Invitation",
    "LabResult",
    "LoginLock",
    "MetricCounter",
    "MonitoringFollowUp",
    "MonitoringTask",
    "Patient",
    "PremedicationGiven",
    "RefreshToken",
    "Reminder",
    "RunnerLease",
    "ScreeningItem",
    "ScreeningOverride",
    "StaffAlert",
    "TreatmentPlan",
    "User",
]

"""Typed SQLAlchemy models, one module per aggregate; importing this registers them all."""

from __future__ import annotations

from service.models.clinic import Clinic
from service.models.dose import Dose, DoseAdministration, PremedicationGiven
from service.models.monitoring import LabResult, MonitoringTask, StaffAlert
from service.models.patient import Patient
from service.models.plan import ScreeningItem, ScreeningOverride, TreatmentPlan
from service.models.user import Invitation, RefreshToken, User

__all__ = [
    "Clinic",
    "Dose",
    "DoseAdministration",
    "Invitation",
    "LabResult",
    "MonitoringTask",
    "Patient",
    "PremedicationGiven",
    "RefreshToken",
    "ScreeningItem",
    "ScreeningOverride",
    "StaffAlert",
    "TreatmentPlan",
    "User",
]

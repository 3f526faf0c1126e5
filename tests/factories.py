"""Builders for test data, written straight to the database through the models."""

from __future__ import annotations

import itertools
from datetime import date
from typing import Any

from sqlalchemy.orm import Session

from service.access import Actor
from service.config import Settings
from service.models import Clinic, Patient, User
from service.passwords import hash_password
from service.tokens import create_access_token

PASSWORD = "correct horse battery staple"
_counter = itertools.count(1)


def make_clinic(session: Session, **fields: Any) -> Clinic:
    n = next(_counter)
    clinic = Clinic(
        name=fields.pop("name", f"Clinic {n}"),
        time_zone=fields.pop("time_zone", "Europe/Berlin"),
        **fields,
    )
    session.add(clinic)
    session.flush()
    return clinic


def make_patient(session: Session, clinic: Clinic, **fields: Any) -> Patient:
    n = next(_counter)
    values: dict[str, Any] = {
        "mrn": f"MRN{n:05d}",
        "given_name": "Alex",
        "family_name": f"Doe{n}",
        "birth_date": date(1985, 3, 14),
        "time_zone": "Europe/Berlin",
        "email": f"patient{n}@example.org",
    }
    values.update(fields)
    patient = Patient(clinic_id=clinic.id, **values)
    session.add(patient)
    session.flush()
    return patient


def make_user(
    session: Session,
    settings: Settings,
    clinic: Clinic,
    role: str = "clinician",
    *,
    patient: Patient | None = None,
    email: str | None = None,
    password: str = PASSWORD,
) -> User:
    n = next(_counter)
    user = User(
        clinic_id=clinic.id,
        email=(email or f"{role}{n}@example.org").lower(),
        password_hash=hash_password(settings, password),
        role=role,
        patient_id=patient.id if patient else None,
    )
    session.add(user)
    session.flush()
    return user


def actor_of(user: User) -> Actor:
    return Actor(
        user_id=user.id, role=user.role, clinic_id=user.clinic_id, patient_id=user.patient_id
    )


def auth_headers(settings: Settings, user: User, **extra: str) -> dict[str, str]:
    token = create_access_token(
        settings,
        user_id=user.id,
        role=user.role,
        clinic_id=user.clinic_id,
        patient_id=user.patient_id,
        generation=user.token_generation,
    )
    return {"Authorization": f"Bearer {token}", **extra}

"""Raising a staff alert: the one place one is made, with details that are codes and ids only."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.db import utcnow
from service.models import StaffAlert

# A code, an id or an ISO date/instant: no spaces, so no sentence of clinical free text fits.
_CODE = re.compile(r"[A-Za-z0-9_.:+-]{1,64}")


class NotACode(ValueError):
    """A detail that is not a code: a programming error, never shown to a user."""


def codes_only(details: Mapping[str, Any]) -> dict[str, Any]:
    """`details` unchanged if every value is a code, number, boolean, null, or a list or mapping
    of those; NotACode otherwise."""
    return {_check_key(key): _check_value(key, value) for key, value in details.items()}


def raise_alert(
    session: Session,
    *,
    clinic_id: int,
    patient_id: int | None,
    kind: str,
    subject: tuple[str, int],
    details: Mapping[str, Any] | None = None,
    now: datetime | None = None,
    once: bool = False,
    unless_open: bool = False,
) -> StaffAlert | None:
    """Add an alert for the clinic's worklist; None when nothing was added.

    With `once`, nothing is added if an alert of this kind about this subject ever existed;
    with `unless_open`, if one exists that staff have not resolved yet.
    """
    subject_type, subject_id = subject
    if once or unless_open:
        existing = select(StaffAlert.id).where(
            StaffAlert.kind == kind,
            StaffAlert.subject_type == subject_type,
            StaffAlert.subject_id == subject_id,
        )
        if unless_open:
            existing = existing.where(StaffAlert.resolved_at.is_(None))
        if session.scalar(existing) is not None:
            return None
    alert = StaffAlert(
        clinic_id=clinic_id,
        patient_id=patient_id,
        kind=_check_value("kind", kind),
        subject_type=subject_type,
        subject_id=subject_id,
        details=codes_only(details or {}),
        created_at=now or utcnow(),
    )
    session.add(alert)
    return alert


def _check_key(key: str) -> str:
    if not isinstance(key, str) or not _CODE.fullmatch(key):
        raise NotACode(f"alert detail key {key!r} is not a code")
    return key


def _check_value(key: str, value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value
    if isinstance(value, str):
        if not _CODE.fullmatch(value):
            raise NotACode(f"alert detail {key!r} is not a code")
        return value
    if isinstance(value, list | tuple):
        return [_check_value(key, item) for item in value]
    if isinstance(value, Mapping):
        return codes_only(value)
    raise NotACode(f"alert detail {key!r} has a value of type {type(value).__name__}")

"""Use cases for a patient's push devices: register a token, forget it, list for delivery."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.core.access import Actor
from service.db import utcnow
from service.errors import DeviceTokenInUse, Forbidden, NotFound
from service.models import Device

# Enough for a phone, a tablet and a browser or two; older registrations are dropped beyond it.
MAX_DEVICES_PER_PATIENT = 10


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def register_device(
    session: Session, actor: Actor, *, platform: str, token: str, now: datetime | None = None
) -> tuple[Device, bool]:
    """The caller's device for this push token, and whether it is new to the caller.

    The same token again refreshes `last_seen_at`. A token registered to another patient stays
    theirs and the request is refused: whoever knows a token must not be able to take another
    patient's reminders off their phone. (A phone changing hands is unregistered on sign-out,
    DELETE /me/devices/{id}, or when the push service reports the token gone.)
    """
    patient_id = _device_owner(actor)
    now = now or utcnow()
    device = _by_token(session, token)
    if device is None:
        try:
            with session.begin_nested():
                device = Device(
                    patient_id=patient_id,
                    platform=platform,
                    token=token,
                    token_hash=token_hash(token),
                    created_at=now,
                    last_seen_at=now,
                )
                session.add(device)
        except IntegrityError:
            # Registered at the same moment by another request: use that row.
            device = _by_token(session, token)
            if device is None:
                raise
        else:
            _drop_oldest(session, patient_id)
            return device, True
    if device.patient_id != patient_id:
        raise DeviceTokenInUse()
    device.platform = platform
    device.last_seen_at = now
    session.flush()
    return device, False


def delete_device(session: Session, actor: Actor, device_id: int) -> None:
    patient_id = _device_owner(actor)
    device = session.get(Device, device_id)
    if device is None or device.patient_id != patient_id:
        raise NotFound("Device not found")
    session.delete(device)
    session.flush()


def devices_of(session: Session, patient_id: int) -> Sequence[Device]:
    """A patient's devices, most recently seen first (for push delivery)."""
    return session.scalars(
        select(Device)
        .where(Device.patient_id == patient_id)
        .order_by(Device.last_seen_at.desc(), Device.id.desc())
    ).all()


def forget_device(session: Session, device: Device) -> None:
    """Drop a token the push service reports as no longer registered."""
    session.delete(device)
    session.flush()


def _by_token(session: Session, token: str) -> Device | None:
    return session.scalar(select(Device).where(Device.token_hash == token_hash(token)))


def _drop_oldest(session: Session, patient_id: int) -> None:
    for device in devices_of(session, patient_id)[MAX_DEVICES_PER_PATIENT:]:
        session.delete(device)
    session.flush()


def _device_owner(actor: Actor) -> int:
    if actor.is_staff or actor.patient_id is None:
        raise Forbidden("Push devices belong to a patient account")
    return actor.patient_id

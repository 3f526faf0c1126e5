"""Secret calendar feed URLs: made once, shown once, stored as a SHA-256 hash, revocable.

A feed's token is a bearer credential for one read-only document. Calendar apps poll it without
a login, so it is long and random (256 bits), compared only by its hash, rate-limited by the API
and audited on every fetch. Making a new feed revokes the previous one of the same owner.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.core.access import Actor
from service.db import utcnow
from service.errors import Forbidden, NotFound
from service.models import CalendarFeed, Patient, User
from service.vocabulary import Role

TOKEN_BYTES = 32  # secrets.token_urlsafe(32): 43 characters, 256 bits


class FeedKind(StrEnum):
    PATIENT = "patient"
    CHAIR_SCHEDULE = "chair_schedule"


@dataclass(frozen=True)
class NewFeed:
    feed: CalendarFeed
    token: str  # the only time the token exists outside the caller's calendar app


@dataclass(frozen=True)
class OpenedFeed:
    feed: CalendarFeed
    owner: Actor  # whom a fetch acts for: the feed's owner, read-only


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_patient_feed(session: Session, actor: Actor) -> NewFeed:
    """The patient's own feed; an earlier one stops working."""
    if actor.role != Role.PATIENT or actor.patient_id is None:
        raise Forbidden("Only a patient's own app can make the patient's calendar feed")
    _revoke(session, actor, kind=FeedKind.PATIENT, patient_id=actor.patient_id)
    return _create(session, actor, FeedKind.PATIENT, actor.patient_id)


def create_chair_feed(session: Session, actor: Actor) -> NewFeed:
    """The clinic's chair schedule for this staff member's calendar; an earlier one stops."""
    actor.require_staff()
    _revoke(session, actor, kind=FeedKind.CHAIR_SCHEDULE, user_id=actor.user_id)
    return _create(session, actor, FeedKind.CHAIR_SCHEDULE, None)


def revoke_my_patient_feed(session: Session, actor: Actor) -> int:
    """The patient revokes their own feed (nothing to revoke is not an error)."""
    if actor.role != Role.PATIENT or actor.patient_id is None:
        raise Forbidden("Only a patient's own app has a patient calendar feed")
    return _revoke(session, actor, kind=FeedKind.PATIENT, patient_id=actor.patient_id)


def revoke_my_chair_feed(session: Session, actor: Actor) -> int:
    """A staff member revokes their chair-schedule feed."""
    actor.require_staff()
    return _revoke(session, actor, kind=FeedKind.CHAIR_SCHEDULE, user_id=actor.user_id)


def revoke_patient_feed(session: Session, actor: Actor, patient_id: int) -> int:
    """Staff revoke a patient's feed (a lost phone, a shared calendar): 404 across clinics."""
    actor.require_staff()
    patient = session.get(Patient, patient_id)
    if patient is None:
        raise NotFound("Patient not found")
    actor.ensure_can_see(clinic_id=patient.clinic_id, patient_id=patient.id, what="Patient")
    return _revoke(session, actor, kind=FeedKind.PATIENT, patient_id=patient.id)


def open_feed(session: Session, token: str) -> OpenedFeed:
    """The active feed for a token, and its owner as an actor; 404 for anything else.

    A feed stops working when it is revoked, and also when its owner can no longer read what
    it shows (account deactivated, role changed, patient account unlinked).
    """
    if not 20 <= len(token) <= 200:
        raise NotFound("Calendar feed not found")
    feed = session.scalar(select(CalendarFeed).where(CalendarFeed.token_hash == hash_token(token)))
    if feed is None or not feed.is_active:
        raise NotFound("Calendar feed not found")
    user = session.get(User, feed.user_id)
    if user is None or not user.is_active or user.clinic_id != feed.clinic_id:
        raise NotFound("Calendar feed not found")
    if feed.kind == FeedKind.PATIENT:
        if user.role != Role.PATIENT or user.patient_id != feed.patient_id:
            raise NotFound("Calendar feed not found")
    elif not user.is_staff:
        raise NotFound("Calendar feed not found")
    owner = Actor(
        user_id=user.id, role=user.role, clinic_id=user.clinic_id, patient_id=user.patient_id
    )
    return OpenedFeed(feed, owner)


def _create(session: Session, actor: Actor, kind: FeedKind, patient_id: int | None) -> NewFeed:
    token = secrets.token_urlsafe(TOKEN_BYTES)
    feed = CalendarFeed(
        clinic_id=actor.clinic_id,
        kind=kind.value,
        patient_id=patient_id,
        user_id=actor.user_id,
        token_hash=hash_token(token),
        created_at=utcnow(),
    )
    session.add(feed)
    session.flush()
    return NewFeed(feed, token)


def _revoke(
    session: Session,
    actor: Actor,
    *,
    kind: FeedKind,
    patient_id: int | None = None,
    user_id: int | None = None,
) -> int:
    stmt = update(CalendarFeed).where(
        CalendarFeed.clinic_id == actor.clinic_id,
        CalendarFeed.kind == kind.value,
        CalendarFeed.revoked_at.is_(None),
    )
    if patient_id is not None:
        stmt = stmt.where(CalendarFeed.patient_id == patient_id)
    if user_id is not None:
        stmt = stmt.where(CalendarFeed.user_id == user_id)
    result = session.execute(
        stmt.values(revoked_at=utcnow(), revoked_by_id=actor.user_id),
        execution_options={"synchronize_session": False},
    )
    session.flush()
    return int(getattr(result, "rowcount", 0) or 0)

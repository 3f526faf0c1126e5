"""Signed, short-lived access tokens (JWT, one algorithm, issuer and audience checked).

A token carries the user id and the session generation only; everything the user may do is
read from the user row on every request, so a changed role applies to the next request.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import jwt
from cachetools import LRUCache
from sqlalchemy import Integer, Select, bindparam, select
from sqlalchemy.orm import Session

from service.config import Settings
from service.core.access import Actor
from service.db import utcnow
from service.errors import InvalidToken
from service.models import User

ALGORITHM = "HS256"


# Exactly these claims: a token names its user and session generation, nothing the user row
# decides (role, clinic, patient), so editing a claim cannot grant anything.
CLAIMS = frozenset({"iss", "aud", "sub", "iat", "nbf", "exp", "jti", "typ", "gen"})


def create_access_token(
    settings: Settings,
    *,
    user_id: int,
    generation: int,
    now: datetime | None = None,
    jti: str | None = None,
) -> str:
    """A signed access token; the same arguments (`now` and `jti` included) give the same token."""
    issued = now or utcnow()
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "iat": int(issued.timestamp()),
        "nbf": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=settings.access_token_ttl_s)).timestamp()),
        "jti": jti or uuid.uuid4().hex,
        "typ": "access",
        "gen": generation,
    }
    return jwt.encode(claims, settings.signing_key, algorithm=ALGORITHM)


def decode_access_token(settings: Settings, token: str) -> dict[str, Any]:
    """The claims of a valid access token; InvalidToken otherwise.

    A token this process verified before, under the same key, issuer and audience, is not
    verified again while it lasts: the same text carries the same signature, and only its
    expiry can change the answer (its account is checked against the user row every time).
    """
    key = (token, settings.signing_key, settings.jwt_issuer, settings.jwt_audience)
    with _VERIFIED_LOCK:
        known: dict[str, Any] | None = _VERIFIED.get(key)
    if known is not None and time.time() < known["exp"]:
        return known
    claims = _verified_claims(settings, token)
    with _VERIFIED_LOCK:
        _VERIFIED[key] = claims
    return claims


# Verifying a token (its base64 segments, the HMAC, the claims) costs more than reading the
# account row; a polling app sends the same token for its lifetime.
_VERIFIED: LRUCache[tuple[str, str, str, str], dict[str, Any]] = LRUCache(maxsize=4096)
_VERIFIED_LOCK = threading.Lock()  # `cd20 serve` answers on threads


def _verified_claims(settings: Settings, token: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.signing_key,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "sub", "aud", "iss", "gen"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken() from exc
    if claims.get("typ") != "access" or not CLAIMS.issuperset(claims):
        raise InvalidToken()
    if not isinstance(claims["gen"], int) or not str(claims["sub"]).isdigit():
        raise InvalidToken()
    return claims


# Columns, not the entity: every request reads this row, and most need nothing else of it.
ACCOUNT_COLUMNS = (
    User.id, User.role, User.clinic_id, User.patient_id, User.is_active, User.token_generation
)  # fmt: skip
# Built once: building and keying a statement costs more than running this one.
_USER_ROW = select(*ACCOUNT_COLUMNS).where(User.id == bindparam("user_id", type_=Integer))


@dataclass
class Caller:
    """A request's verified token, and the actor once its account row has been read.

    The signature, expiry, issuer and audience are checked when the token is decoded; that the
    account is still active and the token's session generation current is checked against the
    row, by `admit`. A polled read reads that row in its own first statement (`with_account`)
    instead of a statement of its own: one round trip less on every poll.
    """

    user_id: int
    generation: int
    actor: Actor | None = None

    def admit(self, row: Sequence[Any] | None) -> Actor:
        """The actor, from a row that starts with ACCOUNT_COLUMNS; InvalidToken when the account
        is gone, disabled or signed out since the token was issued."""
        if row is None:
            raise InvalidToken()
        user_id, role, clinic_id, patient_id, is_active, generation = row[: len(ACCOUNT_COLUMNS)]
        if not is_active or generation != self.generation:
            raise InvalidToken()
        self.actor = Actor(user_id=user_id, role=role, clinic_id=clinic_id, patient_id=patient_id)
        return self.actor


def caller_of(settings: Settings, token: str) -> Caller:
    """The caller a bearer token names, its account row not read yet."""
    claims = decode_access_token(settings, token)
    return Caller(user_id=int(claims["sub"]), generation=claims["gen"])


def with_account(*columns: Any) -> Select[Any]:
    """ACCOUNT_COLUMNS of the caller (parameter `user_id`), then `columns`, which may refer to
    the caller's row (User): one statement that authenticates a read and does its first work.
    Pass its row to `Caller.admit` before using the rest."""
    return select(*ACCOUNT_COLUMNS, *columns).where(User.id == bindparam("user_id", type_=Integer))


def authenticate_caller(session: Session, caller: Caller) -> Actor:
    """The caller's actor, reading their account row unless a statement of the request has."""
    if caller.actor is not None:
        return caller.actor
    return caller.admit(
        session.connection().execute(_USER_ROW, {"user_id": caller.user_id}).first()
    )


def authenticate(session: Session, settings: Settings, token: str) -> Actor:
    """The actor behind a bearer token: role, clinic and patient come from the user row, now."""
    return authenticate_caller(session, caller_of(settings, token))

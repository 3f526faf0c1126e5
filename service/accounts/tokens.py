"""Signed, short-lived access tokens (JWT, one algorithm, issuer and audience checked).

A token carries the user id and the session generation only; everything the user may do is
read from the user row on every request, so a changed role applies to the next request.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt
from sqlalchemy import Integer, bindparam, select
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


# Columns, not the entity: every request reads this row, and most need nothing else of it. Built
# once: building and keying a statement costs more than running this one.
_USER_ROW = select(
    User.id, User.role, User.clinic_id, User.patient_id, User.is_active, User.token_generation
).where(User.id == bindparam("user_id", type_=Integer))


def authenticate(session: Session, settings: Settings, token: str) -> Actor:
    """The actor behind a bearer token: role, clinic and patient come from the user row, now."""
    claims = decode_access_token(settings, token)
    user = session.connection().execute(_USER_ROW, {"user_id": int(claims["sub"])}).first()
    if user is None or not user.is_active or user.token_generation != claims["gen"]:
        raise InvalidToken()
    return Actor(
        user_id=user.id, role=user.role, clinic_id=user.clinic_id, patient_id=user.patient_id
    )

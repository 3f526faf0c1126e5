"""Signed, short-lived access tokens (JWT, one algorithm, issuer and audience checked)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import jwt

from service.config import Settings
from service.core.access import Actor
from service.db import utcnow
from service.errors import InvalidToken

ALGORITHM = "HS256"


def create_access_token(
    settings: Settings,
    *,
    user_id: int,
    role: str,
    clinic_id: int,
    patient_id: int | None,
    generation: int,
    now: datetime | None = None,
) -> str:
    issued = now or utcnow()
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "sub": str(user_id),
        "iat": int(issued.timestamp()),
        "nbf": int(issued.timestamp()),
        "exp": int((issued + timedelta(seconds=settings.access_token_ttl_s)).timestamp()),
        "jti": uuid.uuid4().hex,
        "typ": "access",
        "role": role,
        "clinic_id": clinic_id,
        "gen": generation,
    }
    if patient_id is not None:
        claims["patient_id"] = patient_id
    return jwt.encode(claims, settings.secret_key, algorithm=ALGORITHM)


def decode_access_token(settings: Settings, token: str) -> dict[str, Any]:
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            settings.secret_key,
            algorithms=[ALGORITHM],
            audience=settings.jwt_audience,
            issuer=settings.jwt_issuer,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken() from exc
    if claims.get("typ") != "access":
        raise InvalidToken()
    return claims


def actor_from_claims(claims: dict[str, Any]) -> Actor:
    return Actor(
        user_id=int(claims["sub"]),
        role=str(claims["role"]),
        clinic_id=int(claims["clinic_id"]),
        patient_id=claims.get("patient_id"),
    )


def authenticate(session: Any, settings: Settings, token: str) -> Actor:
    """The actor behind a bearer token, if the token is valid and its account still is."""
    from service.models import User

    claims = decode_access_token(settings, token)
    user = session.get(User, int(claims["sub"]))
    if user is None or not user.is_active or user.token_generation != claims.get("gen"):
        raise InvalidToken()
    return actor_from_claims(claims)

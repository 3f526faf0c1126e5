"""Use cases for Idempotency-Key: claim a key before a request runs, keep its response, purge."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.db import utcnow
from service.errors import IdempotencyInFlight, IdempotencyKeyReused, ValidationFailed
from service.models import IdempotencyKey
from service.models.idempotency import DONE, IN_FLIGHT, MAX_KEY_LENGTH

KEY_TTL = timedelta(hours=24)
# How long a claimed key's request may run: after it, a claim that stored nothing is abandoned
# (its process died, its transaction never committed) and a retry may run the request again.
CLAIM_LEASE = timedelta(seconds=35)
HEADER = "Idempotency-Key"


@dataclass(frozen=True)
class StoredResponse:
    status: int
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Claim:
    """The key is ours to run the request (`record_id`, claimed at `claimed_at`: a claim taken
    over by a retry is another one), or `replay` holds the first answer."""

    record_id: int | None = None
    claimed_at: datetime | None = None
    replay: StoredResponse | None = None


def check_key(key: str) -> str:
    """1 to 255 visible ASCII characters (RFC 9110 field value without spaces)."""
    if not 1 <= len(key) <= MAX_KEY_LENGTH or not all("!" <= ch <= "~" for ch in key):
        raise ValidationFailed(
            "Invalid Idempotency-Key",
            errors={HEADER: [f"1 to {MAX_KEY_LENGTH} visible ASCII characters, no spaces."]},
        )
    return key


def request_fingerprint(method: str, path: str, body: bytes) -> str:
    """sha256 over method, path and the body as canonical JSON (key order and spacing ignored)."""
    try:
        canonical = json.dumps(
            json.loads(body), sort_keys=True, separators=(",", ":"), ensure_ascii=False
        ).encode()
    except ValueError:  # not JSON: the view will refuse it; compare the bytes as sent
        canonical = body
    digest = hashlib.sha256()
    for part in (method.upper().encode(), path.encode(), canonical):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


def claim_key(
    session: Session,
    *,
    user_id: int,
    key: str,
    method: str,
    path: str,
    request_hash: str,
    ttl: timedelta = KEY_TTL,
    lease: timedelta = CLAIM_LEASE,
    now: datetime | None = None,
) -> Claim:
    """Insert the key as in_flight, or say what became of the request that holds it.

    The caller commits right away, before running the request, so that another process
    retrying with the same key sees the claim: the unique (user_id, key) decides the race.
    Raises IdempotencyKeyReused for another request under the same key, IdempotencyInFlight
    while the first one is still running. A claim older than `lease` that is still in flight
    stored nothing (the response commits with the request's writes): it is taken over.
    """
    now = now or utcnow()
    for _ in range(3):
        record = IdempotencyKey(
            user_id=user_id,
            key=key,
            method=method.upper(),
            path=path,
            request_hash=request_hash,
            status=IN_FLIGHT,
            created_at=now,
            expires_at=now + ttl,
        )
        try:
            with session.begin_nested():
                session.add(record)
        except IntegrityError:
            pass
        else:
            return Claim(record_id=record.id, claimed_at=now)
        existing = session.scalar(
            select(IdempotencyKey).where(
                IdempotencyKey.user_id == user_id, IdempotencyKey.key == key
            )
        )
        if existing is None:  # the holder gave up (its request failed) meanwhile: claim again
            continue
        if existing.expires_at <= now:  # expired but not purged yet: the key is free again
            session.execute(delete(IdempotencyKey).where(IdempotencyKey.id == existing.id))
            continue
        if existing.request_hash != request_hash:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was used for a different request: use a new key"
            )
        if not existing.is_done and existing.created_at <= now - lease:
            _take_over(session, existing.id, claimed_before=now - lease)
            continue
        if not existing.is_done or existing.response_status is None:
            raise IdempotencyInFlight(
                "A request with this Idempotency-Key is still in progress: retry later"
            )
        return Claim(
            replay=StoredResponse(
                status=existing.response_status,
                body=existing.response_body or b"",
                headers=dict(existing.response_headers or {}),
            )
        )
    raise IdempotencyInFlight("A request with this Idempotency-Key is still in progress")


def _take_over(session: Session, record_id: int, *, claimed_before: datetime) -> None:
    """Drop an abandoned claim, unless its request finished meanwhile (then it is replayed)."""
    session.execute(
        delete(IdempotencyKey)
        .where(
            IdempotencyKey.id == record_id,
            IdempotencyKey.status == IN_FLIGHT,
            IdempotencyKey.created_at <= claimed_before,
        )
        .execution_options(synchronize_session=False)
    )
    session.expire_all()


def record_response(
    session: Session, record_id: int, response: StoredResponse, *, claimed_at: datetime
) -> bool:
    """Keep the request's response on its claimed key, to replay it to retries.

    False when the claim is gone: it lapsed and a retry took the key over.
    """
    result = session.execute(
        update(IdempotencyKey)
        .where(
            IdempotencyKey.id == record_id,
            IdempotencyKey.status == IN_FLIGHT,
            IdempotencyKey.created_at == claimed_at,
        )
        .values(
            status=DONE,
            response_status=response.status,
            response_body=response.body,
            response_headers=response.headers,
        )
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


def release_key(session: Session, record_id: int, *, claimed_at: datetime) -> None:
    """The request failed without being processed (5xx): a retry may run it again."""
    session.execute(
        delete(IdempotencyKey)
        .where(
            IdempotencyKey.id == record_id,
            IdempotencyKey.status == IN_FLIGHT,
            IdempotencyKey.created_at == claimed_at,
        )
        .execution_options(synchronize_session=False)
    )


def purge_expired_keys(session: Session, *, now: datetime | None = None) -> int:
    """Delete the keys older than their time to live; returns how many."""
    result = session.execute(
        delete(IdempotencyKey)
        .where(IdempotencyKey.expires_at <= (now or utcnow()))
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)

"""Use cases for the staff console's sign-in: server-side sessions named by a random token."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from service.accounts.users import LoginAccount, check_login
from service.config import Settings
from service.core.access import Actor
from service.db import utcnow
from service.errors import Forbidden
from service.models import ConsoleSession, User
from service.vocabulary import STAFF_ROLES

# A session unused this long ends (a shared ward computer left signed in).
IDLE_TIMEOUT = timedelta(minutes=30)
# However busy, a session ends this long after sign-in: one working shift.
ABSOLUTE_TIMEOUT = timedelta(hours=12)
# last_seen_at is written at most this often, not on every page.
TOUCH_EVERY = timedelta(minutes=1)


class StaffOnly(Forbidden):
    code = "staff_only"
    title = "The console is for clinic staff"


@dataclass(frozen=True)
class SignIn:
    """A new session's token (for the cookie only), or the refusal to raise once committed."""

    token: str | None = None
    refusal: Exception | None = None
    user: User | None = None
    # The existing account the attempt named, for the audit trail (never for the answer).
    account: LoginAccount | None = None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def sign_in(
    session: Session,
    settings: Settings,
    *,
    email: str,
    password: str,
    client_address: str | None,
    now: datetime | None = None,
) -> SignIn:
    """Check the password as the API's log-in does (same counts and locks); staff only."""
    now = now or utcnow()
    check = check_login(
        session,
        settings,
        username=email,
        password=password,
        client_address=client_address,
        now=now,
    )
    if check.user is None:
        return SignIn(refusal=check.refusal, account=check.account)
    user = check.user
    if user.role not in STAFF_ROLES:
        refusal = StaffOnly("The console is for clinic staff; patients use the app.")
        return SignIn(refusal=refusal, account=check.account)
    # Sessions of this account that ended are forgotten at its next sign-in.
    session.execute(
        delete(ConsoleSession).where(
            ConsoleSession.user_id == user.id,
            (ConsoleSession.expires_at <= now)
            | (ConsoleSession.last_seen_at <= now - IDLE_TIMEOUT),
        )
    )
    token = secrets.token_urlsafe(32)
    session.add(
        ConsoleSession(
            token_hash=_digest(token),
            user_id=user.id,
            token_generation=user.token_generation,
            created_at=now,
            last_seen_at=now,
            expires_at=now + ABSOLUTE_TIMEOUT,
        )
    )
    session.flush()
    return SignIn(token=token, user=user, account=check.account)


def resume(session: Session, token: str | None, *, now: datetime | None = None) -> Actor | None:
    """The staff member a cookie's token signs in, or None when the session is over."""
    if not token:
        return None
    now = now or utcnow()
    row = session.scalar(select(ConsoleSession).where(ConsoleSession.token_hash == _digest(token)))
    if row is None:
        return None
    user = session.get(User, row.user_id)
    over = (
        row.expires_at <= now
        or row.last_seen_at + IDLE_TIMEOUT <= now
        or user is None
        or not user.is_active
        or user.role not in STAFF_ROLES
        or user.token_generation != row.token_generation
    )
    if over:
        session.delete(row)
        session.flush()
        return None
    assert user is not None
    if now - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = now
        session.flush()
    return Actor(user_id=user.id, role=user.role, clinic_id=user.clinic_id)


def sign_out(session: Session, token: str | None) -> None:
    """End the session the token names (nothing if it has already ended)."""
    if token:
        session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == _digest(token)))
        session.flush()


def purge_ended(session: Session, *, now: datetime | None = None) -> int:
    """Delete the sessions that are over (expired, idle too long, or of an account since
    deactivated, demoted or given a new password); returns how many."""
    now = now or utcnow()
    account = select(User.id).where(
        User.id == ConsoleSession.user_id,
        User.is_active.is_(True),
        User.role.in_(STAFF_ROLES),
        User.token_generation == ConsoleSession.token_generation,
    )
    result = session.execute(
        delete(ConsoleSession)
        .where(
            (ConsoleSession.expires_at <= now)
            | (ConsoleSession.last_seen_at <= now - IDLE_TIMEOUT)
            | ~account.exists()
        )
        .execution_options(synchronize_session=False)
    )
    return int(getattr(result, "rowcount", 0) or 0)

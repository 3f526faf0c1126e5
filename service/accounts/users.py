"""Use cases for accounts: log in, refresh, log out, invite and activate patients, staff users."""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from service.accounts.passwords import check_password_policy, hash_password, hasher, verify_password
from service.accounts.tokens import create_access_token
from service.config import Settings
from service.core.access import Actor
from service.core.paging import Page, paginate
from service.db import utcnow
from service.errors import (
    AccountLocked,
    AlreadyExists,
    Conflict,
    DomainError,
    InvalidCode,
    InvalidCredentials,
    InvalidToken,
    NotFound,
    TooManyAttempts,
    ValidationFailed,
)
from service.models import (
    Clinic,
    Invitation,
    LoginLock,
    Patient,
    RefreshToken,
    User,
)
from service.patients.records import get_patient
from service.staff.alerts import raise_alert
from service.vocabulary import STAFF_ROLES

# Alerts about accounts: codes only in the details.
LOGIN_ALERT_KIND = "login_failures"
# Where no client address is known (the command line, a test).
NO_ADDRESS = "unknown"
# Counts with no failure for this long are forgotten (guesses at made-up names leave rows).
LOGIN_LOCK_KEPT = timedelta(days=1)
# No 0/O, 1/I: a code read aloud or typed from a letter survives. 32 symbols x 10 = 50 bits.
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_LENGTH = 10
CODE_GROUP = 5
MAX_EMAIL_LENGTH = 254
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    refresh_expires_in: int
    token_type: str = "Bearer"


@dataclass(frozen=True)
class LoginAccount:
    """The existing account a log-in named, for the audit trail (never for the answer)."""

    user_id: int
    clinic_id: int


@dataclass(frozen=True)
class AuthOutcome:
    """Tokens, or the refusal to raise once the caller has committed.

    A refused login or refresh still changes the database (the failed-login count, a revoked
    token family), so the caller commits first and then calls `tokens()`.
    """

    pair: TokenPair | None = None
    refusal: DomainError | None = None
    account: LoginAccount | None = None

    def tokens(self) -> TokenPair:
        if self.refusal is not None:
            raise self.refusal
        if self.pair is None:  # pragma: no cover - every outcome carries one or the other
            raise InvalidToken()
        return self.pair


@dataclass(frozen=True)
class IssuedInvitation:
    """The clear-text code exists only here: the database keeps its hash."""

    invitation: Invitation
    code: str
    email: str

    @property
    def expires_at(self) -> datetime:
        return self.invitation.expires_at

    @property
    def patient_id(self) -> int:
        return self.invitation.patient_id


def normalise_email(email: str, *, field: str = "email") -> str:
    """Lower-cased and checked: e-mail addresses are login names, compared case-insensitively."""
    value = email.strip().lower()
    if len(value) > MAX_EMAIL_LENGTH or not _EMAIL.match(value):
        raise ValidationFailed(
            "Not a valid e-mail address", errors={field: ["Not a valid e-mail."]}
        )
    return value


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


# --- logging in -----------------------------------------------------------------------------


def log_in(
    session: Session,
    settings: Settings,
    *,
    username: str,
    password: str,
    client_address: str | None = None,
    now: datetime | None = None,
) -> AuthOutcome:
    """Check an e-mail and password (check_login), and issue the app's tokens."""
    now = now or utcnow()
    check = check_login(
        session,
        settings,
        username=username,
        password=password,
        client_address=client_address,
        now=now,
    )
    if check.user is None:
        return AuthOutcome(refusal=check.refusal, account=check.account)
    pair = _issue_tokens(session, settings, check.user, now=now)
    return AuthOutcome(pair=pair, account=check.account)


@dataclass(frozen=True)
class LoginCheck:
    """The account whose password was right, or the refusal to raise once committed."""

    user: User | None = None
    refusal: DomainError | None = None
    account: LoginAccount | None = None


def check_login(
    session: Session,
    settings: Settings,
    *,
    username: str,
    password: str,
    client_address: str | None = None,
    now: datetime | None = None,
) -> LoginCheck:
    """Check an e-mail and password, for the app's tokens and the staff console alike.

    Known and unknown names take the same path and get the same answers: the password is always
    hashed, failures count per (name, address) whether or not the name is an account, and after
    `login_lock_after` in a row that address is locked out of that name for a while. Another
    address is not: the right password from it still logs in.
    """
    now = now or utcnow()
    login = username.strip().lower()
    address = _address(client_address)
    user = session.scalar(select(User).where(User.email == login))
    account = LoginAccount(user_id=user.id, clinic_id=user.clinic_id) if user else None
    lock = _login_lock(session, login, address)
    if lock is not None and lock.locked_until is not None and lock.locked_until > now:
        return LoginCheck(refusal=_locked(lock.locked_until, now), account=account)
    # Always hash, so an unknown or inactive account costs the same time as a wrong password.
    correct = verify_password(settings, user.password_hash if user else None, password)
    if user is None or not user.is_active or user.password_hash is None or not correct:
        until = count_failed_password(session, settings, login, address, now=now, user=user)
        refusal = _locked(until, now) if until is not None else InvalidCredentials()
        return LoginCheck(refusal=refusal, account=account)
    _clear_failures(session, user, login, address)
    if hasher(settings).check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(settings, password)
    return LoginCheck(user=user, account=account)


def _address(client_address: str | None) -> str:
    return (client_address or NO_ADDRESS)[:45]


def _locked(until: datetime, now: datetime) -> AccountLocked:
    return AccountLocked(
        "Too many failed logins from here: try again later", retry_after=_seconds(until, now)
    )


def _seconds(until: datetime, now: datetime) -> int:
    return max(1, math.ceil((until - now).total_seconds()))


def _account_key(login: str) -> str:
    return _sha256(login.strip().lower())


def _login_lock(session: Session, login: str, address: str) -> LoginLock | None:
    return session.scalar(
        select(LoginLock)
        .where(LoginLock.account_key == _account_key(login), LoginLock.client_address == address)
        .execution_options(populate_existing=True)
    )


def count_failed_password(
    session: Session,
    settings: Settings,
    login: str,
    address: str,
    *,
    now: datetime,
    user: User | None,
) -> datetime | None:
    """Count a wrong password for (login, address); the lock's end if this one locks it.

    The account's own count (every address) grows too, and past `login_alert_after` staff get an
    alert, once until they resolve it.
    """
    key = _account_key(login)
    session.execute(
        delete(LoginLock)
        .where(
            LoginLock.last_failed_at < now - LOGIN_LOCK_KEPT,
            or_(LoginLock.locked_until.is_(None), LoginLock.locked_until < now),
        )
        .execution_options(synchronize_session=False)
    )
    insert_ignore = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    # Counted in SQL: concurrent failures each count, and the row is made once.
    session.execute(
        insert_ignore(LoginLock)
        .values(account_key=key, client_address=address, failures=0, last_failed_at=now)
        .on_conflict_do_nothing(index_elements=["account_key", "client_address"])
    )
    session.execute(
        update(LoginLock)
        .where(LoginLock.account_key == key, LoginLock.client_address == address)
        .values(failures=LoginLock.failures + 1, last_failed_at=now)
        .execution_options(synchronize_session=False)
    )
    if user is not None:
        _count_account_failure(session, settings, user, now)
    lock = _login_lock(session, login, address)
    if lock is None or lock.failures < settings.login_lock_after:
        return None
    lock.failures = 0
    lock.locked_until = now + timedelta(seconds=settings.login_lock_s)
    session.flush()
    return lock.locked_until


def _count_account_failure(session: Session, settings: Settings, user: User, now: datetime) -> None:
    user.failed_logins = User.failed_logins + 1
    session.flush()
    failures = user.failed_logins
    if failures < settings.login_alert_after:
        return
    raise_alert(
        session,
        clinic_id=user.clinic_id,
        patient_id=user.patient_id,
        kind=LOGIN_ALERT_KIND,
        subject=("user", user.id),
        details={"failed_logins": failures, "threshold": settings.login_alert_after},
        now=now,
        unless_open=True,
    )
    session.flush()


def _clear_failures(session: Session, user: User, login: str, address: str) -> None:
    """The right password: this address starts counting afresh, and so does the account."""
    session.execute(
        delete(LoginLock).where(
            LoginLock.account_key == _account_key(login), LoginLock.client_address == address
        )
    )
    user.failed_logins = 0
    user.locked_until = None


def _issue_tokens(
    session: Session,
    settings: Settings,
    user: User,
    *,
    now: datetime,
    family_id: str | None = None,
    rotated_from: str | None = None,
) -> TokenPair:
    if rotated_from is None:
        refresh, jti = secrets.token_urlsafe(32), None
    else:
        refresh, jti = _successor(settings, rotated_from)
    session.add(
        RefreshToken(
            user_id=user.id,
            family_id=family_id or str(uuid.uuid4()),
            token_hash=_sha256(refresh),
            issued_at=now,
            expires_at=now + timedelta(seconds=settings.refresh_token_ttl_s),
        )
    )
    session.flush()
    return _pair(settings, user, refresh, jti=jti, issued_at=now, now=now)


def _pair(
    settings: Settings,
    user: User,
    refresh: str,
    *,
    jti: str | None,
    issued_at: datetime,
    now: datetime,
) -> TokenPair:
    access = create_access_token(
        settings, user_id=user.id, generation=user.token_generation, now=issued_at, jti=jti
    )
    age = math.ceil((now - issued_at).total_seconds())
    return TokenPair(
        access_token=access,
        refresh_token=refresh,
        expires_in=max(settings.access_token_ttl_s - age, 0),
        refresh_expires_in=max(settings.refresh_token_ttl_s - age, 0),
    )


def _successor(settings: Settings, refresh_token: str) -> tuple[str, str]:
    """The refresh token and access-token id a rotation of `refresh_token` hands out.

    Derived from the presented token under the server's key, so a repeat of the same rotation
    can hand out the same pair again while the database keeps only the successor's hash.
    """
    key = settings.signing_key.encode()
    refresh = hmac.new(key, b"refresh-rotation\x00" + refresh_token.encode(), "sha256").digest()
    jti = hmac.new(key, b"access-jti\x00" + refresh_token.encode(), "sha256").hexdigest()
    return base64.urlsafe_b64encode(refresh).rstrip(b"=").decode(), jti[:32]


def refresh_session(
    session: Session, settings: Settings, *, refresh_token: str, now: datetime | None = None
) -> AuthOutcome:
    """Trade a refresh token for a new pair (same family); a reused token revokes its family.

    A token presented again within `settings.refresh_grace_s` of its rotation (two requests of
    one app refreshing at once) gets the pair that rotation handed out, while that pair's
    refresh token is still unused; later, or after that, a reuse ends the family.
    """
    now = now or utcnow()
    token = session.scalar(
        select(RefreshToken).where(RefreshToken.token_hash == _sha256(refresh_token))
    )
    if token is None or token.revoked_at is not None:
        return AuthOutcome(refusal=InvalidToken())
    user = session.get(User, token.user_id)
    if token.used_at is not None:
        return _repeat_rotation(session, settings, token, user, refresh_token, token.used_at, now)
    if token.expires_at <= now or user is None or not user.is_active:
        return AuthOutcome(refusal=InvalidToken())
    # Claimed in SQL: of two refreshes racing with one token, only one rotates it; the other
    # waits for it (a row lock on PostgreSQL, the write lock on SQLite) and repeats it.
    claimed = session.execute(
        update(RefreshToken)
        .where(
            RefreshToken.id == token.id,
            RefreshToken.used_at.is_(None),
            RefreshToken.revoked_at.is_(None),
        )
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        used_at = session.scalar(select(RefreshToken.used_at).where(RefreshToken.id == token.id))
        return _repeat_rotation(session, settings, token, user, refresh_token, used_at, now)
    return AuthOutcome(
        pair=_issue_tokens(
            session, settings, user, now=now, family_id=token.family_id, rotated_from=refresh_token
        )
    )


def _repeat_rotation(
    session: Session,
    settings: Settings,
    token: RefreshToken,
    user: User | None,
    refresh_token: str,
    used_at: datetime | None,
    now: datetime,
) -> AuthOutcome:
    """A used token again: the same pair within the grace window, else the family ends."""
    if used_at is not None and user is not None and user.is_active:
        grace = timedelta(seconds=settings.refresh_grace_s)
        within = grace > timedelta(0) and now - used_at <= grace
        refresh, jti = _successor(settings, refresh_token)
        successor = session.scalar(
            select(RefreshToken.id).where(
                RefreshToken.token_hash == _sha256(refresh),
                RefreshToken.family_id == token.family_id,
                RefreshToken.used_at.is_(None),
                RefreshToken.revoked_at.is_(None),
                RefreshToken.expires_at > now,
            )
        )
        if within and successor is not None:
            return AuthOutcome(
                pair=_pair(settings, user, refresh, jti=jti, issued_at=used_at, now=now)
            )
    _reuse_detected(session, token, now)
    return AuthOutcome(refusal=InvalidToken())


def _reuse_detected(session: Session, token: RefreshToken, now: datetime) -> None:
    """A used token came back: someone holds a copy. End the family and the access tokens."""
    _revoke_refresh_tokens(session, now, RefreshToken.family_id == token.family_id)
    _bump_generation(session, token.user_id)


def _revoke_refresh_tokens(session: Session, now: datetime, *where: Any) -> None:
    session.execute(
        update(RefreshToken)
        .where(RefreshToken.revoked_at.is_(None), *where)
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )


def _bump_generation(session: Session, user_id: int) -> None:
    """Every access token issued so far for this user stops working."""
    session.execute(
        update(User)
        .where(User.id == user_id)
        .values(token_generation=User.token_generation + 1)
        .execution_options(synchronize_session="fetch")
    )


def log_out(
    session: Session,
    actor: Actor,
    *,
    refresh_token: str | None = None,
    now: datetime | None = None,
) -> None:
    """End the given refresh token's family (or all of them) and the current access tokens."""
    now = now or utcnow()
    if refresh_token:
        family = select(RefreshToken.family_id).where(
            RefreshToken.token_hash == _sha256(refresh_token),
            RefreshToken.user_id == actor.user_id,
        )
        _revoke_refresh_tokens(session, now, RefreshToken.family_id.in_(family))
    else:
        _revoke_refresh_tokens(session, now, RefreshToken.user_id == actor.user_id)
    _bump_generation(session, actor.user_id)
    session.flush()


# --- patients' accounts ---------------------------------------------------------------------


def _new_code() -> str:
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
    return "-".join(raw[i : i + CODE_GROUP] for i in range(0, CODE_LENGTH, CODE_GROUP))


def _normalise_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code).upper()


def invite_patient(
    session: Session,
    actor: Actor,
    settings: Settings,
    *,
    patient_id: int,
    now: datetime | None = None,
) -> IssuedInvitation:
    """A one-time activation code for the patient's app; earlier unused codes stop working."""
    actor.require_staff()
    now = now or utcnow()
    patient = get_patient(session, actor, patient_id)
    email = _patient_login_email(patient)
    _ensure_can_have_account(session, patient, email)
    session.execute(
        update(Invitation)
        .where(
            Invitation.patient_id == patient.id,
            Invitation.used_at.is_(None),
            Invitation.expires_at > now,
        )
        .values(expires_at=now)
        .execution_options(synchronize_session=False)
    )
    code = _new_code()
    invitation = Invitation(
        patient_id=patient.id,
        code_hash=_sha256(_normalise_code(code)),
        created_by_id=actor.user_id,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.invitation_ttl_s),
    )
    session.add(invitation)
    session.flush()
    return IssuedInvitation(invitation=invitation, code=code, email=email)


def _patient_login_email(patient: Patient) -> str:
    if not patient.email:
        raise ValidationFailed(
            "The patient has no e-mail address to log in with",
            errors={"email": ["The patient needs an e-mail address first."]},
        )
    return normalise_email(patient.email)


def _ensure_can_have_account(session: Session, patient: Patient, email: str) -> User | None:
    """The patient's existing (inactive) account, if any; refuse an active one or a taken e-mail."""
    account = session.scalar(select(User).where(User.patient_id == patient.id))
    if account is not None and account.is_active:
        raise AlreadyExists("The patient already has an active account")
    taken = session.scalar(
        select(User.id).where(
            User.email == email, or_(User.patient_id.is_(None), User.patient_id != patient.id)
        )
    )
    if taken is not None:
        raise email_unavailable()
    return account


def email_unavailable() -> AlreadyExists:
    """The one refusal for an e-mail address that cannot become a login, whatever the cause.

    Logins are unique across clinics, so the address may belong to another clinic's account:
    the answer must not say whether it does, nor differ from the answer for this clinic's own.
    """
    return AlreadyExists(
        "This e-mail address cannot be used for a new account",
        errors={"email": ["Cannot be used for a new account: choose another address."]},
    )


def activate_account(
    session: Session,
    settings: Settings,
    *,
    code: str,
    password: str,
    now: datetime | None = None,
) -> TokenPair:
    """Redeem an activation code: the patient's account gets its password and is logged in."""
    now = now or utcnow()
    check_password_policy(password)
    invitation = session.scalar(
        select(Invitation).where(Invitation.code_hash == _sha256(_normalise_code(code)))
    )
    if invitation is None or invitation.used_at is not None or invitation.expires_at <= now:
        raise _invalid_code()
    patient = session.get(Patient, invitation.patient_id)
    if patient is None or not patient.email:
        raise _invalid_code()
    email = normalise_email(patient.email)
    account = _ensure_can_have_account(session, patient, email)
    claimed = session.execute(
        update(Invitation)
        .where(Invitation.id == invitation.id, Invitation.used_at.is_(None))
        .values(used_at=now)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        raise _invalid_code()
    password_hash = hash_password(settings, password)
    if account is None:
        account = User(
            clinic_id=patient.clinic_id,
            email=email,
            role="patient",
            patient_id=patient.id,
            password_hash=password_hash,
            created_at=now,
        )
        session.add(account)
    else:
        # A deactivated account comes back with a new password; its old tokens stay dead.
        account.email = email
        account.password_hash = password_hash
        account.is_active = True
        account.failed_logins = 0
        account.locked_until = None
        account.token_generation = account.token_generation + 1
    session.flush()
    return _issue_tokens(session, settings, account, now=now)


def _invalid_code() -> InvalidCode:
    return InvalidCode(errors={"code": ["Wrong, already used or expired: ask for a new code."]})


# --- the caller's own account ---------------------------------------------------------------


def get_me(session: Session, actor: Actor) -> User:
    user = session.get(User, actor.user_id)
    if user is None:
        raise NotFound("Account not found")
    return user


def change_password(
    session: Session,
    actor: Actor,
    settings: Settings,
    *,
    current_password: str,
    new_password: str,
    client_address: str | None = None,
    now: datetime | None = None,
) -> DomainError | None:
    """Set a new password; every session of the account ends (log in again).

    The current password is checked under the log-in's limits: a wrong one counts towards the
    same (account, address) lock, and a locked address is refused. A refusal that counted is
    returned, not raised, for the caller to raise after committing the count.
    """
    now = now or utcnow()
    user = get_me(session, actor)
    check_password_policy(
        new_password, field="new_password", staff=user.is_staff, user_inputs=[user.email]
    )
    address = _address(client_address)
    lock = _login_lock(session, user.email, address)
    if lock is not None and lock.locked_until is not None and lock.locked_until > now:
        return TooManyAttempts(retry_after=_seconds(lock.locked_until, now))
    if not verify_password(settings, user.password_hash, current_password):
        until = count_failed_password(session, settings, user.email, address, now=now, user=user)
        if until is not None:
            return TooManyAttempts(retry_after=_seconds(until, now))
        return ValidationFailed(
            "The current password is wrong", errors={"current_password": ["Wrong password."]}
        )
    _clear_failures(session, user, user.email, address)
    user.password_hash = hash_password(settings, new_password)
    _revoke_refresh_tokens(session, now, RefreshToken.user_id == user.id)
    _bump_generation(session, user.id)
    session.flush()
    return None


# --- staff accounts -------------------------------------------------------------------------


def list_users(
    session: Session, actor: Actor, *, page: int, page_size: int, role: str | None = None
) -> Page[User]:
    """The clinic's accounts: staff by default, or those of one role."""
    actor.require_role("admin")
    stmt = select(User).where(User.clinic_id == actor.clinic_id)
    stmt = stmt.where(User.role == role) if role else stmt.where(User.role.in_(STAFF_ROLES))
    return paginate(session, stmt.order_by(User.email, User.id), page=page, page_size=page_size)


def get_user(session: Session, actor: Actor, user_id: int) -> User:
    actor.require_role("admin")
    user = session.get(User, user_id)
    if user is None or user.clinic_id != actor.clinic_id:
        raise NotFound("User not found")
    return user


def create_staff_user(
    session: Session, actor: Actor, settings: Settings, *, email: str, role: str, password: str
) -> User:
    """An admin adds a staff account to their own clinic."""
    actor.require_role("admin")
    return add_staff_user(
        session, settings, clinic_id=actor.clinic_id, email=email, role=role, password=password
    )


def create_user_in_clinic(
    session: Session, settings: Settings, *, clinic_id: int, email: str, role: str, password: str
) -> User:
    """A staff account for any clinic: for the operator's command line, which has no actor."""
    if session.get(Clinic, clinic_id) is None:
        raise NotFound(f"No clinic with id {clinic_id}", errors={"clinic": ["Unknown clinic."]})
    return add_staff_user(
        session, settings, clinic_id=clinic_id, email=email, role=role, password=password
    )


def add_staff_user(
    session: Session, settings: Settings, *, clinic_id: int, email: str, role: str, password: str
) -> User:
    if role not in STAFF_ROLES:
        raise ValidationFailed(
            "Not a staff role", errors={"role": [f"Must be one of: {', '.join(STAFF_ROLES)}."]}
        )
    email = normalise_email(email)
    check_password_policy(password, staff=True, user_inputs=[email])
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise email_unavailable()
    user = User(
        clinic_id=clinic_id,
        email=email,
        role=role,
        password_hash=hash_password(settings, password),
    )
    session.add(user)
    session.flush()
    return user


def update_user(
    session: Session,
    actor: Actor,
    user: User,
    changes: dict[str, Any],
    *,
    now: datetime | None = None,
) -> User:
    """Activate or deactivate an account, or move staff between admin and clinician."""
    actor.require_role("admin")
    now = now or utcnow()
    role = changes.get("role", user.role)
    is_active = changes.get("is_active", user.is_active)
    if user.id == actor.user_id and (role != user.role or not is_active):
        # The acting admin stays an active admin, so the clinic is never left without one.
        field = "role" if role != user.role else "is_active"
        raise Conflict(
            "You cannot deactivate or demote your own account",
            errors={field: ["Not allowed on your own account."]},
        )
    if role != user.role and (user.role not in STAFF_ROLES or role not in STAFF_ROLES):
        raise ValidationFailed(
            "Only staff roles can change",
            errors={"role": [f"Must stay within: {', '.join(STAFF_ROLES)}."]},
        )
    if role == user.role and is_active == user.is_active:
        return user
    user.role = role
    user.is_active = is_active
    if not is_active:
        _revoke_refresh_tokens(session, now, RefreshToken.user_id == user.id)
    # The next request reads the new role from this row; ending the sessions makes the change
    # visible to the user (log in again) rather than silently widening or narrowing a session.
    user.token_generation = user.token_generation + 1
    session.flush()
    return user

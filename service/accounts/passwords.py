"""argon2id password hashing with costs from the settings."""

from __future__ import annotations

from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from service.config import Settings
from service.errors import ValidationFailed

MIN_PASSWORD_LENGTH = 10
# Long enough for any passphrase, short enough that hashing it is not a way to burn CPU.
MAX_PASSWORD_LENGTH = 256


@lru_cache(maxsize=8)
def _hasher(time_cost: int, memory_kib: int, parallelism: int) -> PasswordHasher:
    return PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=Type.ID
    )


def hasher(settings: Settings) -> PasswordHasher:
    return _hasher(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )


def hash_password(settings: Settings, password: str) -> str:
    return hasher(settings).hash(password)


def check_password_policy(password: str, *, field: str = "password") -> None:
    """Refuse a new password that is too short or too long (per-field error on `field`)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        problem = f"Must be at least {MIN_PASSWORD_LENGTH} characters."
    elif len(password) > MAX_PASSWORD_LENGTH:
        problem = f"Must be at most {MAX_PASSWORD_LENGTH} characters."
    elif not password.strip():
        problem = "Must not be only spaces."
    else:
        return
    raise ValidationFailed("The password does not meet the policy", errors={field: [problem]})


def verify_password(settings: Settings, password_hash: str | None, password: str) -> bool:
    """Same work whether or not the account exists: no hash is checked against a dummy."""
    ph = hasher(settings)
    try:
        return ph.verify(password_hash or _dummy_hash(settings), password) and bool(password_hash)
    except (VerificationError, InvalidHashError):
        return False


def _dummy_hash(settings: Settings) -> str:
    return _dummy(
        settings.argon2_time_cost, settings.argon2_memory_kib, settings.argon2_parallelism
    )


@lru_cache(maxsize=8)
def _dummy(time_cost: int, memory_kib: int, parallelism: int) -> str:
    return _hasher(time_cost, memory_kib, parallelism).hash("not-a-real-password")

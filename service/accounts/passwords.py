"""argon2id password hashing with costs from the settings, and the password policy.

The policy measures how guessable a new password is with zxcvbn (Dropbox's estimator, with its
bundled lists of common and breached passwords, names, words and keyboard patterns): staff
passwords need 12+ characters and zxcvbn's score 3 ("safely unguessable": about 10^8 guesses);
patients' passwords 10+ characters and score 2, which refuses the most common ones.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from zxcvbn import zxcvbn

from service.config import Settings
from service.errors import ValidationFailed

MIN_PASSWORD_LENGTH = 10
MIN_STAFF_PASSWORD_LENGTH = 12
# zxcvbn scores 0-4 (log10 guesses under 3, 6, 8, 10, or more).
MIN_STAFF_SCORE = 3
MIN_PATIENT_SCORE = 2
# zxcvbn refuses longer input (its matching is quadratic); the first 72 characters decide.
ESTIMATE_LENGTH = 72
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


def check_password_policy(
    password: str,
    *,
    field: str = "password",
    staff: bool = False,
    user_inputs: Sequence[str] = (),
) -> None:
    """Refuse a new password that is too short, too long, or common or easy to guess.

    `user_inputs` (the e-mail, names) count as known to an attacker. The error is per field.
    """
    minimum = MIN_STAFF_PASSWORD_LENGTH if staff else MIN_PASSWORD_LENGTH
    if len(password) < minimum:
        problem = f"Must be at least {minimum} characters."
    elif len(password) > MAX_PASSWORD_LENGTH:
        problem = f"Must be at most {MAX_PASSWORD_LENGTH} characters."
    elif not password.strip():
        problem = "Must not be only spaces."
    else:
        weakness = guessability(password, staff=staff, user_inputs=user_inputs)
        if weakness is None:
            return
        problem = weakness
    raise ValidationFailed("The password does not meet the policy", errors={field: [problem]})


def guessability(
    password: str, *, staff: bool = False, user_inputs: Sequence[str] = ()
) -> str | None:
    """Why the password is too easy to guess, or None."""
    inputs = [part for value in user_inputs for part in _words(value)]
    estimate = zxcvbn(password[:ESTIMATE_LENGTH], user_inputs=inputs)
    if int(estimate["score"]) >= (MIN_STAFF_SCORE if staff else MIN_PATIENT_SCORE):
        return None
    warning = str(estimate["feedback"].get("warning") or "").strip()
    reason = f" ({warning.rstrip('.')})" if warning else ""
    return f"Too common or too easy to guess{reason}: use a longer passphrase of unrelated words."


def _words(value: str) -> list[str]:
    """An e-mail or a name, and its parts (ann.smith@clinic.org: ann, smith, clinic)."""
    lowered = value.strip().lower()
    parts = [lowered, *(p for p in re.split(r"[^a-z0-9]+", lowered) if len(p) >= 3)]
    return list(dict.fromkeys(parts))


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

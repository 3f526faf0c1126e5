"""Domain refusals, each with a stable machine-readable code and its HTTP status."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """A request the domain refuses. Rendered as application/problem+json."""

    status = 400
    code = "bad_request"
    title = "Bad request"

    def __init__(
        self,
        detail: str | None = None,
        *,
        errors: dict[str, Any] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or self.title)
        self.detail = detail or self.title
        self.errors = errors or {}
        self.extra = extra


class ValidationFailed(DomainError):
    status = 422
    code = "validation_failed"
    title = "The request has invalid fields"


class NotFound(DomainError):
    status = 404
    code = "not_found"
    title = "Not found"


class Unauthenticated(DomainError):
    status = 401
    code = "unauthenticated"
    title = "Authentication required"


class InvalidCredentials(Unauthenticated):
    code = "invalid_credentials"
    title = "Wrong e-mail or password"


class InvalidToken(Unauthenticated):
    code = "invalid_token"
    title = "The token is invalid, expired or revoked"


class Forbidden(DomainError):
    status = 403
    code = "forbidden"
    title = "Not allowed for this account"


class Conflict(DomainError):
    status = 409
    code = "conflict"
    title = "Conflicts with the current state"


class AlreadyExists(Conflict):
    code = "already_exists"
    title = "Already exists"


class DeviceTokenInUse(Conflict):
    """The push token is registered to another account: it stays with that account."""

    code = "device_in_use"
    title = "This push token is registered to another account"

    def __init__(self, detail: str | None = None, **extra: Any) -> None:
        super().__init__(
            detail,
            errors={"token": ["Registered to another account: sign out of it on this device."]},
            **extra,
        )


class InvalidTransition(Conflict):
    code = "invalid_transition"
    title = "Not allowed in the current status"


class ScreeningNotCleared(Conflict):
    code = "screening_not_cleared"
    title = "The pre-treatment screening is not cleared"


class DoseNotReady(Conflict):
    """The dose's own readiness items are open or blocking (see `blocking_items`)."""

    code = "dose_not_ready"
    title = "The dose's pre-dose checks are not complete"


class PremedicationOutsideWindow(ValidationFailed):
    """A required premedication is missing from the record or outside its label window."""

    code = "premedication_outside_window"
    title = "Required premedication missing or outside its window"


class MinimumIntervalViolated(Conflict):
    code = "minimum_interval"
    title = "Breaks the minimum interval between doses"


class PlanOnHold(Conflict):
    code = "plan_on_hold"
    title = "The treatment plan is on hold"


class StaleVersion(DomainError):
    status = 412
    code = "stale_version"
    title = "The resource changed since you read it"


class AccountLocked(Unauthenticated):
    """Too many failed logins in a row from this address on this login name (known or not);
    `retry_after` seconds until this address may try again. Other addresses are not locked."""

    code = "account_locked"
    title = "Too many failed logins; the account is locked for a while"

    def __init__(self, detail: str | None = None, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
        self.headers = {"Retry-After": str(retry_after)}


class TooManyAttempts(DomainError):
    """Too many wrong passwords from this address: `retry_after` seconds until it may try again.

    The same code and status as the request rate limits, for a signed-in caller (a 401 would
    read as "your session ended").
    """

    status = 429
    code = "rate_limited"
    title = "Too many attempts: wait before trying again"

    def __init__(self, detail: str | None = None, *, retry_after: int, **extra: Any) -> None:
        super().__init__(detail, retry_after=retry_after, **extra)
        self.headers = {"Retry-After": str(retry_after)}


class InvalidCode(ValidationFailed):
    code = "invalid_code"
    title = "The activation code is wrong, used or expired"


class Contraindicated(Conflict):
    """The checklist shows a label contraindication: no override can clear it."""

    code = "contraindicated"
    title = "A screening result contraindicates treatment"


class OverrideNotAllowed(Conflict):
    """Items that only their structured record clears (the hepatitis B pathway)."""

    code = "override_not_allowed"
    title = "These checklist items cannot be overridden"


class ContraindicatedByHistory(Contraindicated):
    """The patient's own history (e.g. a life-threatening infusion reaction to the same
    molecule under an earlier plan) is a label contraindication to the regimen."""

    title = "The patient's history contraindicates this drug"


class InfusionOptionNotAllowed(Conflict):
    """An infusion-rate option whose condition the patient does not meet (e.g. the shorter
    ocrelizumab infusion after a serious infusion reaction)."""

    code = "infusion_option_not_allowed"
    title = "This infusion option is not allowed for the patient"


class IdempotencyKeyReused(ValidationFailed):
    """The Idempotency-Key was already used for a different request."""

    code = "idempotency_key_reused"
    title = "This Idempotency-Key was used for a different request"


class IdempotencyInFlight(Conflict):
    """A request with the same Idempotency-Key is still being processed."""

    code = "idempotency_in_flight"
    title = "A request with this Idempotency-Key is still in progress"

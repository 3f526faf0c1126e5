"""The one interface every delivery channel implements, and the values that cross it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal

from sqlalchemy.orm import Session

from service.models import Reminder

Outcome = Literal["sent", "failed", "skipped"]
# HTTP answers worth trying again later; any other 4xx will not get better by waiting.
RETRYABLE_HTTP_STATUSES = frozenset({408, 425, 429})
MAX_ERROR_LENGTH = 500


@dataclass(frozen=True)
class Outgoing:
    """One claimed reminder as plain values: what every channel delivers."""

    reminder_id: int
    idempotency_key: str
    kind: str
    audience: str
    clinic_id: int
    patient_id: int
    subject_type: str
    subject_id: int
    fire_at: datetime
    payload: Mapping[str, Any]
    expires_at: datetime | None = None
    channels: tuple[str, ...] = ("inbox",)
    attempts: int = 0
    # When the runner took it: messages count "tomorrow" from here (None: from the lead time).
    now: datetime | None = None

    @classmethod
    def from_reminder(cls, reminder: Reminder) -> Outgoing:
        return cls(
            reminder_id=reminder.id,
            idempotency_key=reminder.idempotency_key,
            kind=reminder.kind,
            audience=reminder.audience,
            clinic_id=reminder.clinic_id,
            patient_id=reminder.patient_id,
            subject_type=reminder.subject_type,
            subject_id=reminder.subject_id,
            fire_at=reminder.fire_at,
            payload=dict(reminder.payload or {}),
            expires_at=reminder.expires_at,
            channels=tuple(reminder.channels or ("inbox",)),
            attempts=reminder.attempts,
        )


@dataclass(frozen=True)
class Result:
    """What one attempt on one channel came to; the runner records it as a Delivery."""

    outcome: Outcome
    response_code: int | None = None
    error: str | None = None
    retryable: bool = False

    @classmethod
    def sent(cls, response_code: int | None = None) -> Result:
        return cls("sent", response_code)

    @classmethod
    def skipped(cls, reason: str) -> Result:
        return cls("skipped", error=_clip(reason))

    @classmethod
    def failed(cls, error: str, *, response_code: int | None = None, retryable: bool) -> Result:
        return cls("failed", response_code, _clip(error), retryable)


def http_result(status: int, detail: str = "") -> Result:
    """2xx sent; 408/425/429/5xx failed and worth retrying; anything else failed for good."""
    if 200 <= status < 300:
        return Result.sent(status)
    retryable = status >= 500 or status in RETRYABLE_HTTP_STATUSES
    return Result.failed(
        f"HTTP {status} {detail}".strip(), response_code=status, retryable=retryable
    )


class Channel(ABC):
    """A delivery channel.

    `in_transaction` says that everything the channel does is in the runner's transaction
    (the inbox, the worklist: nothing leaves the database), so the runner may deliver such
    reminders while it holds their rows, without a lease. A channel that can take a whole
    batch in a few statements overrides `deliver_many`.
    """

    name: ClassVar[str]
    in_transaction: ClassVar[bool] = False

    @abstractmethod
    def deliver(self, session: Session, message: Outgoing) -> Result: ...

    def deliver_many(self, session: Session, messages: Sequence[Outgoing]) -> list[Result]:
        """The results in the order of `messages`."""
        return [self.deliver(session, message) for message in messages]


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"

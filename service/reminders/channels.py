"""The one interface every delivery channel implements, and the values that cross it."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Generic, Literal, TypeVar

from sqlalchemy.orm import Session

from service.models import Reminder

Outcome = Literal["sent", "failed", "skipped"]
# What a failed delivery says, for staff to read: a fixed vocabulary, never the text of a
# socket error or of the receiving server (that made the webhook a port scanner).
DeliveryError = Literal[
    "timeout",  # no complete answer within the channel's total deadline
    "connection_failed",  # nobody accepted the connection
    "refused_address",  # the destination is one the service does not send to
    "malformed_url",
    "insecure_url",  # plain http outside development
    "unresolvable",  # the host name does not resolve
    "tls_error",  # no TLS session, or a certificate that does not verify
    "protocol_error",  # the connection broke, or the answer was not HTTP/SMTP
    "http_3xx",  # a redirect: never followed
    "http_4xx",
    "http_5xx",
    "smtp_4xx",  # the mail server's temporary refusal
    "smtp_5xx",
    "recipient_refused",
    "auth_failed",
    "starttls_unavailable",
    "credentials_unusable",  # the service's own credentials (push) cannot be read or used
    "not_configured",
    "channel_error",  # anything unexpected inside the channel; logged, never shown
]
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
    # Push devices the service said are gone, for the channel's `finish` to forget.
    gone: tuple[int, ...] = ()

    @classmethod
    def sent(cls, response_code: int | None = None) -> Result:
        return cls("sent", response_code)

    @classmethod
    def skipped(cls, reason: str) -> Result:
        return cls("skipped", error=_clip(reason))

    @classmethod
    def failed(
        cls, error: DeliveryError, *, response_code: int | None = None, retryable: bool
    ) -> Result:
        return cls("failed", response_code, error, retryable)


def http_result(status: int) -> Result:
    """2xx sent; 408/425/429/5xx failed and worth retrying; anything else failed for good."""
    if 200 <= status < 300:
        return Result.sent(status)
    retryable = status >= 500 or status in RETRYABLE_HTTP_STATUSES
    error: DeliveryError = (
        "http_5xx" if status >= 500 else "http_4xx" if status >= 400 else "http_3xx"
    )
    return Result.failed(error, response_code=status, retryable=retryable)


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


Prepared = TypeVar("Prepared")


class ExternalChannel(Channel, Generic[Prepared]):
    """A channel that leaves the database (webhook, e-mail, push), in three steps.

    `prepare` reads what a send needs in a short read-only session and returns plain values
    (or a Result when there is nothing to send); `send` makes the network call with no session
    and no transaction, within the channel's total deadline; `finish` writes what the answer
    implies besides the attempt itself (push: forget an unregistered device), in the
    transaction that records the outcome.
    """

    in_transaction: ClassVar[bool] = False

    @abstractmethod
    def prepare(self, session: Session, message: Outgoing) -> Prepared | Result: ...

    @abstractmethod
    def send(self, prepared: Prepared) -> Result: ...

    def finish(self, session: Session, prepared: Prepared, result: Result) -> None:
        """Nothing by default."""

    def deliver(self, session: Session, message: Outgoing) -> Result:
        """All three steps at once: for tests and tools, never the runner (it would hold
        `session`'s transaction across the network call)."""
        prepared = self.prepare(session, message)
        if isinstance(prepared, Result):
            return prepared
        result = self.send(prepared)
        self.finish(session, prepared, result)
        return result


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"

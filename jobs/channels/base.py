"""The one small interface every delivery channel implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from service.reminders.dispatch import BatchChannel, Outgoing, backoff_delay

if TYPE_CHECKING:
    from service.config import Settings

Outcome = Literal["sent", "failed", "skipped"]
# HTTP answers worth trying again later; any other 4xx will not get better by waiting.
RETRYABLE_HTTP_STATUSES = frozenset({408, 425, 429})
MAX_ERROR_LENGTH = 500


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


# The interface is the runner's: one definition, in service.reminders.dispatch.
Channel = BatchChannel


def http_result(status: int, detail: str = "") -> Result:
    """2xx sent; 408/425/429/5xx failed and worth retrying; anything else failed for good."""
    if 200 <= status < 300:
        return Result.sent(status)
    retryable = status >= 500 or status in RETRYABLE_HTTP_STATUSES
    return Result.failed(
        f"HTTP {status} {detail}".strip(), response_code=status, retryable=retryable
    )


def build_channels(settings: Settings) -> dict[str, Channel]:
    """The channels this deployment can use, by name: the inbox and webhooks always (a clinic
    without a webhook is skipped), e-mail with an SMTP host, push with FCM credentials."""
    from jobs.channels.email import EmailChannel
    from jobs.channels.inbox import InboxChannel
    from jobs.channels.push import PushChannel
    from jobs.channels.webhook import WebhookChannel

    channels: dict[str, Channel] = {
        "inbox": InboxChannel(),
        "webhook": WebhookChannel(timeout_s=settings.webhook_timeout_s),
    }
    if settings.smtp_host:
        channels["email"] = EmailChannel(settings)
    if settings.fcm_credentials_file:
        channels["push"] = PushChannel(settings)
    return channels


def _clip(text: str) -> str:
    return text if len(text) <= MAX_ERROR_LENGTH else text[: MAX_ERROR_LENGTH - 1] + "…"


__all__ = ["Channel", "Outgoing", "Result", "backoff_delay", "build_channels", "http_result"]

"""Delivery channels: inbox, worklist, webhook, e-mail and push, one module each."""

from __future__ import annotations

from jobs.channels.email import EmailChannel
from jobs.channels.inbox import InboxChannel
from jobs.channels.push import PushChannel
from jobs.channels.webhook import WebhookChannel
from service.config import Settings
from service.core.outbound import OutboundPolicy
from service.reminders.channels import Channel


def build_channels(settings: Settings) -> dict[str, Channel]:
    """The channels this deployment can use, by name: the inbox and webhooks always (a clinic
    without a webhook is skipped), e-mail with an SMTP host, push with FCM credentials."""
    channels: dict[str, Channel] = {
        "inbox": InboxChannel(),
        "webhook": WebhookChannel(
            timeout_s=settings.webhook_timeout_s, policy=OutboundPolicy.from_settings(settings)
        ),
    }
    if settings.smtp_host:
        channels["email"] = EmailChannel(settings)
    if settings.fcm_credentials_file:
        channels["push"] = PushChannel(settings)
    return channels

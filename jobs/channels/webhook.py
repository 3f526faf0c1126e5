"""The clinic's webhook: a signed JSON POST of the reminder's codes and ids."""

from __future__ import annotations

import hashlib
import hmac
import json
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from jobs.channels.transport import Deadline, SendFailed, post
from service.core.outbound import DestinationRefused, OutboundPolicy, parse_target
from service.db import utcnow
from service.models import Clinic
from service.reminders.channels import ExternalChannel, Outgoing, Result, http_result

SIGNATURE_HEADER = "X-CD20-Signature"
TIMESTAMP_HEADER = "X-CD20-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
USER_AGENT = "cd20-monitor-webhook/1"


def webhook_body(message: Outgoing) -> bytes:
    """The JSON body: codes and ids only, never names or results."""
    document = {
        "id": message.reminder_id,
        "idempotency_key": message.idempotency_key,
        "kind": message.kind,
        "audience": message.audience,
        "patient_id": message.patient_id,
        "subject": {"type": message.subject_type, "id": message.subject_id},
        "fire_at": message.fire_at.isoformat(),
        "payload": dict(message.payload),
    }
    return json.dumps(document, separators=(",", ":"), sort_keys=True, default=str).encode()


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """`sha256=<hex>`: HMAC-SHA256 with the clinic's secret over `<timestamp>.<body>`."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return f"sha256={digest.hexdigest()}"


@dataclass(frozen=True)
class WebhookSend:
    """What one webhook send needs, read before the network call."""

    message: Outgoing
    url: str
    secret: str


class WebhookChannel(ExternalChannel[WebhookSend]):
    name = "webhook"

    def __init__(
        self,
        *,
        timeout_s: float,
        policy: OutboundPolicy | None = None,
        clock: Callable[[], datetime] = utcnow,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        """`timeout_s` bounds the whole call: resolving, connecting, sending, the answer."""
        self.timeout_s = timeout_s
        self.policy = policy or OutboundPolicy()
        self.clock = clock
        self.tls_context = tls_context

    def prepare(self, session: Session, message: Outgoing) -> WebhookSend | Result:
        clinic = session.get(Clinic, message.clinic_id)
        webhook = clinic.webhook if clinic else None
        if webhook is None:
            return Result.skipped("the clinic has no webhook configured")
        return WebhookSend(message, webhook.url, webhook.secret)

    def send(self, prepared: WebhookSend) -> Result:
        deadline = Deadline(self.timeout_s)
        try:
            # Parsed again at each send: a URL stored before today's rules is checked too.
            target = parse_target(prepared.url, self.policy)
        except DestinationRefused as refusal:
            return Result.failed(refusal.code, retryable=False)
        body = webhook_body(prepared.message)
        timestamp = str(int(self.clock().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            IDEMPOTENCY_HEADER: prepared.message.idempotency_key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(prepared.secret, timestamp, body),
        }
        try:
            answer = post(
                target,
                body,
                headers,
                policy=self.policy,
                deadline=deadline,
                tls_context=self.tls_context,
            )
        except SendFailed as failure:
            return Result.failed(failure.code, retryable=failure.retryable)
        return http_result(answer.status)

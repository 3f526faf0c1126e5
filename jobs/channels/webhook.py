"""The clinic's webhook: a signed JSON POST of the reminder's codes and ids."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from sqlalchemy.orm import Session

from service.db import utcnow
from service.models import Clinic
from service.reminders.channels import Channel, Outgoing, Result, http_result

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


class WebhookChannel(Channel):
    name = "webhook"

    def __init__(self, *, timeout_s: float, clock: Callable[[], datetime] = utcnow) -> None:
        self.timeout_s = timeout_s
        self.clock = clock

    def deliver(self, session: Session, message: Outgoing) -> Result:
        clinic = session.get(Clinic, message.clinic_id)
        config: Any = (clinic.settings or {}).get("webhook") if clinic else None
        if not isinstance(config, dict) or not config.get("url") or not config.get("secret"):
            return Result.skipped("the clinic has no webhook configured")
        url = str(config["url"])
        if urlsplit(url).scheme not in ("http", "https"):
            return Result.failed("the webhook URL must be http or https", retryable=False)
        body = webhook_body(message)
        timestamp = str(int(self.clock().timestamp()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            IDEMPOTENCY_HEADER: message.idempotency_key,
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: signature(str(config["secret"]), timestamp, body),
        }
        try:
            # Redirects are not followed: the signed body goes only where the clinic said.
            response = requests.post(
                url, data=body, headers=headers, timeout=self.timeout_s, allow_redirects=False
            )
        except requests.Timeout:
            return Result.failed("the webhook did not answer in time", retryable=True)
        except requests.ConnectionError as exc:
            return Result.failed(f"cannot reach the webhook: {exc}", retryable=True)
        except requests.RequestException as exc:
            return Result.failed(f"webhook request failed: {exc}", retryable=False)
        return http_result(response.status_code, response.reason or "")

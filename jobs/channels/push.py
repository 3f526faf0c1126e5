"""Push through FCM HTTP v1: a generic notification to each of the patient's devices."""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote, urlencode

import jwt
from sqlalchemy.orm import Session

from jobs.channels.transport import Deadline, SendFailed, post
from service.config import Settings
from service.core.outbound import DestinationRefused, OutboundPolicy, parse_target
from service.models import Device
from service.patients.devices import devices_of, forget_device
from service.reminders.channels import ExternalChannel, Outgoing, Result, http_result
from service.reminders.messages import GENERIC_TEXT, GENERIC_TITLE

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
ASSERTION_LIFETIME_S = 3600
# Renew the access token this long before the token endpoint says it expires.
TOKEN_MARGIN_S = 60


@dataclass(frozen=True)
class ServiceAccount:
    client_email: str
    private_key: str
    private_key_id: str | None
    token_uri: str
    project_id: str | None

    @classmethod
    def from_file(cls, path: str) -> ServiceAccount:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
        return cls(
            client_email=str(data["client_email"]),
            private_key=str(data["private_key"]),
            private_key_id=data.get("private_key_id"),
            token_uri=str(data.get("token_uri") or DEFAULT_TOKEN_URI),
            project_id=data.get("project_id"),
        )


class _Failure(Exception):
    def __init__(self, result: Result) -> None:
        super().__init__(result.error)
        self.result = result


def push_body(device_token: str, message: Outgoing) -> dict[str, Any]:
    """Generic title and body (the lock screen is not private); the app fetches the rest."""
    return {
        "message": {
            "token": device_token,
            "notification": {"title": GENERIC_TITLE, "body": GENERIC_TEXT},
            "data": {"reminder_id": str(message.reminder_id), "kind": message.kind},
        }
    }


@dataclass(frozen=True)
class PushSend:
    """The devices to notify, read before the network calls: (device id, token)."""

    message: Outgoing
    devices: tuple[tuple[int, str], ...]


@dataclass(frozen=True)
class _Answer:
    status: int
    body: bytes

    def document(self) -> Any:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


# FCM and the token endpoint are the operator's configuration, not a clinic's: any address.
OPERATOR_ENDPOINTS = OutboundPolicy(
    allow_http=True,
    allowed_networks=(ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")),
)


class PushChannel(ExternalChannel[PushSend]):
    name = "push"

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        if not settings.fcm_credentials_file:
            raise ValueError("PushChannel needs settings.fcm_credentials_file")
        self.credentials_file = settings.fcm_credentials_file
        self.project_id = settings.fcm_project_id
        self.url_template = settings.fcm_url_template
        # Each call to FCM or its token endpoint ends within this, whatever the server does.
        self.timeout_s = settings.fcm_timeout_s
        self.clock = clock
        self._account: ServiceAccount | None = None
        self._access_token: str | None = None
        self._token_expires_at = 0.0
        self._lock = threading.Lock()

    def prepare(self, session: Session, message: Outgoing) -> PushSend | Result:
        if message.audience != "patient":
            return Result.skipped("staff reminders are not pushed")
        devices = devices_of(session, message.patient_id)
        if not devices:
            return Result.skipped("the patient has no push devices")
        return PushSend(message, tuple((device.id, device.token) for device in devices))

    def send(self, prepared: PushSend) -> Result:
        try:
            account = self._service_account()
            url = self._send_url(account)
            token = self._token(account)
            results = []
            for device_id, device_token in prepared.devices:
                result = self._send(url, token, device_id, device_token, prepared.message)
                results.append(result)
                if result.outcome == "failed" and result.response_code is None:
                    break  # the service is unreachable: the other devices would wait too
        except _Failure as failure:
            return failure.result
        return _combine(results)

    def finish(self, session: Session, prepared: PushSend, result: Result) -> None:
        """Forget the devices FCM said are no longer registered."""
        sent_to = dict(prepared.devices)
        for device_id in result.gone:
            device = session.get(Device, device_id)
            # Unless the row was given a new token since this send read it.
            if device is not None and device.token == sent_to.get(device_id):
                forget_device(session, device)

    def _post(self, url: str, body: bytes, headers: dict[str, str]) -> _Answer:
        try:
            target = parse_target(url, OPERATOR_ENDPOINTS)
        except DestinationRefused as refusal:
            raise SendFailed(refusal.code, retryable=False) from refusal
        answer = post(
            target, body, headers, policy=OPERATOR_ENDPOINTS, deadline=Deadline(self.timeout_s)
        )
        return _Answer(answer.status, answer.body)

    def _send(
        self, url: str, token: str, device_id: int, device_token: str, message: Outgoing
    ) -> Result:
        body = json.dumps(push_body(device_token, message)).encode()
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        try:
            answer = self._post(url, body, headers)
        except SendFailed as failure:
            return Result.failed(failure.code, retryable=failure.retryable)
        if answer.status == 200:
            return Result.sent(200)
        if _unregistered(answer):
            return Result("skipped", error="device no longer registered", gone=(device_id,))
        if answer.status == 401:
            # The access token was revoked or expired early: the next attempt fetches a new one.
            with self._lock:
                self._access_token = None
            return Result.failed("http_4xx", response_code=401, retryable=True)
        log.debug("FCM answered %s: %s", answer.status, _error_status(answer))
        return http_result(answer.status)

    def _service_account(self) -> ServiceAccount:
        if self._account is None:
            try:
                self._account = ServiceAccount.from_file(self.credentials_file)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                log.warning("push credentials unreadable: %s", type(exc).__name__)
                raise _Failure(Result.failed("credentials_unusable", retryable=False)) from exc
        return self._account

    def _send_url(self, account: ServiceAccount) -> str:
        project_id = self.project_id or account.project_id
        if not project_id:
            log.warning("no FCM project id configured")
            raise _Failure(Result.failed("not_configured", retryable=False))
        return self.url_template.replace("{project_id}", quote(str(project_id), safe=""))

    def _token(self, account: ServiceAccount) -> str:
        """An OAuth2 access token for the service account, cached until shortly before expiry."""
        with self._lock:
            now = self.clock()
            if self._access_token and now < self._token_expires_at:
                return self._access_token
            issued = int(now)
            try:
                assertion = jwt.encode(
                    {
                        "iss": account.client_email,
                        "scope": SCOPE,
                        "aud": account.token_uri,
                        "iat": issued,
                        "exp": issued + ASSERTION_LIFETIME_S,
                    },
                    account.private_key,
                    algorithm="RS256",
                    headers={"kid": account.private_key_id} if account.private_key_id else None,
                )
            except (ValueError, TypeError, jwt.PyJWTError) as exc:
                log.warning("push credentials unusable: %s", type(exc).__name__)
                raise _Failure(Result.failed("credentials_unusable", retryable=False)) from exc
            form = urlencode({"grant_type": JWT_BEARER_GRANT, "assertion": assertion}).encode()
            try:
                answer = self._post(
                    account.token_uri,
                    form,
                    {"Content-Type": "application/x-www-form-urlencoded"},
                )
            except SendFailed as failure:
                raise _Failure(
                    Result.failed(failure.code, retryable=failure.retryable)
                ) from failure
            if answer.status != 200:
                raise _Failure(http_result(answer.status))
            try:
                document = answer.document()
                access_token = str(document["access_token"])
                expires_in = float(document.get("expires_in", ASSERTION_LIFETIME_S))
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise _Failure(Result.failed("protocol_error", retryable=True)) from exc
            self._access_token = access_token
            self._token_expires_at = now + max(0.0, expires_in - TOKEN_MARGIN_S)
            return access_token


def _error_details(answer: _Answer) -> dict[str, Any]:
    document = answer.document()
    error = document.get("error") if isinstance(document, dict) else None
    return error if isinstance(error, dict) else {}


def _error_status(answer: _Answer) -> str:
    return str(_error_details(answer).get("status") or "")


def _unregistered(answer: _Answer) -> bool:
    """FCM says the token is gone: an UNREGISTERED error code, or its 404 NOT_FOUND error.

    A bare 404 (a wrong endpoint, not FCM's error body) removes nothing.
    """
    error = _error_details(answer)
    details = error.get("details")
    if isinstance(details, list) and any(
        isinstance(detail, dict) and detail.get("errorCode") == "UNREGISTERED" for detail in details
    ):
        return True
    return answer.status == 404 and error.get("status") == "NOT_FOUND"


def _combine(results: list[Result]) -> Result:
    """One outcome for the reminder: sent if any device got it (a retry would repeat it there)."""
    sent = [r for r in results if r.outcome == "sent"]
    failed = [r for r in results if r.outcome == "failed"]
    gone = tuple(device for r in results for device in r.gone)
    if sent:
        if failed:
            error = f"{len(failed)} of {len(results)} devices failed"
            return Result("sent", 200, error, gone=gone)
        return Result("sent", 200, gone=gone)
    retryable = [r for r in failed if r.retryable]
    if retryable:
        return replace(retryable[0], gone=gone)
    if failed:
        return replace(failed[0], gone=gone)
    return Result("skipped", error="no device is registered any more", gone=gone)

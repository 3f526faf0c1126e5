"""Push through FCM HTTP v1: a generic notification to each of the patient's devices."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jwt
import requests
from sqlalchemy.orm import Session

from service.config import Settings
from service.models import Device
from service.patients.devices import devices_of, forget_device
from service.reminders.channels import Channel, Outgoing, Result, http_result
from service.reminders.messages import GENERIC_TEXT, GENERIC_TITLE

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


class PushChannel(Channel):
    name = "push"

    def __init__(self, settings: Settings, *, clock: Callable[[], float] = time.time) -> None:
        if not settings.fcm_credentials_file:
            raise ValueError("PushChannel needs settings.fcm_credentials_file")
        self.credentials_file = settings.fcm_credentials_file
        self.project_id = settings.fcm_project_id
        self.url_template = settings.fcm_url_template
        self.timeout_s = settings.fcm_timeout_s
        self.clock = clock
        self._account: ServiceAccount | None = None
        self._access_token: str | None = None
        self._token_expires_at = 0.0
        self._lock = threading.Lock()

    def deliver(self, session: Session, message: Outgoing) -> Result:
        if message.audience != "patient":
            return Result.skipped("staff reminders are not pushed")
        devices = devices_of(session, message.patient_id)
        if not devices:
            return Result.skipped("the patient has no push devices")
        try:
            account = self._service_account()
            url = self._send_url(account)
            with requests.Session() as http:
                token = self._token(http, account)
                results = []
                for device in devices:
                    result = self._send(session, http, url, token, device, message)
                    results.append(result)
                    if result.outcome == "failed" and result.response_code is None:
                        break  # the service is unreachable: the other devices would wait too
        except _Failure as failure:
            return failure.result
        return _combine(results)

    def _send(
        self,
        session: Session,
        http: requests.Session,
        url: str,
        token: str,
        device: Device,
        message: Outgoing,
    ) -> Result:
        try:
            response = http.post(
                url,
                json=push_body(device.token, message),
                headers={"Authorization": f"Bearer {token}"},
                timeout=self.timeout_s,
                allow_redirects=False,
            )
        except requests.Timeout:
            return Result.failed("FCM did not answer in time", retryable=True)
        except requests.RequestException as exc:
            return Result.failed(f"cannot reach FCM: {exc}", retryable=True)
        if response.status_code == 200:
            return Result.sent(200)
        if _unregistered(response):
            forget_device(session, device)
            return Result.skipped(f"device {device.id} is no longer registered; removed")
        if response.status_code == 401:
            # The access token was revoked or expired early: the next attempt fetches a new one.
            with self._lock:
                self._access_token = None
            return Result.failed("FCM refused the access token", response_code=401, retryable=True)
        return http_result(response.status_code, f"from FCM: {_error_status(response)}")

    def _service_account(self) -> ServiceAccount:
        if self._account is None:
            try:
                self._account = ServiceAccount.from_file(self.credentials_file)
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise _Failure(
                    Result.failed(f"push credentials unreadable: {exc!r}", retryable=False)
                ) from exc
        return self._account

    def _send_url(self, account: ServiceAccount) -> str:
        project_id = self.project_id or account.project_id
        if not project_id:
            raise _Failure(Result.failed("no FCM project id configured", retryable=False))
        return self.url_template.replace("{project_id}", quote(str(project_id), safe=""))

    def _token(self, http: requests.Session, account: ServiceAccount) -> str:
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
                raise _Failure(
                    Result.failed(f"push credentials unusable: {exc!r}", retryable=False)
                ) from exc
            try:
                response = http.post(
                    account.token_uri,
                    data={"grant_type": JWT_BEARER_GRANT, "assertion": assertion},
                    timeout=self.timeout_s,
                    allow_redirects=False,
                )
            except requests.Timeout as exc:
                raise _Failure(
                    Result.failed("the token endpoint did not answer in time", retryable=True)
                ) from exc
            except requests.RequestException as exc:
                raise _Failure(
                    Result.failed(f"cannot reach the token endpoint: {exc}", retryable=True)
                ) from exc
            if response.status_code != 200:
                failed = http_result(response.status_code, "from the token endpoint")
                raise _Failure(failed)
            try:
                answer = response.json()
                access_token = str(answer["access_token"])
                expires_in = float(answer.get("expires_in", ASSERTION_LIFETIME_S))
            except (ValueError, KeyError, TypeError) as exc:
                raise _Failure(
                    Result.failed("the token endpoint answered without a token", retryable=True)
                ) from exc
            self._access_token = access_token
            self._token_expires_at = now + max(0.0, expires_in - TOKEN_MARGIN_S)
            return access_token


def _error_details(response: requests.Response) -> dict[str, Any]:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _error_status(response: requests.Response) -> str:
    return str(_error_details(response).get("status") or response.reason or "")


def _unregistered(response: requests.Response) -> bool:
    """FCM says the token is gone: an UNREGISTERED error code, or its 404 NOT_FOUND error.

    A bare 404 (a wrong endpoint, not FCM's error body) removes nothing.
    """
    error = _error_details(response)
    details = error.get("details")
    if isinstance(details, list) and any(
        isinstance(detail, dict) and detail.get("errorCode") == "UNREGISTERED" for detail in details
    ):
        return True
    return response.status_code == 404 and error.get("status") == "NOT_FOUND"


def _combine(results: list[Result]) -> Result:
    """One outcome for the reminder: sent if any device got it (a retry would repeat it there)."""
    sent = [r for r in results if r.outcome == "sent"]
    failed = [r for r in results if r.outcome == "failed"]
    if sent:
        if failed:
            return Result("sent", 200, f"{len(failed)} of {len(results)} devices failed")
        return Result.sent(200)
    retryable = [r for r in failed if r.retryable]
    if retryable:
        return retryable[0]
    if failed:
        return failed[0]
    return Result.skipped("no device is registered any more")

"""Network calls with a total deadline: a watchdog for any socket, and a pinned HTTP(S) POST.

A socket timeout bounds each recv, not the call: a server that drips a byte every few seconds
would hold a send for as long as it likes. The watchdog shuts the socket down at the deadline,
which ends whatever read or write is blocked on it.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

from service.core.outbound import DestinationRefused, IPAddress, OutboundPolicy, Target, resolve
from service.reminders.channels import DeliveryError

log = logging.getLogger(__name__)

# Enough for any status document a receiver sends back; the rest is not read.
MAX_ANSWER_BYTES = 64 * 1024


class SendFailed(Exception):
    """A send that did not get an answer; `code` is what staff see, never the socket's text."""

    def __init__(self, code: DeliveryError, *, retryable: bool) -> None:
        super().__init__(code)
        self.code: DeliveryError = code
        self.retryable = retryable


class Deadline:
    """A moment on the monotonic clock by which a call must be over."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.at = clock() + seconds

    def remaining(self) -> float:
        """Seconds left; raises SendFailed("timeout") once there are none."""
        left = self.at - self.clock()
        if left <= 0:
            raise SendFailed("timeout", retryable=True)
        return left

    @contextmanager
    def watch(self, current: Callable[[], socket.socket | None]) -> Iterator[threading.Event]:
        """Shut down `current()` at the deadline; the event says whether that happened."""
        expired = threading.Event()

        def cut_off() -> None:
            expired.set()
            sock = current()
            if sock is not None:
                with suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

        timer = threading.Timer(max(self.at - self.clock(), 0.0), cut_off)
        timer.daemon = True
        timer.start()
        try:
            yield expired
        finally:
            timer.cancel()


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to a given address; the Host header still names the host."""

    def __init__(self, target: Target, address: IPAddress, timeout: float) -> None:
        super().__init__(target.host, target.port, timeout=timeout)
        self._pinned = (str(address), target.port)

    def connect(self) -> None:
        self.sock = socket.create_connection(self._pinned, self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TLS to a given address, with the certificate verified against the host name."""

    def __init__(
        self, target: Target, address: IPAddress, timeout: float, context: ssl.SSLContext
    ) -> None:
        super().__init__(target.host, target.port, timeout=timeout, context=context)
        self._pinned = (str(address), target.port)
        self._context = context

    def connect(self) -> None:
        raw = socket.create_connection(self._pinned, self.timeout)
        self.sock = raw
        self.sock = self._context.wrap_socket(raw, server_hostname=self.host)


def post(
    target: Target,
    body: bytes,
    headers: Mapping[str, str],
    *,
    policy: OutboundPolicy,
    deadline: Deadline,
    tls_context: ssl.SSLContext | None = None,
) -> Answer:
    """POST `body` to `target` within `deadline`; redirects are answers, never followed.

    The host is resolved here, every address checked against `policy`, and the connection made
    to a checked address: nothing can resolve the name differently between check and connect.
    """
    try:
        addresses = resolve(target, policy, timeout_s=deadline.remaining())
    except DestinationRefused as refusal:
        code: DeliveryError = "timeout" if refusal.code == "timeout" else refusal.code
        raise SendFailed(code, retryable=code in ("timeout", "unresolvable")) from refusal
    last: SendFailed | None = None
    for address in addresses:
        try:
            return _post_to(address, target, body, headers, deadline, tls_context)
        except SendFailed as failure:
            last = failure
            if failure.code != "connection_failed":
                raise
    assert last is not None
    raise last


def _post_to(
    address: IPAddress,
    target: Target,
    body: bytes,
    headers: Mapping[str, str],
    deadline: Deadline,
    tls_context: ssl.SSLContext | None,
) -> Answer:
    timeout = deadline.remaining()
    connection: http.client.HTTPConnection
    if target.tls:
        context = tls_context or ssl.create_default_context()
        connection = _PinnedHTTPSConnection(target, address, timeout, context)
    else:
        connection = _PinnedHTTPConnection(target, address, timeout)
    connected = False
    with deadline.watch(lambda: connection.sock) as expired:
        try:
            connection.connect()
            connected = True
            if expired.is_set():
                raise SendFailed("timeout", retryable=True)
            connection.putrequest("POST", target.path, skip_host=True, skip_accept_encoding=True)
            connection.putheader("Host", target.host_header)
            for name, value in headers.items():
                connection.putheader(name, value)
            connection.putheader("Content-Length", str(len(body)))
            connection.putheader("Connection", "close")
            connection.endheaders(body)
            response = connection.getresponse()
            answer = Answer(response.status, response.read(MAX_ANSWER_BYTES))
        except SendFailed:
            raise
        except ssl.SSLError as exc:
            log.debug("TLS with %s failed: %s", address, type(exc).__name__)
            raise SendFailed(
                "timeout" if expired.is_set() else "tls_error", retryable=True
            ) from exc
        except (OSError, http.client.HTTPException) as exc:
            log.debug("POST to %s failed: %s", address, type(exc).__name__)
            if expired.is_set() or isinstance(exc, TimeoutError):
                raise SendFailed("timeout", retryable=True) from exc
            if not connected:
                raise SendFailed("connection_failed", retryable=True) from exc
            raise SendFailed("protocol_error", retryable=True) from exc
        finally:
            connection.close()
    return answer

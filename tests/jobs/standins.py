"""Local stand-in servers for the channels' tests: HTTP and SMTP, on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

# A hung request is released at close, or after this long at the latest.
MAX_HANG_S = 10.0
# Settings that let webhooks reach the stand-ins: plain http (development) to 127.0.0.1,
# which the address rules refuse unless the operator allows it.
LOCAL_WEBHOOKS: dict[str, Any] = {
    "environment": "development",
    "webhook_allowed_hosts": ("127.0.0.1",),
}


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (for 'connection refused', or a server)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class Recorded:
    """One request the stand-in received."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return {key: values[0] for key, values in parse_qs(self.body.decode()).items()}


@dataclass(frozen=True)
class Reply:
    """What the stand-in answers: a status and a JSON body, or no answer at all (`hang`)."""

    status: int = 200
    body: Any = field(default_factory=dict)
    hang: bool = False


Responder = Reply | Callable[[Recorded], Reply]


class StandInHTTPServer:
    """A threading HTTP server that records every request and answers as it is told.

    `answer(reply)` sets the answer for every path; `route(path, reply_or_function)` for one path.
    """

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self._default: Responder = Reply()
        self._routes: dict[str, Responder] = {}
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        # A client that gave up on a hung request leaves a broken pipe behind: not news.
        self._server.handle_error = lambda request, address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def answer(self, reply: Responder) -> None:
        self._default = reply

    def route(self, path: str, reply: Responder) -> None:
        self._routes[path] = reply

    def received(self, path: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path == path]

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=MAX_HANG_S)

    def _respond(self, recorded: Recorded) -> Reply:
        with self._lock:
            self.requests.append(recorded)
            responder = self._routes.get(recorded.path, self._default)
        return responder(recorded) if callable(responder) else responder

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                recorded = Recorded(
                    method=self.command,
                    path=self.path,
                    headers={name.lower(): value for name, value in self.headers.items()},
                    body=self.rfile.read(length),
                )
                reply = standin._respond(recorded)
                if reply.hang:
                    standin._release.wait(MAX_HANG_S)
                    self.close_connection = True
                    return
                payload = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body)
                data = payload.encode() if isinstance(payload, str) else payload
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    login: str | None


class MailRecorder:
    """An aiosmtpd handler that keeps what it receives, or refuses as it is told."""

    def __init__(self) -> None:
        self.messages: list[ReceivedMail] = []
        self.rcpt_reply: str | None = None
        self.data_reply: str | None = None

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if self.rcpt_reply:
            return self.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.data_reply:
            return self.data_reply
        login = session.auth_data.decode() if session.authenticated else None
        self.messages.append(
            ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), envelope.content, login)
        )
        return "250 Message accepted for delivery"


class StandInSMTPServer:
    """aiosmtpd on 127.0.0.1 with a free port; accepts one login when `credentials` is given."""

    def __init__(self, credentials: tuple[str, str] | None = None) -> None:
        self.handler = MailRecorder()
        self.port = free_port()
        options: dict[str, Any] = {}
        if credentials:
            options = {
                "authenticator": _Authenticator(*credentials),
                "auth_require_tls": False,
            }
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()

    @property
    def host(self) -> str:
        return "127.0.0.1"

    def close(self) -> None:
        self._controller.stop()


class _Authenticator:
    def __init__(self, login: str, password: str) -> None:
        self.expected = LoginPassword(login.encode(), password.encode())

    def __call__(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if auth_data == self.expected:
            return AuthResult(success=True, auth_data=self.expected.login)
        return AuthResult(success=False, handled=False)


class DripServer:
    """A TCP server on 127.0.0.1 that answers as slowly as it can without going silent.

    Each connection gets `answer` one byte every `every_s` seconds for `for_s` seconds (an HTTP
    server that would take a minute to answer), or with `silent` nothing at all while the
    connection stays open (an SMTP server that never greets). `connected` is set once a client
    has connected; `connections` counts them.
    """

    def __init__(
        self,
        *,
        answer: bytes = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
        every_s: float = 0.5,
        for_s: float = 60.0,
        silent: bool = False,
    ) -> None:
        self.answer = answer
        self.every_s = every_s
        self.for_s = for_s
        self.silent = silent
        self.connections = 0
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=MAX_HANG_S)
        self._listener.close()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _address = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
            self.connected.set()
            threading.Thread(target=self._drip, args=(conn,), daemon=True).start()

    def _drip(self, conn: socket.socket) -> None:
        with conn:
            ends = time.monotonic() + self.for_s
            position = 0
            while not self._stop.is_set() and time.monotonic() < ends:
                if not self.silent:
                    try:
                        conn.sendall(self.answer[position % len(self.answer) :][:1])
                    except OSError:
                        return
                    position += 1
                self._stop.wait(self.every_s)

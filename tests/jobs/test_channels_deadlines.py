"""Outbound calls end by their deadline whatever the server does; TLS is verified on the name."""

from __future__ import annotations

import ssl
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import trustme

from jobs.channels.email import EmailChannel, message_id_domain
from jobs.channels.webhook import WebhookChannel
from service.core.outbound import OutboundPolicy
from service.reminders.channels import Outgoing
from tests.factories import make_clinic, make_patient, make_reminder
from tests.jobs.standins import DripServer, StandInSMTPServer

NOW = datetime(2027, 1, 3, 8, 0, 5, tzinfo=UTC)
DEADLINE_S = 1.0
# Time for the process to notice the deadline and give up.
SLACK_S = 1.0
LOCAL = OutboundPolicy.from_entries(["127.0.0.1", "localhost"], allow_http=True)


def webhook_message(session, url):
    clinic = make_clinic(session, settings={"webhook": {"url": url, "secret": "s" * 20}})
    return Outgoing.from_reminder(make_reminder(session, make_patient(session, clinic)))


def email_message(session):
    patient = make_patient(session, make_clinic(session), email="maria@example.org")
    return Outgoing.from_reminder(make_reminder(session, patient))


def email_channel(settings, port, **overrides):
    values = {
        "smtp_host": "127.0.0.1",
        "smtp_port": port,
        "smtp_starttls": False,
        "smtp_from": "Clinic <reminders@clinic.example>",
        "smtp_timeout_s": DEADLINE_S,
    }
    return EmailChannel(settings.with_overrides(**{**values, **overrides}))


def timed(call):
    started = time.monotonic()
    result = call()
    return result, time.monotonic() - started


def test_a_webhook_that_drips_its_answer_is_cut_off_at_the_deadline(session):
    drip = DripServer(every_s=0.2, for_s=60)
    try:
        channel = WebhookChannel(timeout_s=DEADLINE_S, policy=LOCAL, clock=lambda: NOW)
        message = webhook_message(session, f"{drip.url}/hook")

        result, took = timed(lambda: channel.deliver(session, message))

        assert (result.outcome, result.error, result.retryable) == ("failed", "timeout", True)
        assert DEADLINE_S - 0.1 <= took <= DEADLINE_S + SLACK_S
    finally:
        drip.close()


def test_an_smtp_server_that_never_greets_is_cut_off_at_the_deadline(session, settings):
    silent = DripServer(silent=True, for_s=60)
    try:
        channel = email_channel(settings, silent.port)

        result, took = timed(lambda: channel.deliver(session, email_message(session)))

        assert (result.outcome, result.error, result.retryable) == ("failed", "timeout", True)
        assert took <= DEADLINE_S + SLACK_S
        assert silent.connections == 1
    finally:
        silent.close()


def test_an_smtp_server_that_drips_its_greeting_is_cut_off_at_the_deadline(session, settings):
    # A multi-line greeting that never ends: each line arrives well within a per-read timeout.
    drip = DripServer(answer=b"220-slow.example ESMTP\r\n", every_s=0.05, for_s=60)
    try:
        channel = email_channel(settings, drip.port)

        result, took = timed(lambda: channel.deliver(session, email_message(session)))

        assert (result.outcome, result.error) == ("failed", "timeout")
        assert took <= DEADLINE_S + SLACK_S
    finally:
        drip.close()


def test_the_message_id_names_the_senders_domain_not_the_product(session, settings):
    server = StandInSMTPServer()
    try:
        channel = email_channel(settings, server.port, smtp_timeout_s=5.0)
        assert channel.deliver(session, email_message(session)).outcome == "sent"
        (mail,) = server.handler.messages
        headers = mail.content.decode().lower().split("\r\n\r\n", 1)[0]
        message_id = next(line for line in headers.splitlines() if line.startswith("message-id:"))
        assert message_id.endswith("@clinic.example>")
        assert "cd20" not in headers
    finally:
        server.close()
    assert message_id_domain("no-reply@localhost") == "localhost"
    assert message_id_domain("not an address") == "localhost"


class _Hook(BaseHTTPRequestHandler):
    received: list[str] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        _Hook.received.append(self.headers.get("Host") or "")
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def tls_receiver():
    """An https server on 127.0.0.1 whose certificate names `localhost` only."""
    authority = trustme.CA()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("localhost").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    client = ssl.create_default_context()
    authority.configure_trust(client)
    _Hook.received = []
    yield server.server_address[1], client
    server.shutdown()
    server.server_close()


def test_https_connects_to_the_checked_address_and_verifies_the_name(session, tls_receiver):
    port, trust = tls_receiver
    policy = OutboundPolicy.from_entries(["localhost", "127.0.0.1"], allow_http=False)
    channel = WebhookChannel(timeout_s=5, policy=policy, clock=lambda: NOW, tls_context=trust)

    named = channel.deliver(session, webhook_message(session, f"https://localhost:{port}/hook"))
    assert (named.outcome, named.response_code) == ("sent", 204)
    assert _Hook.received == [f"localhost:{port}"]

    # The same server reached by its address: the certificate does not name 127.0.0.1.
    by_address = channel.deliver(
        session, webhook_message(session, f"https://127.0.0.1:{port}/hook")
    )
    assert (by_address.outcome, by_address.error) == ("failed", "tls_error")
    assert len(_Hook.received) == 1

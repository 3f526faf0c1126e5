"""E-mail over SMTP: a generic note that a message is waiting, never clinical detail."""

from __future__ import annotations

import hashlib
import logging
import smtplib
import socket
import ssl
from contextlib import suppress
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, parseaddr

from sqlalchemy import select
from sqlalchemy.orm import Session

from jobs.channels.transport import Deadline, SendFailed
from service.config import Settings
from service.core.outbound import DestinationRefused, lookup
from service.models import Patient
from service.reminders.channels import ExternalChannel, Outgoing, Result
from service.reminders.messages import APP_HINT, GENERIC_TEXT, GENERIC_TITLE

log = logging.getLogger(__name__)

SUBJECT = GENERIC_TITLE
BODY = f"{GENERIC_TEXT}.\n\n{APP_HINT}\n"


def message_id_domain(sender: str) -> str:
    """The From address's domain: a Message-ID that names no product and so no therapy."""
    _local, at, domain = parseaddr(sender)[1].rpartition("@")
    domain = domain.strip().lower()
    if at and domain and all(c.isalnum() or c in ".-" for c in domain):
        return domain
    return "localhost"


def build_email(sender: str, recipient: str, idempotency_key: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = recipient
    email["Subject"] = SUBJECT
    email["Date"] = formatdate(usegmt=True)
    # Stable per reminder, so a retried send is recognisably the same message; hashed, because
    # the key itself names the kind of reminder.
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    email["Message-ID"] = f"<{digest}@{message_id_domain(sender)}>"
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(BODY)
    return email


@dataclass(frozen=True)
class EmailSend:
    message: Outgoing
    recipient: str


class _DeadlineSMTP(smtplib.SMTP):
    """smtplib.SMTP whose every socket operation ends by the deadline."""

    def __init__(self, deadline: Deadline, timeout_s: float) -> None:
        super().__init__(timeout=timeout_s)
        self.deadline = deadline

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        # The name is resolved with the deadline too (getaddrinfo has no timeout of its own);
        # STARTTLS still verifies the certificate against the configured host name.
        remaining = self.deadline.remaining()
        try:
            addresses = lookup(host, port, timeout_s=remaining)
        except DestinationRefused as refusal:
            raise SendFailed(
                "timeout" if refusal.code == "timeout" else "unresolvable", retryable=True
            ) from refusal
        return socket.create_connection(
            (str(addresses[0]), port), min(timeout, self.deadline.remaining())
        )


class EmailChannel(ExternalChannel[EmailSend]):
    name = "email"

    def __init__(self, settings: Settings) -> None:
        if not settings.smtp_host:
            raise ValueError("EmailChannel needs settings.smtp_host")
        self.host = settings.smtp_host
        self.port = settings.smtp_port
        self.username = settings.smtp_username
        self.password = settings.smtp_password
        self.starttls = settings.smtp_starttls
        self.sender = settings.smtp_from
        # The whole conversation, greeting to QUIT, ends within this.
        self.timeout_s = settings.smtp_timeout_s

    def prepare(self, session: Session, message: Outgoing) -> EmailSend | Result:
        if message.audience != "patient":
            return Result.skipped("staff reminders are not e-mailed")
        email = session.scalar(select(Patient.email).where(Patient.id == message.patient_id))
        if not email:
            return Result.skipped("the patient has no e-mail address")
        return EmailSend(message, email)

    def send(self, prepared: EmailSend) -> Result:
        email = build_email(self.sender, prepared.recipient, prepared.message.idempotency_key)
        deadline = Deadline(self.timeout_s)
        smtp = _DeadlineSMTP(deadline, self.timeout_s)
        with deadline.watch(lambda: smtp.sock) as expired:
            try:
                return self._converse(smtp, email)
            except SendFailed as failure:
                return Result.failed(failure.code, retryable=failure.retryable)
            except smtplib.SMTPRecipientsRefused as exc:
                code = next((answer[0] for answer in exc.recipients.values()), None)
                return Result.failed("recipient_refused", response_code=code, retryable=False)
            except smtplib.SMTPNotSupportedError:
                return Result.failed("starttls_unavailable", retryable=False)
            except smtplib.SMTPAuthenticationError as exc:
                return Result.failed("auth_failed", response_code=exc.smtp_code, retryable=False)
            except smtplib.SMTPResponseException as exc:
                # 4xx is a temporary refusal (greylisting, a full queue); 5xx is final.
                code = exc.smtp_code
                final = 500 <= code < 600
                return Result.failed(
                    "smtp_5xx" if final else "smtp_4xx", response_code=code, retryable=not final
                )
            except ssl.SSLError as exc:
                log.debug("SMTP TLS failed: %s", type(exc).__name__)
                return Result.failed(
                    "timeout" if expired.is_set() else "tls_error", retryable=expired.is_set()
                )
            except (smtplib.SMTPException, OSError) as exc:
                log.debug("SMTP failed: %s", type(exc).__name__)
                # smtplib reports a read that timed out as a disconnection.
                if expired.is_set() or TimeoutError in (type(exc), type(exc.__context__)):
                    return Result.failed("timeout", retryable=True)
                if isinstance(exc, smtplib.SMTPServerDisconnected | ConnectionResetError):
                    return Result.failed("protocol_error", retryable=True)
                return Result.failed("connection_failed", retryable=True)
            finally:
                smtp.close()

    def _converse(self, smtp: _DeadlineSMTP, email: EmailMessage) -> Result:
        smtp.connect(self.host, self.port)
        if self.starttls:
            smtp.starttls(context=ssl.create_default_context())
        if self.username:
            smtp.login(self.username, self.password or "")
        smtp.send_message(email)
        # The message was accepted; a lost goodbye changes nothing.
        with suppress(smtplib.SMTPException, OSError):
            smtp.quit()
        return Result.sent(250)

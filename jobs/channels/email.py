"""E-mail over SMTP: a generic note that a message is waiting, never clinical detail."""

from __future__ import annotations

import hashlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate

from sqlalchemy.orm import Session

from service.config import Settings
from service.models import Patient
from service.reminders.channels import Channel, Outgoing, Result
from service.reminders.messages import APP_HINT, GENERIC_TEXT, GENERIC_TITLE

SUBJECT = GENERIC_TITLE
BODY = f"{GENERIC_TEXT}.\n\n{APP_HINT}\n"


def build_email(sender: str, recipient: str, idempotency_key: str) -> EmailMessage:
    email = EmailMessage()
    email["From"] = sender
    email["To"] = recipient
    email["Subject"] = SUBJECT
    email["Date"] = formatdate(usegmt=True)
    # Stable per reminder, so a retried send is recognisably the same message; hashed, because
    # the key itself names the kind of reminder.
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]
    email["Message-ID"] = f"<{digest}@cd20-monitor>"
    email["Auto-Submitted"] = "auto-generated"
    email.set_content(BODY)
    return email


class EmailChannel(Channel):
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
        self.timeout_s = settings.smtp_timeout_s

    def deliver(self, session: Session, message: Outgoing) -> Result:
        if message.audience != "patient":
            return Result.skipped("staff reminders are not e-mailed")
        patient = session.get(Patient, message.patient_id)
        if patient is None or not patient.email:
            return Result.skipped("the patient has no e-mail address")
        email = build_email(self.sender, patient.email, message.idempotency_key)
        try:
            with smtplib.SMTP(self.host, self.port, timeout=self.timeout_s) as smtp:
                if self.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(email)
        except smtplib.SMTPRecipientsRefused as exc:
            code = next((answer[0] for answer in exc.recipients.values()), None)
            return Result.failed(
                f"the mail server refused the recipient ({code})",
                response_code=code,
                retryable=False,
            )
        except smtplib.SMTPNotSupportedError as exc:
            return Result.failed(f"the mail server lacks a feature: {exc}", retryable=False)
        except smtplib.SMTPResponseException as exc:
            # 4xx is a temporary refusal (greylisting, a full queue); 5xx is final.
            code = exc.smtp_code
            return Result.failed(
                f"SMTP {code}: {_text(exc.smtp_error)}",
                response_code=code,
                retryable=not 500 <= code < 600,
            )
        except ssl.SSLCertVerificationError as exc:
            return Result.failed(f"the mail server's certificate: {exc}", retryable=False)
        except (smtplib.SMTPException, OSError) as exc:
            return Result.failed(f"cannot talk to the mail server: {exc!r}", retryable=True)
        return Result.sent(250)


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)

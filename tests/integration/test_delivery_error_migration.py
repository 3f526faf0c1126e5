"""0004_outbound: failed attempts recorded before the fixed vocabulary say no more than new ones."""

from __future__ import annotations

from alembic import command
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from service.db import create_db_engine
from service.migrations import alembic_config, upgrade_database
from service.models import Delivery
from tests.factories import make_clinic, make_patient, make_reminder

OLD = [
    (
        "webhook",
        "failed",
        None,
        "cannot reach the webhook: ('Connection aborted.', 127.0.0.1:6379)",
    ),
    ("webhook", "failed", 404, "HTTP 404 Not Found from nginx/1.25 internal-host"),
    ("webhook", "failed", 503, "HTTP 503 Service Unavailable"),
    ("webhook", "failed", None, "the webhook did not answer in time"),
    ("webhook", "failed", None, "the webhook URL must be http or https"),
    ("email", "failed", 550, "the mail server refused the recipient (550)"),
    ("email", "failed", 451, "SMTP 451: 4.3.0 mail.internal.example queue full"),
    ("email", "failed", None, "cannot talk to the mail server: ConnectionRefusedError(111)"),
    ("push", "failed", None, "push credentials unreadable: FileNotFoundError('/etc/x.json')"),
    ("webhook", "failed", None, "webhook request failed: something odd"),
    ("webhook", "skipped", None, "the clinic has no webhook configured"),
    ("push", "sent", 200, "1 of 2 devices failed"),
    ("webhook", "failed", None, "refused_address"),
]
NEW = [
    "connection_failed",
    "http_4xx",
    "http_5xx",
    "timeout",
    "malformed_url",
    "recipient_refused",
    "smtp_4xx",
    "connection_failed",
    "credentials_unusable",
    "channel_error",
    "the clinic has no webhook configured",
    "1 of 2 devices failed",
    "refused_address",
]


def test_old_error_texts_become_words_of_the_vocabulary(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    # Rows written with today's models, then the schema taken back to just before the rewrite:
    # later migrations must not stand in the way of testing this one.
    upgrade_database(url)
    engine = create_db_engine(url)
    try:
        with Session(engine) as session:
            patient = make_patient(session, make_clinic(session))
            reminder = make_reminder(session, patient)
            session.execute(
                insert(Delivery),
                [
                    {
                        "reminder_id": reminder.id,
                        "channel": channel,
                        "attempt": n,
                        "outcome": outcome,
                        "response_code": code,
                        "error": error,
                    }
                    for n, (channel, outcome, code, error) in enumerate(OLD, start=1)
                ],
            )
            session.commit()
        engine.dispose()
        command.downgrade(alembic_config(url), "0003_audit")

        upgrade_database(url, "0004_outbound")

        with engine.connect() as connection:
            errors = connection.scalars(select(Delivery.error).order_by(Delivery.attempt)).all()
        assert errors == NEW
    finally:
        engine.dispose()

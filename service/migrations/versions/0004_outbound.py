"""delivery.error of failed attempts rewritten to the fixed vocabulary

Revision ID: 0004_outbound
Revises: 0003_audit

Failed deliveries used to record the socket's or the server's own text ("Connection refused",
an HTTP reason phrase), which let anyone who could set a webhook and read deliveries scan the
network. From now on errors are fixed words; this rewrites the ones recorded before, so old rows
say no more than new ones. Data only: no schema change.
"""

from __future__ import annotations

from alembic import op

revision = "0004_outbound"
down_revision = "0003_audit"
branch_labels = None
depends_on = None

# Already a word of the vocabulary: left alone (the migration may run on rows written by new code).
VOCABULARY = (
    "timeout", "connection_failed", "refused_address", "malformed_url", "insecure_url",
    "unresolvable", "tls_error", "protocol_error", "http_3xx", "http_4xx", "http_5xx",
    "smtp_4xx", "smtp_5xx", "recipient_refused", "auth_failed", "starttls_unavailable",
    "credentials_unusable", "not_configured", "channel_error",
)  # fmt: skip

REWRITE = """
UPDATE delivery SET error = CASE
    WHEN error LIKE '%in time%' THEN 'timeout'
    WHEN error LIKE '%must be http or https%' THEN 'malformed_url'
    WHEN error LIKE '%refused the recipient%' THEN 'recipient_refused'
    WHEN error LIKE '%lacks a feature%' THEN 'starttls_unavailable'
    WHEN error LIKE '%certificate%' THEN 'tls_error'
    WHEN error LIKE 'push credentials%' THEN 'credentials_unusable'
    WHEN error LIKE 'no FCM project id%' THEN 'not_configured'
    WHEN channel = 'email' AND response_code BETWEEN 400 AND 499 THEN 'smtp_4xx'
    WHEN channel = 'email' AND response_code BETWEEN 500 AND 599 THEN 'smtp_5xx'
    WHEN response_code BETWEEN 300 AND 399 THEN 'http_3xx'
    WHEN response_code BETWEEN 400 AND 499 THEN 'http_4xx'
    WHEN response_code BETWEEN 500 AND 599 THEN 'http_5xx'
    WHEN error LIKE 'cannot %' THEN 'connection_failed'
    ELSE 'channel_error'
END
WHERE outcome = 'failed' AND error IS NOT NULL AND error NOT IN ({vocabulary})
"""


def upgrade() -> None:
    words = ", ".join(f"'{word}'" for word in VOCABULARY)
    op.execute(REWRITE.format(vocabulary=words))


def downgrade() -> None:
    """The old texts are gone on purpose; nothing to restore."""

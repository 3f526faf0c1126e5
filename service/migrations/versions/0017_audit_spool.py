"""audit_spool_progress: how far each host's spool of read events is moved into audit_event

Revision ID: 0017_audit_spool
Revises: 0016_stored_readiness

With CD20_AUDIT_SPOOL_DIR set, a read's audit event is appended to a spool file on its host and
moved into audit_event in batches (service.trust.audit_spool). Each batch updates its file's
row here in the same transaction, so a line is moved once whoever finishes the file.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from service.db import UTCDateTime

revision = "0017_audit_spool"
down_revision = "0016_stored_readiness"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_spool_progress",
        sa.Column("spool", sa.String(200), nullable=False),
        sa.Column("moved_bytes", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("spool", name=op.f("pk_audit_spool_progress")),
    )


def downgrade() -> None:
    op.drop_table("audit_spool_progress")

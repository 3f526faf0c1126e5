"""each open dose's readiness blocking items stored beside its readiness

Revision ID: 0016_stored_readiness
Revises: 0015_stored_checklist

dose.readiness_blocking holds what the dose's readiness blocking items work out to, kept by
every write like dose.ready, so the worklist shows a dose whose readiness is open without
loading its plan. Existing rows start with NULL, which the worklist reads as "work it out":
until the next write stores them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_stored_readiness"
down_revision = "0015_stored_checklist"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("dose", sa.Column("readiness_blocking", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("dose") as batch:
        batch.drop_column("readiness_blocking")

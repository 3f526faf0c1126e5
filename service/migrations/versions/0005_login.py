"""login locks per (account, address); staff alerts about accounts

Revision ID: 0005_login
Revises: 0004_outbound

login_lock counts failed password checks per login name (as a digest) and client address, so a
lock shuts out one address, never the real user elsewhere. staff_alert.patient_id becomes
optional: an alert about repeated failed logins on a staff account concerns no patient.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db

revision = "0005_login"
down_revision = "0004_outbound"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "login_lock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_key", sa.String(length=64), nullable=False),
        sa.Column("client_address", sa.String(length=45), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_failed_at", service.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_lock")),
        sa.UniqueConstraint(
            "account_key", "client_address", name=op.f("uq_login_lock_account_key_client_address")
        ),
    )
    with op.batch_alter_table("login_lock", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_login_lock_last_failed_at"), ["last_failed_at"], unique=False
        )
    with op.batch_alter_table("staff_alert", schema=None) as batch_op:
        batch_op.alter_column("patient_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM staff_alert WHERE patient_id IS NULL")
    with op.batch_alter_table("staff_alert", schema=None) as batch_op:
        batch_op.alter_column("patient_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("login_lock", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_login_lock_last_failed_at"))
    op.drop_table("login_lock")

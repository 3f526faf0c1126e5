"""per-dose readiness: answers, overrides, missed and skipped doses, premedication exceptions

Revision ID: 0006_readiness
Revises: 0005_login

dose_check holds each dose's answered readiness items (staff, or the patient's pre-dose
check-in); dose_readiness_override a clinician's signed override of a dose's open items.
A missed dose keeps the day it was missed (it stays owed); a skipped one the reason and who.
The administration record keeps a clinician's reason for premedication outside the label and
the observation time. patient.can_become_pregnant stays null (unknown) until staff set it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db

revision = "0006_readiness"
down_revision = "0005_login"
branch_labels = None
depends_on = None

BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "dose_check",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dose_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("result", sa.String(length=16), nullable=False),
        sa.Column("result_date", sa.Date(), nullable=False),
        sa.Column("answered_by", sa.String(length=16), nullable=False),
        sa.Column("reminder_id", BIG_ID, nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("recorded_by_id", sa.Integer(), nullable=True),
        sa.Column("recorded_at", service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dose_id"], ["dose.id"], name=op.f("fk_dose_check_dose_id_dose"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["recorded_by_id"],
            ["user_account.id"],
            name=op.f("fk_dose_check_recorded_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["reminder_id"],
            ["reminder.id"],
            name=op.f("fk_dose_check_reminder_id_reminder"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dose_check")),
        sa.UniqueConstraint("dose_id", "code", name=op.f("uq_dose_check_dose_id_code")),
    )
    op.create_table(
        "dose_readiness_override",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dose_id", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("blocking_items", sa.JSON(), nullable=False),
        sa.Column("clinician_id", sa.Integer(), nullable=False),
        sa.Column("created_at", service.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinician_id"],
            ["user_account.id"],
            name=op.f("fk_dose_readiness_override_clinician_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["dose_id"],
            ["dose.id"],
            name=op.f("fk_dose_readiness_override_dose_id_dose"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dose_readiness_override")),
    )
    op.create_index(
        op.f("ix_dose_readiness_override_dose_id"),
        "dose_readiness_override",
        ["dose_id"],
        unique=False,
    )
    with op.batch_alter_table("dose") as batch:
        batch.add_column(sa.Column("missed_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("skip_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("skipped_by_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_dose_skipped_by_id_user_account"), "user_account", ["skipped_by_id"], ["id"]
        )
    with op.batch_alter_table("dose_administration") as batch:
        batch.add_column(sa.Column("premedication_exception_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("observation_minutes", sa.Integer(), nullable=True))
    with op.batch_alter_table("patient") as batch:
        batch.add_column(sa.Column("can_become_pregnant", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("patient") as batch:
        batch.drop_column("can_become_pregnant")
    with op.batch_alter_table("dose_administration") as batch:
        batch.drop_column("observation_minutes")
        batch.drop_column("premedication_exception_reason")
    with op.batch_alter_table("dose") as batch:
        batch.drop_constraint(op.f("fk_dose_skipped_by_id_user_account"), type_="foreignkey")
        batch.drop_column("skipped_by_id")
        batch.drop_column("skip_reason")
        batch.drop_column("missed_on")
    op.drop_index(op.f("ix_dose_readiness_override_dose_id"), table_name="dose_readiness_override")
    op.drop_table("dose_readiness_override")
    op.drop_table("dose_check")

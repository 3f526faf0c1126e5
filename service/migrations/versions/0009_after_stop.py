"""monitoring after the plan ends, infusion options and the infusion/observation record

Revision ID: 0009_after_stop
Revises: 0008_screening

monitoring_follow_up holds monitoring that goes on after a plan is discontinued or completed
(immunoglobulins until B-cell repletion; any kind until an end date); its tasks point at it.
A plan keeps the day it ended. A dose keeps the infusion-rate option chosen for it (e.g. the
shorter 2-hour ocrelizumab infusion); its administration the infusion's end and the end of
observation.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db

revision = "0009_after_stop"
down_revision = "0008_screening"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_follow_up",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("plan_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reason", sa.String(length=48), nullable=False),
        sa.Column("every_months", sa.Integer(), nullable=False),
        sa.Column("anchor_date", sa.Date(), nullable=False),
        sa.Column("started_on", sa.Date(), nullable=False),
        sa.Column("until", sa.Date(), nullable=True),
        sa.Column("ended_at", service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=32), nullable=True),
        sa.Column("end_notes", sa.Text(), nullable=True),
        sa.Column("ended_by_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ended_by_id"],
            ["user_account.id"],
            name=op.f("fk_monitoring_follow_up_ended_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["plan_id"],
            ["treatment_plan.id"],
            name=op.f("fk_monitoring_follow_up_plan_id_treatment_plan"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_monitoring_follow_up")),
        sa.UniqueConstraint("plan_id", "kind", name=op.f("uq_monitoring_follow_up_plan_id_kind")),
    )
    op.create_index(
        op.f("ix_monitoring_follow_up_plan_id"), "monitoring_follow_up", ["plan_id"], unique=False
    )
    with op.batch_alter_table("monitoring_task") as batch:
        batch.add_column(sa.Column("follow_up_id", sa.Integer(), nullable=True))
        batch.create_index(batch.f("ix_monitoring_task_follow_up_id"), ["follow_up_id"])
        batch.create_foreign_key(
            batch.f("fk_monitoring_task_follow_up_id_monitoring_follow_up"),
            "monitoring_follow_up",
            ["follow_up_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("treatment_plan") as batch:
        batch.add_column(sa.Column("ended_on", sa.Date(), nullable=True))
    with op.batch_alter_table("dose") as batch:
        batch.add_column(sa.Column("infusion_option", sa.String(length=32), nullable=True))
    with op.batch_alter_table("dose_administration") as batch:
        batch.add_column(
            sa.Column("infusion_ended_at", service.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch.add_column(
            sa.Column("observation_ended_at", service.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("dose_administration") as batch:
        batch.drop_column("observation_ended_at")
        batch.drop_column("infusion_ended_at")
    with op.batch_alter_table("dose") as batch:
        batch.drop_column("infusion_option")
    with op.batch_alter_table("treatment_plan") as batch:
        batch.drop_column("ended_on")
    with op.batch_alter_table("monitoring_task") as batch:
        batch.drop_constraint(
            batch.f("fk_monitoring_task_follow_up_id_monitoring_follow_up"), type_="foreignkey"
        )
        batch.drop_index(batch.f("ix_monitoring_task_follow_up_id"))
        batch.drop_column("follow_up_id")
    op.drop_index(op.f("ix_monitoring_follow_up_plan_id"), table_name="monitoring_follow_up")
    op.drop_table("monitoring_follow_up")

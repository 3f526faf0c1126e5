"""stored gate and readiness states, and the partial indexes the staff views select by

Revision ID: 0011_worklist_indexes
Revises: 0009_after_stop

treatment_plan.gate_open and dose.ready / dose.observation_short hold what the checklist, the
dose's readiness and its observation record work out to, kept by every write, so the worklist
selects what is on it by index instead of working out every open plan. Existing rows start
with NULL, which the worklist reads as "look": they are worked out on the read until the next
write stores them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_worklist_indexes"
down_revision = "0010_audit_partitions"
branch_labels = None
depends_on = None

OPEN_DOSE = "status IN ('planned', 'booked', 'missed')"
PARTIAL_INDEXES: tuple[tuple[str, str, list[str], str], ...] = (
    (
        "ix_treatment_plan_gate_closed",
        "treatment_plan",
        ["clinic_id"],
        "gate_open IS NOT TRUE AND status IN ('draft', 'screening', 'ready')",
    ),
    (
        "ix_treatment_plan_not_ready",
        "treatment_plan",
        ["clinic_id"],
        "status IN ('draft', 'screening')",
    ),
    (
        "ix_dose_open_unbooked_due",
        "dose",
        ["due_date"],
        f"appointment_at IS NULL AND {OPEN_DOSE}",
    ),
    ("ix_dose_open_appointment", "dose", ["appointment_at"], OPEN_DOSE),
    ("ix_dose_not_ready_due", "dose", ["due_date"], f"ready IS NOT TRUE AND {OPEN_DOSE}"),
    (
        "ix_dose_not_ready_appointment",
        "dose",
        ["appointment_at"],
        f"ready IS NOT TRUE AND {OPEN_DOSE}",
    ),
    (
        "ix_dose_observation_short",
        "dose",
        ["due_date"],
        "observation_short IS NOT FALSE AND status = 'administered'",
    ),
    ("ix_staff_alert_open", "staff_alert", ["clinic_id", "created_at"], "resolved_at IS NULL"),
)


def upgrade() -> None:
    op.add_column("treatment_plan", sa.Column("gate_open", sa.Boolean(), nullable=True))
    op.add_column("dose", sa.Column("ready", sa.Boolean(), nullable=True))
    op.add_column("dose", sa.Column("observation_short", sa.Boolean(), nullable=True))
    for name, table, columns, where in PARTIAL_INDEXES:
        op.create_index(
            name,
            table,
            columns,
            postgresql_where=sa.text(where),
            sqlite_where=sa.text(where),
        )
    op.create_index("ix_monitoring_task_status_due", "monitoring_task", ["status", "due_date"])


def downgrade() -> None:
    op.drop_index("ix_monitoring_task_status_due", table_name="monitoring_task")
    for name, table, _columns, _where in reversed(PARTIAL_INDEXES):
        op.drop_index(name, table_name=table)
    with op.batch_alter_table("dose") as batch:
        batch.drop_column("observation_short")
        batch.drop_column("ready")
    with op.batch_alter_table("treatment_plan") as batch:
        batch.drop_column("gate_open")

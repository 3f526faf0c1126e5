"""each open plan's checklist state stored beside its gate

Revision ID: 0015_stored_checklist
Revises: 0014_patient_list_index

treatment_plan.checklist_outcome, checklist_blocking and checklist_overridden hold what the
checklist's outcome, blocking items and override work out to, kept by every write like
gate_open, so the staff views show a plan's checklist without loading its items. Existing rows
start with NULL, which the views read as "work it out": until the next write stores them.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_stored_checklist"
down_revision = "0014_patient_list_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("treatment_plan", sa.Column("checklist_outcome", sa.String(16), nullable=True))
    op.add_column("treatment_plan", sa.Column("checklist_blocking", sa.JSON(), nullable=True))
    op.add_column("treatment_plan", sa.Column("checklist_overridden", sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("treatment_plan") as batch:
        batch.drop_column("checklist_overridden")
        batch.drop_column("checklist_blocking")
        batch.drop_column("checklist_outcome")

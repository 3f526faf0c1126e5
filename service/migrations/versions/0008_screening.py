"""screening results with structure, and the hepatitis B pathway's items on existing plans

Revision ID: 0008_screening
Revises: 0007_exports

screening_item.details keeps the structured part of a result: the hepatology consult (who,
decision, prophylaxis drug, start and planned stop, monitoring cadence) and liver test values.
Every plan gets the two new checklist items hbv_dna and hepatology_consult (not required until
a hepatitis B marker is positive), as a new plan has them from its catalog template.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_screening"
down_revision = "0007_exports"
branch_labels = None
depends_on = None

NEW_CODES = ("hbv_dna", "hepatology_consult")


def upgrade() -> None:
    with op.batch_alter_table("screening_item") as batch:
        batch.add_column(sa.Column("details", sa.JSON(), nullable=True))
    for code in NEW_CODES:
        op.execute(
            sa.text(
                "INSERT INTO screening_item (plan_id, code, required) "
                "SELECT p.id, :code, :required FROM treatment_plan p WHERE NOT EXISTS "
                "(SELECT 1 FROM screening_item s WHERE s.plan_id = p.id AND s.code = :code)"
            ).bindparams(code=code, required=False)
        )


def downgrade() -> None:
    op.execute(
        sa.text("DELETE FROM screening_item WHERE code IN ('hbv_dna', 'hepatology_consult')")
    )
    with op.batch_alter_table("screening_item") as batch:
        batch.drop_column("details")

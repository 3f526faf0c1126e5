"""the patient list's order as an index

Revision ID: 0014_patient_list_index
Revises: 0013_console

GET /patients sorts a clinic's patients by family name, given name and id: with this index a
page is read in order off the index instead of sorting the whole clinic on every request.
"""

from __future__ import annotations

from alembic import op

revision = "0014_patient_list_index"
down_revision = "0013_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_patient_clinic_name", "patient", ["clinic_id", "family_name", "given_name", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_patient_clinic_name", table_name="patient")

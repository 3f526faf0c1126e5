"""a checklist item's version, for If-Match from a list

Revision ID: 0012_mobile
Revises: 0009_after_stop

screening_item gets the version column the other writable rows have (the ORM's version counter):
list items carry it and the ETag it gives, so a client records a result without reading the item
first. Existing rows start at 1.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_mobile"
down_revision = "0011_worklist_indexes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("screening_item") as batch:
        batch.add_column(sa.Column("version", sa.Integer(), nullable=False, server_default="1"))


def downgrade() -> None:
    with op.batch_alter_table("screening_item") as batch:
        batch.drop_column("version")

"""audit_event is append-only on SQLite too

Revision ID: 0003_audit
Revises: 0002

Row triggers refuse UPDATE and DELETE on audit_event (0002 did it for PostgreSQL only). SQLite
has no TRUNCATE: its `DELETE FROM audit_event` without a WHERE fires the delete trigger too.
A later migration that rebuilds audit_event with batch_alter_table drops these triggers and must
create them again (tests/integration/test_audit_append_only.py checks they are in place at head).
"""

from __future__ import annotations

from alembic import op

revision = "0003_audit"
down_revision = "0002"
branch_labels = None
depends_on = None

TRIGGERS = {
    "audit_event_no_update": "UPDATE",
    "audit_event_no_delete": "DELETE",
}


def _is_sqlite() -> bool:
    return op.get_bind().dialect.name == "sqlite"


def upgrade() -> None:
    if not _is_sqlite():
        return
    for name, operation in TRIGGERS.items():
        op.execute(
            f"""
            CREATE TRIGGER {name} BEFORE {operation} ON audit_event
            BEGIN
                SELECT RAISE(ABORT, 'audit_event is append-only: {operation} refused');
            END
            """
        )


def downgrade() -> None:
    if not _is_sqlite():
        return
    for name in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")

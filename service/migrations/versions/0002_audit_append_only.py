"""audit_event is append-only on PostgreSQL

Revision ID: 0002
Revises: 0001

A trigger refuses UPDATE, DELETE and TRUNCATE on audit_event (HIPAA 45 CFR 164.312(b)): the
statement-level trigger fires even when no row matches, so nothing can quietly edit the trail.
SQLite has no TRUNCATE and its batch migrations rebuild tables (dropping triggers), so there the
guarantee is the code's alone: nothing in it updates or deletes audit rows.

Kept out of 0001 because 0001 is regenerated from the models, which cannot express a trigger.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

FUNCTION = "audit_event_append_only"
TRIGGER = "audit_event_append_only"


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _is_postgresql():
        return
    op.execute(
        f"""
        CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit_event is append-only: % refused', TG_OP
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'Audit events are never changed or removed.';
        END
        $$
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER {TRIGGER}
        BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_event
        FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()
        """
    )


def downgrade() -> None:
    if not _is_postgresql():
        return
    op.execute(f"DROP TRIGGER IF EXISTS {TRIGGER} ON audit_event")
    op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")

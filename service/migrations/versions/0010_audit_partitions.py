"""audit_event partitioned by month on PostgreSQL

Revision ID: 0010_audit_partitions
Revises: 0009_after_stop

At 100 requests/s the trail gains 8.6 million rows a day. On PostgreSQL audit_event becomes a
table partitioned by range of occurred_at, one partition per calendar month (UTC), so a month
is exported and detached whole (retention), and reads by clinic and time touch only the months
asked for. The primary key becomes (id, occurred_at): a partitioned table's unique keys must
hold its partition key. Months are created two years ahead here and kept ahead
by the runner (audit_event_ensure_partitions(), which this creates); a DEFAULT partition takes
any row outside them, so an insert never fails for a missing month.

Still append-only: the statement trigger of 0002 on the parent, a row trigger that every
partition inherits (UPDATE or DELETE through a partition's own name), and a TRUNCATE trigger
on each partition. Detaching a partition is the retention path, and needs the table's owner.

SQLite stays as it is: one table.
"""

from __future__ import annotations

from alembic import op

revision = "0010_audit_partitions"
down_revision = "0009_after_stop"
branch_labels = None
depends_on = None

APPEND_ONLY_FUNCTION = "audit_event_append_only"  # 0002's: raises, whatever the operation
STATEMENT_TRIGGER = "audit_event_append_only"  # 0002's
ROW_TRIGGER = "audit_event_append_only_row"
TRUNCATE_TRIGGER = "audit_event_append_only_truncate"
DEFAULT_PARTITION = "audit_event_default"
ENSURE_FUNCTION = "audit_event_ensure_partitions"
MONTHS_AHEAD = 24
INDEXES = {
    "ix_audit_event_actor_time": "(actor_id, occurred_at)",
    "ix_audit_event_clinic_time": "(clinic_id, occurred_at)",
    "ix_audit_event_patient_time": "(patient_id, occurred_at)",
}


# Creates the month partitions from `since`'s month to `months_ahead` months after this one
# (UTC months), each with its TRUNCATE trigger; returns how many it made. A month that already
# has rows in the DEFAULT partition is skipped with a warning: creating it would fail.
ENSURE_PARTITIONS = f"""
CREATE FUNCTION {ENSURE_FUNCTION}(months_ahead integer, since timestamptz DEFAULT now())
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    month date := date_trunc('month', since AT TIME ZONE 'UTC')::date;
    last_month date := (date_trunc('month', now() AT TIME ZONE 'UTC')
        + make_interval(months => months_ahead))::date;
    lower_bound timestamptz;
    upper_bound timestamptz;
    name text;
    made integer := 0;
BEGIN
    WHILE month <= last_month LOOP
        name := 'audit_event_' || to_char(month, 'YYYY_MM');
        lower_bound := month::timestamp AT TIME ZONE 'UTC';
        upper_bound := (month + interval '1 month')::timestamp AT TIME ZONE 'UTC';
        IF to_regclass(name) IS NULL THEN
            IF EXISTS (SELECT 1 FROM {DEFAULT_PARTITION}
                       WHERE occurred_at >= lower_bound AND occurred_at < upper_bound) THEN
                RAISE WARNING 'audit_event: % has rows in the default partition', name;
            ELSE
                EXECUTE format('CREATE TABLE %I PARTITION OF audit_event'
                    ' FOR VALUES FROM (%L) TO (%L)', name, lower_bound, upper_bound);
                EXECUTE format('CREATE TRIGGER {TRUNCATE_TRIGGER} BEFORE TRUNCATE ON %I'
                    ' FOR EACH STATEMENT EXECUTE FUNCTION {APPEND_ONLY_FUNCTION}()', name);
                made := made + 1;
            END IF;
        END IF;
        month := (month + interval '1 month')::date;
    END LOOP;
    RETURN made;
END
$$
"""


def _is_postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if not _is_postgresql():
        return
    op.execute("ALTER TABLE audit_event RENAME TO audit_event_unpartitioned")
    op.execute(
        "ALTER TABLE audit_event_unpartitioned"
        " RENAME CONSTRAINT pk_audit_event TO pk_audit_event_old"
    )
    for name in INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_old")
    op.execute(
        """
        CREATE TABLE audit_event (
            LIKE audit_event_unpartitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
            CONSTRAINT pk_audit_event PRIMARY KEY (id, occurred_at)
        ) PARTITION BY RANGE (occurred_at)
        """
    )
    # The id sequence must outlive the old table: it belongs to the new one now.
    op.execute("ALTER SEQUENCE audit_event_id_seq OWNED BY audit_event.id")
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON audit_event {columns}")
    op.execute(f"CREATE TABLE {DEFAULT_PARTITION} PARTITION OF audit_event DEFAULT")
    op.execute(
        f"CREATE TRIGGER {TRUNCATE_TRIGGER} BEFORE TRUNCATE ON {DEFAULT_PARTITION}"
        f" FOR EACH STATEMENT EXECUTE FUNCTION {APPEND_ONLY_FUNCTION}()"
    )
    op.execute(ENSURE_PARTITIONS)
    # Every month the old rows span, up to two years ahead.
    op.execute(
        f"SELECT {ENSURE_FUNCTION}({MONTHS_AHEAD},"
        " coalesce((SELECT min(occurred_at) FROM audit_event_unpartitioned), now()))"
    )
    op.execute("INSERT INTO audit_event SELECT * FROM audit_event_unpartitioned")
    op.execute("DROP TABLE audit_event_unpartitioned")  # its statement trigger goes with it
    op.execute(
        f"""
        CREATE TRIGGER {STATEMENT_TRIGGER}
        BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_event
        FOR EACH STATEMENT EXECUTE FUNCTION {APPEND_ONLY_FUNCTION}()
        """
    )
    op.execute(
        f"""
        CREATE TRIGGER {ROW_TRIGGER}
        BEFORE UPDATE OR DELETE ON audit_event
        FOR EACH ROW EXECUTE FUNCTION {APPEND_ONLY_FUNCTION}()
        """
    )


def downgrade() -> None:
    if not _is_postgresql():
        return
    op.execute("ALTER TABLE audit_event RENAME TO audit_event_partitioned")
    op.execute(
        "ALTER TABLE audit_event_partitioned"
        " RENAME CONSTRAINT pk_audit_event TO pk_audit_event_part"
    )
    for name in INDEXES:
        op.execute(f"ALTER INDEX {name} RENAME TO {name}_part")
    op.execute(
        """
        CREATE TABLE audit_event (
            LIKE audit_event_partitioned INCLUDING DEFAULTS INCLUDING CONSTRAINTS,
            CONSTRAINT pk_audit_event PRIMARY KEY (id)
        )
        """
    )
    op.execute("ALTER SEQUENCE audit_event_id_seq OWNED BY audit_event.id")
    for name, columns in INDEXES.items():
        op.execute(f"CREATE INDEX {name} ON audit_event {columns}")
    op.execute("INSERT INTO audit_event SELECT * FROM audit_event_partitioned")
    op.execute("DROP TABLE audit_event_partitioned CASCADE")  # and every partition
    op.execute(f"DROP FUNCTION {ENSURE_FUNCTION}(integer, timestamptz)")
    op.execute(
        f"""
        CREATE TRIGGER {STATEMENT_TRIGGER}
        BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_event
        FOR EACH STATEMENT EXECUTE FUNCTION {APPEND_ONLY_FUNCTION}()
        """
    )

"""calendar feeds and imported FHIR observations

Revision ID: 0007_exports
Revises: 0006_readiness

Two tables for service/exports: calendar_feed (secret feed URLs, kept as SHA-256 hashes) and
imported_observation (FHIR Observations received, unique per patient by their identifier).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import service.db

revision = "0007_exports"
down_revision = "0006_readiness"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "calendar_feed",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", service.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", service.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinic.id"], name=op.f("fk_calendar_feed_clinic_id_clinic")
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_calendar_feed_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["revoked_by_id"],
            ["user_account.id"],
            name=op.f("fk_calendar_feed_revoked_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_calendar_feed_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_calendar_feed")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_calendar_feed_token_hash")),
    )
    with op.batch_alter_table("calendar_feed", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_calendar_feed_clinic_id"), ["clinic_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_calendar_feed_patient_id"), ["patient_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_calendar_feed_user_id"), ["user_id"], unique=False)

    op.create_table(
        "imported_observation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("clinic_id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("identifier_system", sa.String(length=255), nullable=False),
        sa.Column("identifier_value", sa.String(length=255), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("lab_result_id", sa.Integer(), nullable=True),
        sa.Column("screening_item_id", sa.Integer(), nullable=True),
        sa.Column("imported_by_id", sa.Integer(), nullable=False),
        sa.Column("imported_at", service.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinic.id"], name=op.f("fk_imported_observation_clinic_id_clinic")
        ),
        sa.ForeignKeyConstraint(
            ["imported_by_id"],
            ["user_account.id"],
            name=op.f("fk_imported_observation_imported_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["lab_result_id"],
            ["lab_result.id"],
            name=op.f("fk_imported_observation_lab_result_id_lab_result"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patient.id"], name=op.f("fk_imported_observation_patient_id_patient")
        ),
        sa.ForeignKeyConstraint(
            ["screening_item_id"],
            ["screening_item.id"],
            name=op.f("fk_imported_observation_screening_item_id_screening_item"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imported_observation")),
        sa.UniqueConstraint(
            "patient_id",
            "identifier_system",
            "identifier_value",
            name="uq_imported_observation_identifier",
        ),
    )
    with op.batch_alter_table("imported_observation", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_imported_observation_clinic_id"), ["clinic_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("imported_observation", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_imported_observation_clinic_id"))

    op.drop_table("imported_observation")
    with op.batch_alter_table("calendar_feed", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_calendar_feed_user_id"))
        batch_op.drop_index(batch_op.f("ix_calendar_feed_patient_id"))
        batch_op.drop_index(batch_op.f("ix_calendar_feed_clinic_id"))

    op.drop_table("calendar_feed")

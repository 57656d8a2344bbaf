"""The enrolment registry: subjects, the hospital identifiers that point to them, infusions.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "subjects",
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("arm", sa.String(64), nullable=False),
        sa.Column("sex", sa.String(1), nullable=False),
        sa.Column("birth_year", sa.Integer(), nullable=False),
        sa.Column("consent_date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("withdrawn_at", _UTC, nullable=True),
        sa.Column("died_on", sa.Date(), nullable=True),
        sa.Column("last_known_alive", sa.Date(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("updated_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("subject_id", name="pk_subjects"),
        sa.CheckConstraint(
            "status IN ('on-study', 'withdrawn', 'off-study', 'follow-up')",
            name="ck_subjects_status",
        ),
        sa.CheckConstraint("sex IN ('F', 'M', 'O', 'U')", name="ck_subjects_sex"),
    )
    op.create_table(
        "subject_identifiers",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("authority", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subject_identifiers"),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.subject_id"],
            name="fk_subject_identifiers_subject_id_subjects",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("value", "authority", name="uq_subject_identifiers_value_authority"),
    )
    op.create_table(
        "subject_infusions",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("infusion_date", sa.Date(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_subject_infusions"),
        sa.ForeignKeyConstraint(
            ["subject_id"],
            ["subjects.subject_id"],
            name="fk_subject_infusions_subject_id_subjects",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint(
            "subject_id", "infusion_date", name="uq_subject_infusions_subject_id_infusion_date"
        ),
    )


def downgrade() -> None:
    op.drop_table("subject_infusions")
    op.drop_table("subject_identifiers")
    op.drop_table("subjects")

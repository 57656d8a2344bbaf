"""The service: the outbox, dead letters, leases and job runs.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    _outbox()
    op.create_table(
        "dead_letters",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("outbox_id", _ID, nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.Text(), nullable=False),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("retried_at", _UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_dead_letters"),
        sa.ForeignKeyConstraint(
            ["outbox_id"],
            ["outbox.id"],
            name="fk_dead_letters_outbox_id_outbox",
            ondelete="CASCADE",
        ),
    )
    op.create_index(
        "ix_dead_letters_open",
        "dead_letters",
        ["outbox_id"],
        sqlite_where=sa.text("retried_at IS NULL"),
        postgresql_where=sa.text("retried_at IS NULL"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("expires_at", _UTC, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_leases"),
    )
    op.create_table(
        "job_runs",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(128), nullable=True),
        sa.Column("last_success_at", _UTC, nullable=True),
        sa.Column("last_error_at", _UTC, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_count", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("runs", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
        sa.PrimaryKeyConstraint("name", name="pk_job_runs"),
    )


def _outbox() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("message_id", _ID, nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("sequence", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("bundle", sa.Text(), nullable=False),
        sa.Column("status", sa.String(8), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default=sa.text("0")),
        sa.Column("next_attempt_at", _UTC, nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", _UTC, nullable=False),
        sa.Column("sent_at", _UTC, nullable=True),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        sa.Column("claimed_until", _UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_outbox_message_id_messages",
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("status IN ('pending', 'sent', 'dead')", name="ck_outbox_status"),
        sa.CheckConstraint("kind IN ('results', 'subject')", name="ck_outbox_kind"),
    )
    op.create_index(
        "ix_outbox_status_subject_id_sequence", "outbox", ["status", "subject_id", "sequence"]
    )
    op.create_index("ix_outbox_message_id", "outbox", ["message_id"])


def downgrade() -> None:
    op.drop_table("job_runs")
    op.drop_table("leases")
    op.drop_index("ix_dead_letters_open", table_name="dead_letters")
    op.drop_table("dead_letters")
    op.drop_index("ix_outbox_message_id", table_name="outbox")
    op.drop_index("ix_outbox_status_subject_id_sequence", table_name="outbox")
    op.drop_table("outbox")

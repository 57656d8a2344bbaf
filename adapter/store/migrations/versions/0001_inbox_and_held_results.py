"""The inbox (messages) and the held results queue.

Revision ID: 0001
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("sender", sa.String(255), nullable=False),
        sa.Column("control_id", sa.String(199), nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("received_at", _UTC, nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=True),
        sa.Column("status", sa.String(16), nullable=False, server_default="received"),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("content_conflict", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("processed_at", _UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_messages"),
        sa.UniqueConstraint(
            "sender",
            "control_id",
            "content_hash",
            name="uq_messages_sender_control_id_content_hash",
        ),
        sa.CheckConstraint(
            "status IN ('received', 'processed', 'refused')", name="ck_messages_status"
        ),
    )
    op.create_index("ix_messages_status_id", "messages", ["status", "id"])
    op.create_table(
        "held_results",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("message_id", _ID, nullable=False),
        sa.Column("location", sa.String(32), nullable=False),
        sa.Column("code", sa.String(255), nullable=False),
        sa.Column("code_system", sa.String(255), nullable=False),
        sa.Column("code_text", sa.String(255), nullable=False),
        sa.Column("unit", sa.String(255), nullable=False),
        sa.Column("value_type", sa.String(8), nullable=False),
        sa.Column("example_value", sa.String(64), nullable=False),
        sa.Column("reason_kind", sa.String(24), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("first_seen", _UTC, nullable=False),
        sa.Column("last_seen", _UTC, nullable=False),
        sa.Column("resolved_at", _UTC, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_held_results"),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_held_results_message_id_messages",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("message_id", "location", name="uq_held_results_message_id_location"),
        sa.CheckConstraint(
            "reason_kind IN ('unmapped_code', 'unit', 'value', 'status', 'order', 'time', 'other')",
            name="ck_held_results_reason_kind",
        ),
    )
    op.create_index(
        "ix_held_results_open",
        "held_results",
        ["reason_kind", "code_system", "code"],
        sqlite_where=sa.text("resolved_at IS NULL"),
        postgresql_where=sa.text("resolved_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_held_results_open", table_name="held_results")
    op.drop_table("held_results")
    op.drop_index("ix_messages_status_id", table_name="messages")
    op.drop_table("messages")

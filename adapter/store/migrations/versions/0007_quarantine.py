"""The quarantine: messages set aside because translating or pushing them failed.

One row per message (issue 12). A message whose processing raised anything (a project error
or any other exception) is set aside here with the error's class, its reason and where (the
segment and field when known), never its content; the rest of its batch goes on. While an
entry that ``holds`` is open, the same subject's later transactions wait in the outbox, so
the subject's results reach the FHIR server in the order they were received
(docs/operations/quarantine.md says why). ``trialbridge quarantine retry`` and ``discard``
close an entry (``resolution``, with the operator's ``note`` for a discard).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_UTC = sa.DateTime(timezone=True)
_OPEN = "resolved_at IS NULL"


def upgrade() -> None:
    op.create_table(
        "quarantine",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("message_id", _ID, nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("outbox_id", _ID, nullable=True),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("holds", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("error_class", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("location", sa.String(255), nullable=True),
        sa.Column("times", sa.Integer(), nullable=False, server_default=sa.text("1")),
        sa.Column("first_seen", _UTC, nullable=False),
        sa.Column("last_seen", _UTC, nullable=False),
        sa.Column("resolved_at", _UTC, nullable=True),
        sa.Column("resolution", sa.String(16), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine"),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_quarantine_message_id_messages",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("message_id", name="uq_quarantine_message_id"),
        sa.CheckConstraint("stage IN ('process', 'push')", name="ck_quarantine_stage"),
        sa.CheckConstraint(
            "resolution IS NULL OR resolution IN ('retried', 'discarded')",
            name="ck_quarantine_resolution",
        ),
    )
    op.create_index(
        "ix_quarantine_open",
        "quarantine",
        ["subject_id", "message_id"],
        sqlite_where=sa.text(_OPEN),
        postgresql_where=sa.text(_OPEN),
    )


def downgrade() -> None:
    op.drop_index("ix_quarantine_open", table_name="quarantine")
    op.drop_table("quarantine")

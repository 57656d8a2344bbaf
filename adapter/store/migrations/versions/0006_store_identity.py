"""The FHIR server a store belongs to (table ``store_identity``): its base URL and, where
the server publishes one, the identity in its CapabilityStatement. A store used against
another server would otherwise take its own records ("already sent") for the truth there.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "store_identity",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("fhir_base_url", sa.Text(), nullable=False),
        sa.Column("server_identity", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_store_identity"),
    )


def downgrade() -> None:
    op.drop_table("store_identity")

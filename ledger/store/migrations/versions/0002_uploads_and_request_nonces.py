"""Upload intents: the two-step streamed registration.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "upload_intents",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner", sa.String(length=42), nullable=False),
        sa.Column("signed_json", sa.String(), nullable=False),
        sa.Column("metadata_json", sa.String(), nullable=False),
        sa.Column("owner_wrapped_key", sa.LargeBinary(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_upload_intents_owner", "upload_intents", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_upload_intents_owner", table_name="upload_intents")
    op.drop_table("upload_intents")

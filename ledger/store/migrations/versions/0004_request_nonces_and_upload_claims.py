"""Request nonces kept in the database; one upload intent per signed registration; upload claims.

Request nonces were a per-process cache: a second replica or a restarted broker accepted a
replayed request. They now live here with their expiry (pruned as they lapse). An upload intent
is unique per (owner, registration nonce), so re-posting one signed Register cannot pile up
intents, and a PUT claims its intent until ``claimed_until`` so only one transfer runs per intent
across replicas.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "request_nonces",
        sa.Column("signer", sa.String(length=42), nullable=False),
        sa.Column("nonce", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("signer", "nonce"),
    )
    op.create_index("ix_request_nonces_expires_at", "request_nonces", ["expires_at"])
    # Intents made before this revision carry no nonce column: they expire within their
    # deadline anyway, so dropping them is the simplest correct upgrade.
    op.execute("DELETE FROM upload_intents")
    with op.batch_alter_table("upload_intents") as batch:
        batch.add_column(
            sa.Column("nonce", sa.String(length=78), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("claimed_until", sa.BigInteger(), nullable=True))
        batch.create_unique_constraint("uq_upload_intents_owner_nonce", ["owner", "nonce"])


def downgrade() -> None:
    with op.batch_alter_table("upload_intents") as batch:
        batch.drop_constraint("uq_upload_intents_owner_nonce", type_="unique")
        batch.drop_column("claimed_until")
        batch.drop_column("nonce")
    op.drop_index("ix_request_nonces_expires_at", table_name="request_nonces")
    op.drop_table("request_nonces")

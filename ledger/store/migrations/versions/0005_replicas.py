"""Several replicas on one database: the deployment it indexes, leases, the chain sender's nonce.

``deployment`` records the chain id, contract addresses, ADMIN and BROKER of the deployment
the database belongs to, so a replica started with another one refuses instead of mixing two
deployments in one index. ``leases`` elects the one anchoring replica; ``chain_senders``
coordinates the nonce of the BROKER key between replicas.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | Sequence[str] | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "deployment",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("chain_id", sa.BigInteger(), nullable=False),
        sa.Column("member_registry", sa.String(length=42), nullable=False),
        sa.Column("data_registry", sa.String(length=42), nullable=False),
        sa.Column("access_ledger", sa.String(length=42), nullable=False),
        sa.Column("flow_log", sa.String(length=42), nullable=False),
        sa.Column("sharing_credits", sa.String(length=42), nullable=False),
        sa.Column("admin", sa.String(length=42), nullable=False),
        sa.Column("broker", sa.String(length=42), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("expires_ms", sa.BigInteger(), nullable=False),
        sa.Column("requested_ms", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_table(
        "chain_senders",
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("next_nonce", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("address"),
    )


def downgrade() -> None:
    op.drop_table("chain_senders")
    op.drop_table("leases")
    op.drop_table("deployment")

"""One receipt per fetch: deliveries name the fetch they acknowledge and keep the signed receipt.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(
            sa.Column("fetch_nonce", sa.String(length=78), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("signed_json", sa.String(), nullable=False, server_default=""))
        batch.create_unique_constraint("uq_deliveries_consumer_fetch", ["consumer", "fetch_nonce"])
    with op.batch_alter_table("access_requests") as batch:
        batch.alter_column("status", existing_type=sa.String(length=16), type_=sa.String(length=24))
        batch.add_column(sa.Column("pending_grant_json", sa.String(), nullable=True))
        batch.add_column(sa.Column("pending_wrapped_key", sa.LargeBinary(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_column("pending_wrapped_key")
        batch.drop_column("pending_grant_json")
        batch.alter_column("status", existing_type=sa.String(length=24), type_=sa.String(length=16))
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_deliveries_consumer_fetch", type_="unique")
        batch.drop_column("signed_json")
        batch.drop_column("fetch_nonce")

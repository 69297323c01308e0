"""The standard request form: purpose category, legal basis, retention and processing location.

Requests recorded before the form existed read ``unspecified`` (retention 0: deleted at the
grant's expiry, as the standard conditions say).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.add_column(
            sa.Column(
                "purpose_category",
                sa.String(length=40),
                nullable=False,
                server_default="unspecified",
            )
        )
        batch.add_column(
            sa.Column(
                "legal_basis", sa.String(length=40), nullable=False, server_default="unspecified"
            )
        )
        batch.add_column(
            sa.Column("retention_days", sa.Integer(), nullable=False, server_default="0")
        )
        batch.add_column(
            sa.Column(
                "processing_location",
                sa.String(length=11),
                nullable=False,
                server_default="unspecified",
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("access_requests") as batch:
        batch.drop_column("processing_location")
        batch.drop_column("retention_days")
        batch.drop_column("legal_basis")
        batch.drop_column("purpose_category")

"""Datasets by the version they follow: which dataset is a given one's next version.

Every catalog page and dataset detail names each dataset's newer version, the dataset whose
``previous_version`` is its id. Without an index on ``previous_version`` that is a scan of every
dataset per page, however short the page.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | Sequence[str] | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_datasets_previous_version", "datasets", ["previous_version"])


def downgrade() -> None:
    op.drop_index("ix_datasets_previous_version", table_name="datasets")

"""Quality issues: a consumer's signed issue about a dataset it received, the owner's answer.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "quality_issues",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("dataset_id", sa.Integer(), nullable=False),
        sa.Column("reporter", sa.String(length=42), nullable=False),
        sa.Column("fields", sa.String(length=500), nullable=False),
        sa.Column("rows", sa.String(length=500), nullable=False),
        sa.Column("problem", sa.String(length=2000), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("fixed_in", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(length=2000), nullable=True),
        sa.Column("log_seq", sa.Integer(), nullable=False),
        sa.Column("answer_log_seq", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("answered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["dataset_id"], ["datasets.id"], name="fk_quality_issues_dataset_id_datasets"
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_quality_issues_dataset_id", "quality_issues", ["dataset_id"])
    op.create_index("ix_quality_issues_reporter", "quality_issues", ["reporter"])


def downgrade() -> None:
    op.drop_index("ix_quality_issues_reporter", table_name="quality_issues")
    op.drop_index("ix_quality_issues_dataset_id", table_name="quality_issues")
    op.drop_table("quality_issues")

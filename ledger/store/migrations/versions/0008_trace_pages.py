"""Trace pages by index range: flow-log records by (dataset, seq) and by (actor, seq).

A trace page is ``WHERE dataset_id = ? AND seq > ? ORDER BY seq LIMIT n`` (or by actor). With
an index on the dataset (or actor) alone, PostgreSQL reads every record of a busy dataset or
member and sorts them before the limit applies; with the sequence number in the index a page is
one bounded range scan, whatever the log's size. (SQLite already reads these in order: its
indexes end with the rowid, which ``seq`` is.) The new indexes replace the single-column ones,
which answer nothing the composite ones do not.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_log_records_dataset_seq", "log_records", ["dataset_id", "seq"])
    op.create_index("ix_log_records_actor_seq", "log_records", ["actor", "seq"])
    op.drop_index("ix_log_records_dataset_id", table_name="log_records")
    op.drop_index("ix_log_records_actor", table_name="log_records")


def downgrade() -> None:
    op.create_index("ix_log_records_actor", "log_records", ["actor"])
    op.create_index("ix_log_records_dataset_id", "log_records", ["dataset_id"])
    op.drop_index("ix_log_records_actor_seq", table_name="log_records")
    op.drop_index("ix_log_records_dataset_seq", table_name="log_records")

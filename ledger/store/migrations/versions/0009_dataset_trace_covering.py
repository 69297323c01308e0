"""A dataset's trace read from one contiguous range on SQLite: a covering index with the leaf.

A dataset's records are scattered over the whole log (requests from many members interleave),
so a first page of 500 flows read through ``(dataset_id, seq)`` fetched up to 500 table pages
at random: 5 ms with the file in the page cache, 50-80 ms at the 95th percentile without it
(``scripts/bench_trace.py``, 1,000,000 records). SQLite answers a query from an index that
holds every column it reads; with the leaf in it, a page of one dataset's flows is a handful of
adjacent index pages. The log's file grows by about the leaves' size (the price of clustering
one more way), and this index replaces 0008's ``(dataset_id, seq)``, whose work it does.

PostgreSQL keeps 0008's index: its B-tree entries are capped near 2.7 kB (a leaf may be larger),
and a PostgreSQL server keeps its own buffer cache.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | Sequence[str] | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COVERING = ["dataset_id", "seq", "action", "actor", "leaf"]


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_index("ix_log_records_dataset_trace", "log_records", _COVERING)
    op.drop_index("ix_log_records_dataset_seq", table_name="log_records")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_index("ix_log_records_dataset_seq", "log_records", ["dataset_id", "seq"])
    op.drop_index("ix_log_records_dataset_trace", table_name="log_records")

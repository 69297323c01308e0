"""The flow log's Merkle tree nodes in SQL: ``SqlNodeStore`` over the ``tree_nodes`` table.

``SqlNodeStore(session)`` implements ``ledger.merkle.tree.BatchNodeStore`` through the caller's
session, so the nodes an append writes commit or roll back with the log record that caused
them. Appends must run under the log lock (``ledger.store.db.locked_log_size``: one appender at
a time); readers can use any session.

Nodes never change once written: ``put`` of the same hash again is a no-op, ``put`` of a
different hash raises ``NodeConflict`` -- and neither aborts the caller's transaction (the
insert is ``ON CONFLICT DO NOTHING``, then the stored hash is compared). ``put_many`` does the
same for many nodes with one bulk insert (``executemany``), comparing stored hashes only when
some row was not inserted.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from collections.abc import Mapping, Sequence

from sqlalchemy import Insert, Table, and_, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from ledger.merkle.tree import Node, NodeKey
from ledger.store.errors import NodeConflict
from ledger.store.models import TreeNode

#: Keys per SELECT in ``get_many`` (stays far below every driver's bound-parameter limit).
BATCH_SIZE = 500
_TABLE: Table = TreeNode.__table__  # type: ignore[attr-defined]  # SQLModel sets it on tables


@functools.cache
def _insert_ignoring(
    dialect: str, table: Table, keys: tuple[str, ...], returning: tuple[str, ...]
) -> Insert:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement: Insert = insert(table).on_conflict_do_nothing(index_elements=list(keys))
    return statement.returning(*(table.c[name] for name in returning))


def insert_ignoring(
    session: Session, table: Table, keys: tuple[str, ...], returning: tuple[str, ...]
) -> Insert:
    """``INSERT ... ON CONFLICT (keys) DO NOTHING RETURNING ...`` for ``session``'s dialect.

    Built once per dialect and table and reused (SQLAlchemy then reuses its compiled form and
    cache key). Execute it with a parameter dict, or a list of them (``executemany``); the rows
    it returns are the ones really inserted -- psycopg reports no ``rowcount`` for these.
    """
    dialect = session.get_bind().dialect.name
    if dialect not in ("postgresql", "sqlite"):
        raise ValueError(f"the store supports sqlite and postgresql, not {dialect}")
    return _insert_ignoring(dialect, table, keys, returning)


class SqlNodeStore:
    """``BatchNodeStore`` backed by ``tree_nodes``, reading and writing in ``session``."""

    def __init__(self, session: Session) -> None:
        self._session = session
        dialect = session.get_bind().dialect.name
        if dialect not in ("postgresql", "sqlite"):
            raise ValueError(f"SqlNodeStore supports sqlite and postgresql, not {dialect}")
        self._insert = insert_ignoring(session, _TABLE, ("level", "idx"), ("level",))

    @property
    def session(self) -> Session:
        return self._session

    def get(self, level: int, index: int) -> bytes | None:
        digest = self._session.exec(
            select(TreeNode.hash).where(TreeNode.level == level, TreeNode.idx == index)
        ).one_or_none()
        return None if digest is None else bytes(digest)

    def get_many(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        found: dict[NodeKey, bytes] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), BATCH_SIZE):
            by_level: dict[int, list[int]] = defaultdict(list)
            for level, index in unique[start : start + BATCH_SIZE]:
                by_level[level].append(index)
            # (level = ? AND idx IN (...)) OR ...: portable, and each arm uses the primary key.
            condition = or_(
                *(
                    and_(col(TreeNode.level) == level, col(TreeNode.idx).in_(indexes))
                    for level, indexes in by_level.items()
                )
            )
            rows = self._session.exec(
                select(TreeNode.level, TreeNode.idx, TreeNode.hash).where(condition)
            )
            for level, index, digest in rows:
                found[level, index] = bytes(digest)
        return found

    def put_many(self, nodes: Sequence[Node]) -> None:
        """Insert ``nodes`` in one ``executemany``; a different stored hash raises NodeConflict."""
        if not nodes:
            return
        rows = [{"level": n.level, "idx": n.index, "hash": bytes(n.hash)} for n in nodes]
        inserted = len(self._session.connection().execute(self._insert, rows).all())
        if inserted == len(rows):
            return
        # Some node was there already: compare what is stored.
        stored = self.get_many([(n.level, n.index) for n in nodes])
        for n in nodes:
            if stored.get((n.level, n.index)) != bytes(n.hash):
                raise NodeConflict(n.level, n.index)

    def put(self, level: int, index: int, digest: bytes) -> None:
        digest = bytes(digest)
        row = {"level": level, "idx": index, "hash": digest}
        if self._session.connection().execute(self._insert, row).first() is not None:
            return
        stored = self.get(level, index)
        if stored != digest:
            raise NodeConflict(level, index)

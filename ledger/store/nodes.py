"""The flow log's Merkle tree nodes in SQL: ``SqlNodeStore`` over the ``tree_nodes`` table.

``SqlNodeStore(session)`` implements ``ledger.log.tree.BatchNodeStore`` through the caller's
session, so the nodes an append writes commit or roll back with the log record that caused
them. Appends must run under ``Database.lock_log`` (one appender at a time); readers can use
any session.

Nodes never change once written: ``put`` of the same hash again is a no-op, ``put`` of a
different hash raises ``NodeConflict`` -- and neither aborts the caller's transaction (the
insert is ``ON CONFLICT DO NOTHING``, then the stored hash is compared).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Insert, and_, or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, col, select

from ledger.log.tree import NodeKey
from ledger.store.errors import NodeConflict
from ledger.store.models import TreeNode

#: Keys per SELECT in ``get_many`` (stays far below every driver's bound-parameter limit).
BATCH_SIZE = 500


class SqlNodeStore:
    """``BatchNodeStore`` backed by ``tree_nodes``, reading and writing in ``session``."""

    def __init__(self, session: Session) -> None:
        self._session = session
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            self._insert: Any = postgresql.insert
        elif dialect == "sqlite":
            self._insert = sqlite.insert
        else:
            raise ValueError(f"SqlNodeStore supports sqlite and postgresql, not {dialect}")

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

    def put(self, level: int, index: int, digest: bytes) -> None:
        digest = bytes(digest)
        statement: Insert = (
            self._insert(TreeNode)
            .values(level=level, idx=index, hash=digest)
            .on_conflict_do_nothing(index_elements=["level", "idx"])
        )
        if self._session.exec(statement).rowcount == 1:
            return
        stored = self.get(level, index)
        if stored != digest:
            raise NodeConflict(level, index)

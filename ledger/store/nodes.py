"""The flow log's Merkle tree nodes in SQL: ``SqlNodeStore`` over the ``tree_nodes`` table.

``SqlNodeStore(session)`` implements ``ledger.merkle.tree.BatchNodeStore`` through the caller's
session, so the nodes an append writes commit or roll back with the log record that caused
them. Appends must run under the log lock (``ledger.store.db.locked_log_size``: one appender at
a time); readers can use any session.

Nodes never change once written: ``put`` of the same hash again is a no-op, ``put`` of a
different hash raises ``NodeConflict`` -- and neither aborts the caller's transaction (the
insert is ``ON CONFLICT DO NOTHING``, then the stored hash is compared). ``put_many`` does the
same for many nodes with one multi-row insert, comparing stored hashes only when some row was
not inserted. Appends run these on every write: they go straight to the driver
(``ledger.store.driver``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from sqlalchemy import Table
from sqlmodel import Session, select

from ledger.merkle.tree import Node, NodeKey
from ledger.store.driver import Driver, bind_marks
from ledger.store.errors import NodeConflict
from ledger.store.models import TreeNode

#: Keys per SELECT in ``get_many`` (stays far below every driver's bound-parameter limit).
BATCH_SIZE = 500
_TABLE: Table = TreeNode.__table__  # type: ignore[attr-defined]  # SQLModel sets it on tables
_GET_MANY = "SELECT level, idx, hash FROM tree_nodes WHERE "


class SqlNodeStore:
    """``BatchNodeStore`` backed by ``tree_nodes``, reading and writing in ``session``."""

    def __init__(self, session: Session) -> None:
        self._session = session
        dialect = session.get_bind().dialect.name
        if dialect not in ("postgresql", "sqlite"):
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
        driver = Driver.of(self._session)  # appends read their frontier: ledger.store.driver
        for start in range(0, len(unique), BATCH_SIZE):
            by_level: dict[int, list[int]] = defaultdict(list)
            for level, index in unique[start : start + BATCH_SIZE]:
                by_level[level].append(index)
            # (level = ? AND idx IN (...)) OR ...: portable, and each arm uses the primary key.
            arms = " OR ".join(
                f"(level = ? AND idx IN ({bind_marks(len(indexes))}))"
                for indexes in by_level.values()
            )
            params = [value for level, indexes in by_level.items() for value in (level, *indexes)]
            for level, index, digest in driver.rows(_GET_MANY + arms, params):
                found[int(level), int(index)] = bytes(digest)
        return found

    def put_many(self, nodes: Sequence[Node]) -> None:
        """Insert ``nodes`` in one statement; a different stored hash raises NodeConflict."""
        if not nodes:
            return
        rows = [(n.level, n.index, bytes(n.hash)) for n in nodes]
        inserted = Driver.of(self._session).insert(
            _TABLE, ("level", "idx", "hash"), rows, ignoring=("level", "idx"), returning=("level",)
        )
        if len(inserted) == len(rows):
            return
        # Some node was there already: compare what is stored.
        stored = self.get_many([(n.level, n.index) for n in nodes])
        for n in nodes:
            if stored.get((n.level, n.index)) != bytes(n.hash):
                raise NodeConflict(n.level, n.index)

    def put(self, level: int, index: int, digest: bytes) -> None:
        self.put_many([Node(level, index, bytes(digest))])

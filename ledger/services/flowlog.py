"""The persistent flow log: signed actions appended in the same transaction as their effects.

Each record's leaf is the canonical JSON of ``{"v", "seq", "at", "signed", "context"}``; the
Merkle tree (RFC 6962) over the leaves is kept incrementally in ``tree_nodes``, so appending is
O(log n) and proofs are served from stored nodes. Appends are serialised through the
``log_state`` row (``ledger.store.db.locked_log_size``), which also makes them safe across
broker replicas sharing PostgreSQL.

``append`` adds one record; ``append_many`` adds many in the caller's transaction with one lock
and bulk inserts (group commit: the records commit, or roll back, together).

The right edge of the tree (its frontier: one node per one-bit of the size) is needed by every
append. Rather than reading it back from ``tree_nodes`` each time, the process remembers the
frontier of the last size *it committed* per database (keyed by the engine's connection pool).
A committed prefix of an append-only log never changes, so that frontier stays right for that
size for good; it is used only when the size read under the log lock is exactly that size, so a
log advanced by another replica or process (or a rolled-back append) just means reading the
frontier from the table again. Frontiers are published only after the commit succeeded and are
dropped on any rollback, savepoints included.
"""

from __future__ import annotations

import datetime as dt
import json
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, event
from sqlalchemy.orm import Session as OrmSession
from sqlalchemy.orm import SessionTransaction
from sqlmodel import Session, col, select

from ledger.merkle.proofs import leaf_hash
from ledger.merkle.tree import MerkleTree, Node
from ledger.protocol.actions import SignedAction
from ledger.protocol.canonical import CanonicalText, canonical_text
from ledger.store.db import locked_log_size, set_log_size
from ledger.store.driver import Driver
from ledger.store.models import LogRecord, LogState
from ledger.store.nodes import SqlNodeStore

LEAF_VERSION = 1

_RECORDS: Table = LogRecord.__table__  # type: ignore[attr-defined]  # SQLModel sets it
#: Inserted by every append, straight through the driver (ledger.store.driver).
_RECORD_COLUMNS = ("seq", "action", "actor", "dataset_id", "leaf", "created_at")
_PENDING = "drl_flowlog_frontier"  # Session.info: (pool, size, frontier) written, not committed

#: Frontier of the last size this process committed, per database (its connection pool).
_committed: weakref.WeakKeyDictionary[Any, tuple[int, tuple[Node, ...]]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class TreeHead:
    """Size and root of the log at some point."""

    size: int
    root: bytes


@dataclass(frozen=True)
class Entry:
    """A decoded log record."""

    seq: int
    action: str
    actor: str
    dataset_id: int | None
    at: str
    signed: SignedAction
    context: dict[str, Any]
    leaf: bytes


@dataclass(frozen=True)
class Item:
    """One record to append: the signed action, the dataset it concerns, unsigned context."""

    signed: SignedAction
    dataset_id: int | None = None
    context: dict[str, Any] | None = None
    #: ``canonical(signed.to_json())``, if the caller wrote it beforehand (the same bytes).
    signed_text: CanonicalText | None = None


def append(
    session: Session,
    signed: SignedAction,
    *,
    dataset_id: int | None = None,
    context: dict[str, Any] | None = None,
) -> int:
    """Append one signed action inside the caller's transaction; returns its sequence number."""
    return append_many(session, [Item(signed, dataset_id, context)])[0]


def append_many(session: Session, items: Sequence[Item]) -> list[int]:
    """Append ``items`` in order inside the caller's transaction; returns their sequence numbers.

    One log lock, one bulk insert of records and one of tree nodes, whatever the number of
    items. The caller's commit makes them durable together (or its rollback drops them all).
    """
    first = locked_log_size(session)
    if not items:
        return []
    tree = _open_for_append(session, first)
    leaves: list[bytes] = []
    rows: list[tuple[Any, ...]] = []
    for seq, item in enumerate(items, start=first):
        now = dt.datetime.now(dt.UTC)
        signed_text = item.signed_text or canonical_text(item.signed.to_json())
        leaf = leaf_text(seq, now.isoformat(timespec="microseconds"), signed_text, item.context)
        leaves.append(leaf_hash(leaf))
        rows.append((seq, item.signed.action, item.signed.actor, item.dataset_id, leaf, now))
    tree.append_leaf_hashes(leaves)
    Driver.of(session).insert(_RECORDS, _RECORD_COLUMNS, rows)
    size = first + len(items)
    set_log_size(session, size)
    session.info[_PENDING] = (_pool(session), size, tree.frontier)
    return list(range(first, size))


def leaf_text(
    seq: int, at: str, signed_text: CanonicalText, context: dict[str, Any] | None
) -> bytes:
    """A record's leaf: ``canonical({"v", "seq", "at", "signed", "context"})``, written by hand.

    The leaf's five members are fixed and ASCII-named, so their canonical order is the one
    written here; ``at`` is an ISO timestamp (ASCII) and the signed action's text was written
    by ``canonical`` already. The general writer took a tenth of a batch's time in the turn to
    write (tests/unit/test_log_leaf.py holds the two to the same bytes).
    """
    context_text = canonical_text(context) if context else "{}"
    return (
        f'{{"at":{json.dumps(at, ensure_ascii=False)},"context":{context_text},"seq":{seq},'
        f'"signed":{signed_text},"v":{LEAF_VERSION}}}'
    ).encode()


def _pool(session: Session) -> Any:
    """What identifies the database a session writes to: its engine's connection pool."""
    return session.get_bind().engine.pool


def _open_for_append(session: Session, size: int) -> MerkleTree:
    """The tree at ``size`` (read under the log lock), reusing a frontier known for that size."""
    store = SqlNodeStore(session)
    pool = _pool(session)
    pending = session.info.get(_PENDING)
    if pending is not None and pending[0] is pool and pending[1] == size:
        return MerkleTree(store, size, frontier=pending[2])
    known = _committed.get(pool)
    if known is not None and known[0] == size:
        return MerkleTree(store, size, frontier=known[1])
    return MerkleTree(store, size)


@event.listens_for(OrmSession, "after_commit")
def _publish_frontier(session: OrmSession) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released (SQLAlchemy reports it as a commit): not durable yet
    pending = session.info.pop(_PENDING, None)
    if pending is not None:
        pool, size, frontier = pending
        _committed[pool] = (size, frontier)


@event.listens_for(OrmSession, "after_soft_rollback")
def _drop_frontier(session: OrmSession, previous_transaction: SessionTransaction) -> None:
    session.info.pop(_PENDING, None)


@event.listens_for(OrmSession, "after_transaction_end")
def _forget_frontier(session: OrmSession, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost transaction is over, committed or not
        session.info.pop(_PENDING, None)


def forget_frontiers() -> None:
    """Drop every remembered frontier (the next append reads it from the table)."""
    _committed.clear()


def size(session: Session) -> int:
    state = session.get(LogState, 1)
    return state.size if state else 0


def head(session: Session, at_size: int | None = None) -> TreeHead:
    """The tree head now, or at an earlier size."""
    n = size(session) if at_size is None else at_size
    return TreeHead(size=n, root=MerkleTree(SqlNodeStore(session), size(session)).root(n))


def inclusion_proof(session: Session, seq: int, tree_size: int) -> list[bytes]:
    return MerkleTree(SqlNodeStore(session), size(session)).inclusion_proof(seq, tree_size)


def consistency_proof(session: Session, old_size: int, new_size: int) -> list[bytes]:
    return MerkleTree(SqlNodeStore(session), size(session)).consistency_proof(old_size, new_size)


def decode(record: LogRecord) -> Entry:
    """Parse a stored record's leaf (raises ValueError/InvalidSignature if malformed)."""
    doc = json.loads(record.leaf)
    return Entry(
        seq=int(doc["seq"]),
        action=str(doc["signed"]["action"]),
        actor=str(doc["signed"]["actor"]),
        dataset_id=record.dataset_id,
        at=str(doc["at"]),
        signed=SignedAction.from_json(doc["signed"]),
        context=dict(doc.get("context") or {}),
        leaf=record.leaf,
    )


def records(
    session: Session,
    *,
    dataset_id: int | None = None,
    actor: str | None = None,
    actions: Sequence[str] | None = None,
    after: int = -1,
    limit: int | None = None,
) -> list[LogRecord]:
    """Stored records in sequence order, optionally filtered."""
    query = select(LogRecord).where(col(LogRecord.seq) > after).order_by(col(LogRecord.seq))
    if dataset_id is not None:
        query = query.where(LogRecord.dataset_id == dataset_id)
    if actor is not None:
        query = query.where(LogRecord.actor == actor)
    if actions is not None:
        query = query.where(col(LogRecord.action).in_(actions))
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))


def leaf_hash_of(record: LogRecord) -> bytes:
    return leaf_hash(record.leaf)

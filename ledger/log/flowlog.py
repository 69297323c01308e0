"""The persistent flow log: signed actions appended in the same transaction as their effects.

Each record's leaf is the canonical JSON of ``{"v", "seq", "at", "signed", "context"}``; the
Merkle tree (RFC 6962) over the leaves is kept incrementally in ``tree_nodes``, so appending is
O(log n) and proofs are served from stored nodes. Appends are serialised through the
``log_state`` row (``lock_log``), which also makes them safe across broker replicas sharing
PostgreSQL.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from ledger.log.merkle import leaf_hash
from ledger.log.tree import MerkleTree
from ledger.services.actions import SignedAction, canonical
from ledger.store.db import lock_log
from ledger.store.models import LogRecord, LogState
from ledger.store.nodes import SqlNodeStore

LEAF_VERSION = 1


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


def append(
    session: Session,
    signed: SignedAction,
    *,
    dataset_id: int | None = None,
    context: dict[str, Any] | None = None,
) -> int:
    """Append one signed action inside the caller's transaction; returns its sequence number."""
    lock_log(session)
    state = session.get(LogState, 1)
    if state is None:
        state = LogState(id=1, size=0)
        session.add(state)
    seq = state.size
    leaf = canonical(
        {
            "v": LEAF_VERSION,
            "seq": seq,
            "at": dt.datetime.now(dt.UTC).isoformat(timespec="microseconds"),
            "signed": signed.to_json(),
            "context": context or {},
        }
    )
    tree = MerkleTree(SqlNodeStore(session), seq)
    tree.append(leaf)
    session.add(
        LogRecord(
            seq=seq, action=signed.action, actor=signed.actor, dataset_id=dataset_id, leaf=leaf
        )
    )
    state.size = seq + 1
    session.add(state)
    session.flush()
    return seq


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
    after: int = -1,
    limit: int | None = None,
) -> list[LogRecord]:
    """Stored records in sequence order, optionally filtered."""
    query = select(LogRecord).where(col(LogRecord.seq) > after).order_by(col(LogRecord.seq))
    if dataset_id is not None:
        query = query.where(LogRecord.dataset_id == dataset_id)
    if actor is not None:
        query = query.where(LogRecord.actor == actor)
    if limit is not None:
        query = query.limit(limit)
    return list(session.exec(query))


def leaf_hash_of(record: LogRecord) -> bytes:
    return leaf_hash(record.leaf)

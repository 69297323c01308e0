"""What auditors read: the log's head, records and proofs, traces, and the verify report.

Regulators and the operator read all of it; members read the head and proofs, and trace what
they are a party to (``ledger.services.policy``). Answers are the protocol's wire models.
"""

from __future__ import annotations

import json

from sqlmodel import col, select

from ledger.errors import Forbidden, InvalidInput, NotFound
from ledger.merkle.proofs import leaf_hash
from ledger.protocol.checkpoint import Checkpoint, origin_for, sign_checkpoint
from ledger.protocol.codes import ErrorCode
from ledger.protocol.wire import (
    CheckpointPublic,
    DatasetTracePublic,
    LogHead,
    LogRecordPublic,
    LogRecordsPublic,
    MemberTracePublic,
    ProblemPublic,
    Proof,
    VerifyPublic,
    hx,
)
from ledger.services import flowlog, trace, verify
from ledger.services.context import Ledger, dataset
from ledger.services.policy import Standing
from ledger.store.models import LogRecord


def log_head(ledger: Ledger) -> LogHead:
    """The log's current tree head and the latest head anchored on chain."""
    with ledger.db.session() as session:
        head = flowlog.head(session)
    anchored = ledger.chain.latest_head()
    return LogHead(
        size=head.size,
        root=hx(head.root),
        anchored_size=anchored.tree_size,
        anchored_root=hx(anchored.root_hash),
        anchored_at=anchored.anchored_at,
    )


def checkpoint(ledger: Ledger) -> CheckpointPublic:
    """The log's current head as a note signed by the BROKER key (cached per size)."""
    with ledger.db.session() as session:
        head = flowlog.head(session)
    note = _signed_note(ledger, head.size, head.root)
    return CheckpointPublic(note=note, size=head.size, root=hx(head.root))


def _signed_note(ledger: Ledger, size: int, root: bytes) -> str:
    d = ledger.chain.deployment
    key = (d.chain_id, d.flow_log, size, root)
    cached = _NOTES.get(key)
    if cached is None:
        cp = Checkpoint(origin=origin_for(d.chain_id, d.flow_log), size=size, root=root)
        cached = sign_checkpoint(ledger.chain.account, cp)
        if len(_NOTES) > 1024:
            _NOTES.clear()
        _NOTES[key] = cached
    return cached


#: Signed notes by (chain, log, size, root): signing is cheap, but every SDK action asks.
_NOTES: dict[tuple[int, str, int, bytes], str] = {}


def log_record(ledger: Ledger, viewer: Standing, seq: int) -> LogRecordPublic:
    """One raw record, for its own actor (the SDK confirms each action) or an overseer."""
    with ledger.db.session() as session:
        rows = flowlog.records(session, after=seq - 1, limit=1)
    if not rows or rows[0].seq != seq:
        raise NotFound(f"no log record {seq}", code=ErrorCode.NOT_FOUND)
    r = rows[0]
    if not viewer.oversees and r.actor != viewer.address:
        raise Forbidden("a member reads only its own log records", code=ErrorCode.NOT_VISIBLE)
    return _record_public(r)


def find_record(
    ledger: Ledger, viewer: Standing, *, action: str, signature: bytes
) -> LogRecordPublic:
    """The caller's own record of the action it signed with ``signature`` (its latest 100).

    The SDK confirms every action it signs by this: the record must hold exactly that action
    and be included in a signed head. Looked up among the caller's recent records of that
    action, so a member sees only its own.
    """
    needle = signature.hex().encode()
    with ledger.db.session() as session:
        rows = session.exec(
            select(LogRecord)
            .where(LogRecord.actor == viewer.address, LogRecord.action == action)
            .order_by(col(LogRecord.seq).desc())
            .limit(100)
        )
        found = next((r for r in rows if needle in r.leaf), None)
    if found is None:
        raise NotFound("no log record of that signed action", code=ErrorCode.NOT_FOUND)
    return _record_public(found)


def member_evidence(
    ledger: Ledger, address: str, *, after: int = -1, limit: int = 1000
) -> LogRecordsPublic:
    """The signed records that set a member's encryption key: its Onboard (ADMIN-signed) and
    its RotateKey records (member-signed), in log order.

    A member reading the chain through the broker's relay checks the relay's answer against
    these: the broker can serve a stale record, but cannot sign one with a key of its own.
    """
    with ledger.db.session() as session:
        rows = session.exec(
            select(LogRecord)
            .where(col(LogRecord.action).in_(("onboard", "rotate_key")))
            .where(col(LogRecord.seq) > after)
            .order_by(col(LogRecord.seq))
        )
        data = []
        for r in rows:
            if _names_member(r.leaf, address):
                data.append(_record_public(r))
                if len(data) > limit:
                    break
    return _records_page(data, limit)


def dataset_evidence(
    ledger: Ledger, dataset_id: int, *, after: int = -1, limit: int = 1000
) -> LogRecordsPublic:
    """The owner-signed Register record of a dataset (the content hash the owner attested)."""
    with ledger.db.session() as session:
        rows = session.exec(
            select(LogRecord)
            .where(LogRecord.dataset_id == dataset_id, LogRecord.action == "register")
            .where(col(LogRecord.seq) > after)
            .order_by(col(LogRecord.seq))
            .limit(limit + 1)
        )
        data = [_record_public(r) for r in rows]
    return _records_page(data, limit)


def _records_page(data: list[LogRecordPublic], limit: int) -> LogRecordsPublic:
    """A page of records read with ``limit + 1``: the extra one only says that more follow."""
    more = len(data) > limit
    data = data[:limit]
    return LogRecordsPublic(
        data=data, count=len(data), next_after=data[-1].seq if more and data else None
    )


def _names_member(leaf: bytes, address: str) -> bool:
    try:
        member = str(json.loads(leaf)["signed"]["message"]["member"])
    except (ValueError, KeyError, TypeError):
        return False
    return member.lower() == address.lower()


def _record_public(r: LogRecord) -> LogRecordPublic:
    return LogRecordPublic(
        seq=r.seq,
        action=r.action,
        actor=r.actor,
        dataset_id=r.dataset_id,
        leaf=r.leaf.decode(),
        leaf_hash=hx(leaf_hash(r.leaf)),
    )


def log_records(ledger: Ledger, *, after: int = -1, limit: int = 100) -> LogRecordsPublic:
    """Raw signed records (leaves) after sequence number ``after``, in order."""
    with ledger.db.session() as session:
        rows = flowlog.records(session, after=after, limit=limit + 1)
    data = [
        LogRecordPublic(
            seq=r.seq,
            action=r.action,
            actor=r.actor,
            dataset_id=r.dataset_id,
            leaf=r.leaf.decode(),
            leaf_hash=hx(leaf_hash(r.leaf)),
        )
        for r in rows
    ]
    return _records_page(data, limit)


def _size(ledger: Ledger, requested: int | None) -> int:
    with ledger.db.session() as session:
        current = flowlog.size(session)
    size = current if requested is None else requested
    if not 0 < size <= current:
        raise InvalidInput(f"tree size must be 1..{current}", code=ErrorCode.BAD_TREE_SIZE)
    return size


def inclusion(ledger: Ledger, *, seq: int, tree_size: int | None = None) -> Proof:
    """RFC 6962 inclusion proof of record ``seq`` in the tree of ``tree_size`` (default: now)."""
    size = _size(ledger, tree_size)
    if seq >= size:
        raise InvalidInput("seq must be below tree_size", code=ErrorCode.BAD_SEQ)
    with ledger.db.session() as session:
        path = flowlog.inclusion_proof(session, seq, size)
        root = flowlog.head(session, size).root
    return Proof(
        kind="inclusion", tree_size=size, seq=seq, root=hx(root), path=[hx(p) for p in path]
    )


def consistency(ledger: Ledger, *, old_size: int, tree_size: int | None = None) -> Proof:
    """RFC 6962 consistency proof between ``old_size`` and ``tree_size`` (default: now)."""
    size = _size(ledger, tree_size)
    if old_size > size:
        raise InvalidInput("old_size must not exceed tree_size", code=ErrorCode.BAD_TREE_SIZE)
    with ledger.db.session() as session:
        path = flowlog.consistency_proof(session, old_size, size)
        root = flowlog.head(session, size).root
    return Proof(
        kind="consistency",
        tree_size=size,
        old_size=old_size,
        root=hx(root),
        path=[hx(p) for p in path],
    )


def dataset_trace(
    ledger: Ledger, viewer: Standing, dataset_id: int, *, after: int = -1, limit: int = 500
) -> DatasetTracePublic:
    """Lineage and a page of the flows of a dataset, for overseers and its owner."""
    if not viewer.oversees:
        with ledger.db.session() as session:
            owner = dataset(session, dataset_id).owner
        viewer.require_party(owner, why="only overseers and the owner trace a dataset")
    return trace.trace_dataset(ledger, dataset_id, after=after, limit=limit)


def member_trace(
    ledger: Ledger, viewer: Standing, address: str, *, after: int = -1, limit: int = 500
) -> MemberTracePublic:
    """A member's datasets, grants, credits and a page of its actions, for overseers and itself."""
    viewer.require_party(address, why="only overseers trace another member")
    return trace.trace_member(ledger, address, after=after, limit=limit)


def verify_report(ledger: Ledger) -> VerifyPublic:
    """Re-verify the log, the anchors, the index and the ciphertext; every problem found."""
    report = verify.verify(ledger)
    return VerifyPublic(
        ok=report.ok,
        problems=[ProblemPublic(where=p.where, what=p.what) for p in report.problems],
        checked=dict(report.checked),
    )

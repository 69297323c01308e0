"""Trace, verify and the flow log: what regulators use (and members, for their own)."""

from __future__ import annotations

from dataclasses import asdict

from eth_utils.address import is_address, to_checksum_address
from fastapi import APIRouter, Query

from api.deps import DB_INT_MAX, AnchorerDep, CallerDep, LedgerDep, PathId
from api.errors import error_responses
from api.schemas import (
    AnchorPublic,
    DatasetTracePublic,
    FlowPublic,
    LogHead,
    LogRecordPublic,
    LogRecordsPublic,
    MemberTracePublic,
    ProblemPublic,
    Proof,
    VerifyPublic,
    hx,
)
from ledger.errors import Forbidden, InvalidInput
from ledger.merkle.proofs import leaf_hash
from ledger.protocol.codes import ErrorCode
from ledger.services import flowlog
from ledger.services.context import dataset as load_dataset
from ledger.services.trace import trace_dataset, trace_member
from ledger.services.verify import verify

router = APIRouter(tags=["audit"])


@router.get(
    "/trace/datasets/{dataset_id}",
    response_model=DatasetTracePublic,
    responses=error_responses(401, 403, 404, 422),
)
def trace_one_dataset(
    dataset_id: PathId, caller: CallerDep, ledger: LedgerDep
) -> DatasetTracePublic:
    """Lineage and every flow of a dataset (regulators, the operator, and its owner)."""
    caller.require_member()
    if not caller.oversees:
        with ledger.db.session() as session:
            if load_dataset(session, dataset_id).owner != caller.address:
                raise Forbidden(
                    "only overseers and the owner trace a dataset", code=ErrorCode.NOT_VISIBLE
                )
    t = trace_dataset(ledger, dataset_id)
    data = asdict(t)
    data["flows"] = [FlowPublic(**f) for f in data["flows"]]
    return DatasetTracePublic(**data)


@router.get(
    "/trace/members/{address}",
    response_model=MemberTracePublic,
    responses=error_responses(401, 403, 404, 422),
)
def trace_one_member(address: str, caller: CallerDep, ledger: LedgerDep) -> MemberTracePublic:
    """A member's datasets, grants, credits and signed actions (overseers, or itself)."""
    caller.require_member()
    if not is_address(address):
        raise InvalidInput(f"{address!r} is not an address", code=ErrorCode.BAD_ADDRESS)
    target = str(to_checksum_address(address))
    if not caller.oversees and target != caller.address:
        raise Forbidden("only overseers trace another member", code=ErrorCode.NOT_VISIBLE)
    t = trace_member(ledger, target)
    data = asdict(t)
    data["flows"] = [FlowPublic(**f) for f in data["flows"]]
    return MemberTracePublic(**data)


@router.get("/verify", response_model=VerifyPublic, responses=error_responses(401, 403))
def run_verify(caller: CallerDep, ledger: LedgerDep) -> VerifyPublic:
    """Re-verify the whole log, the anchors, the index and the ciphertext (overseers)."""
    caller.require("regulator", "operator")
    report = verify(ledger)
    return VerifyPublic(
        ok=report.ok,
        problems=[ProblemPublic(where=p.where, what=p.what) for p in report.problems],
        checked=dict(report.checked),
    )


@router.get("/log/head", response_model=LogHead, responses=error_responses(401, 403))
def log_head(caller: CallerDep, ledger: LedgerDep) -> LogHead:
    """The log's current tree head and the latest head anchored on chain."""
    caller.require_member()
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


@router.get(
    "/log/records", response_model=LogRecordsPublic, responses=error_responses(401, 403, 422)
)
def log_records(
    caller: CallerDep,
    ledger: LedgerDep,
    after: int = Query(default=-1, ge=-1, le=DB_INT_MAX),
    limit: int = Query(default=100, ge=1, le=1000),
) -> LogRecordsPublic:
    """Raw signed records (leaves), for independent verification (overseers)."""
    caller.require("regulator", "operator")
    with ledger.db.session() as session:
        rows = flowlog.records(session, after=after, limit=limit)
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
    return LogRecordsPublic(data=data, count=len(data))


def _size(ledger: LedgerDep, requested: int | None) -> int:
    with ledger.db.session() as session:
        current = flowlog.size(session)
    size = current if requested is None else requested
    if not 0 < size <= current:
        raise InvalidInput(f"tree size must be 1..{current}", code=ErrorCode.BAD_TREE_SIZE)
    return size


@router.get("/log/proofs/inclusion", response_model=Proof, responses=error_responses(401, 403, 422))
def inclusion(
    caller: CallerDep,
    ledger: LedgerDep,
    seq: int = Query(ge=0, le=DB_INT_MAX),
    tree_size: int | None = Query(default=None, ge=1, le=DB_INT_MAX),
) -> Proof:
    """RFC 6962 inclusion proof of record ``seq`` in the tree of ``tree_size``."""
    caller.require_member()
    size = _size(ledger, tree_size)
    if seq >= size:
        raise InvalidInput("seq must be below tree_size", code=ErrorCode.BAD_SEQ)
    with ledger.db.session() as session:
        path = flowlog.inclusion_proof(session, seq, size)
        root = flowlog.head(session, size).root
    return Proof(
        kind="inclusion", tree_size=size, seq=seq, root=hx(root), path=[hx(p) for p in path]
    )


@router.get(
    "/log/proofs/consistency", response_model=Proof, responses=error_responses(401, 403, 422)
)
def consistency(
    caller: CallerDep,
    ledger: LedgerDep,
    old_size: int = Query(ge=1, le=DB_INT_MAX),
    tree_size: int | None = Query(default=None, ge=1, le=DB_INT_MAX),
) -> Proof:
    """RFC 6962 consistency proof between two tree sizes."""
    caller.require_member()
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


@router.post("/log/anchor", response_model=AnchorPublic, responses=error_responses(401, 403, 503))
def anchor_now(caller: CallerDep, anchorer: AnchorerDep) -> AnchorPublic:
    """Anchor the current head and mint due credits now (operator); normally periodic."""
    caller.require("operator")
    result = anchorer.run_once()
    return AnchorPublic(
        tree_size=result.tree_size,
        anchored=result.anchored,
        tx_hash=result.tx_hash,
        credited=result.credited,
        minted=result.minted,
    )

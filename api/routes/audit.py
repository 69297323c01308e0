"""Trace, verify and the flow log: what regulators use (and members, for their own)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from api.deps import DB_INT_MAX, After, AnchorerDep, CallerDep, LedgerDep, PathId, member_address
from api.errors import error_responses
from ledger.protocol.wire import (
    AnchorPublic,
    CheckpointPublic,
    DatasetTracePublic,
    LogHead,
    LogRecordPublic,
    LogRecordsPublic,
    MemberTracePublic,
    Proof,
    VerifyPublic,
)
from ledger.services import audit

router = APIRouter(tags=["audit"])


@router.get(
    "/trace/datasets/{dataset_id}",
    response_model=DatasetTracePublic,
    responses=error_responses(401, 403, 404, 422),
)
def trace_one_dataset(
    dataset_id: PathId,
    caller: CallerDep,
    ledger: LedgerDep,
    after: After = -1,
    limit: int = Query(default=500, ge=1, le=1000),
) -> DatasetTracePublic:
    """Lineage and the flows of a dataset, a page at a time (overseers and its owner)."""
    caller.require_member()
    return audit.dataset_trace(ledger, caller, dataset_id, after=after, limit=limit)


@router.get(
    "/trace/members/{address}",
    response_model=MemberTracePublic,
    responses=error_responses(401, 403, 404, 422),
)
def trace_one_member(
    address: str,
    caller: CallerDep,
    ledger: LedgerDep,
    after: After = -1,
    limit: int = Query(default=500, ge=1, le=1000),
) -> MemberTracePublic:
    """A member's datasets, grants, credits and signed actions, a page of actions at a time."""
    caller.require_member()
    member = member_address(address)
    return audit.member_trace(ledger, caller, member, after=after, limit=limit)


@router.get("/verify", response_model=VerifyPublic, responses=error_responses(401, 403))
def run_verify(caller: CallerDep, ledger: LedgerDep) -> VerifyPublic:
    """The operator's self-check of the broker (overseers): log, anchors, index, ciphertext.

    Computed by the broker itself, so it is no evidence against the broker: members and
    regulators verify on their own machine (``drl verify``) from raw records and the chain.
    """
    caller.require("regulator", "operator")
    return audit.verify_report(ledger)


@router.get("/log/checkpoint", response_model=CheckpointPublic, responses=error_responses(401, 403))
def log_checkpoint(caller: CallerDep, ledger: LedgerDep) -> CheckpointPublic:
    """The log's current head, signed by the BROKER key (members keep it and check growth)."""
    caller.require_member()
    return audit.checkpoint(ledger)


@router.get("/log/head", response_model=LogHead, responses=error_responses(401, 403))
def log_head(caller: CallerDep, ledger: LedgerDep) -> LogHead:
    """The log's current tree head and the latest head anchored on chain."""
    caller.require_member()
    return audit.log_head(ledger)


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
    return audit.log_records(ledger, after=after, limit=limit)


@router.get(
    "/log/evidence/members/{address}",
    response_model=LogRecordsPublic,
    responses=error_responses(401, 403, 422),
)
def member_evidence(
    address: str,
    caller: CallerDep,
    ledger: LedgerDep,
    after: After = -1,
    limit: int = Query(default=1000, ge=1, le=1000),
) -> LogRecordsPublic:
    """The signed records that set a member's encryption key (Onboard, RotateKey)."""
    caller.require_member()
    member = member_address(address)
    return audit.member_evidence(ledger, member, after=after, limit=limit)


@router.get(
    "/log/evidence/datasets/{dataset_id}",
    response_model=LogRecordsPublic,
    responses=error_responses(401, 403, 422),
)
def dataset_evidence(
    dataset_id: PathId,
    caller: CallerDep,
    ledger: LedgerDep,
    after: After = -1,
    limit: int = Query(default=1000, ge=1, le=1000),
) -> LogRecordsPublic:
    """The owner-signed Register record of a dataset (its attested content hash)."""
    caller.require_member()
    return audit.dataset_evidence(ledger, dataset_id, after=after, limit=limit)


@router.get(
    "/log/records/mine",
    response_model=LogRecordPublic,
    responses=error_responses(401, 403, 404, 422),
)
def find_my_record(
    caller: CallerDep,
    ledger: LedgerDep,
    action: str = Query(min_length=1, max_length=32),
    signature: str = Query(pattern=r"^0x[0-9a-fA-F]{130}$"),
) -> LogRecordPublic:
    """The caller's own record of an action it signed (found by its signature)."""
    caller.require_member()
    return audit.find_record(ledger, caller, action=action, signature=bytes.fromhex(signature[2:]))


@router.get(
    "/log/records/{seq}",
    response_model=LogRecordPublic,
    responses=error_responses(401, 403, 404, 422),
)
def log_record(seq: PathId, caller: CallerDep, ledger: LedgerDep) -> LogRecordPublic:
    """One raw record: its actor's own (to confirm an action), or any for overseers."""
    caller.require_member()
    return audit.log_record(ledger, caller, seq)


@router.get("/log/proofs/inclusion", response_model=Proof, responses=error_responses(401, 403, 422))
def inclusion(
    caller: CallerDep,
    ledger: LedgerDep,
    seq: int = Query(ge=0, le=DB_INT_MAX),
    tree_size: int | None = Query(default=None, ge=1, le=DB_INT_MAX),
) -> Proof:
    """RFC 6962 inclusion proof of record ``seq`` in the tree of ``tree_size``."""
    caller.require_member()
    return audit.inclusion(ledger, seq=seq, tree_size=tree_size)


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
    return audit.consistency(ledger, old_size=old_size, tree_size=tree_size)


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

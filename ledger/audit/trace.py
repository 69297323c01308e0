"""Dataset and member traces, answered from the records a member verified itself.

Everything here comes from the audit state (``ledger.audit.state``) that ``verify`` filled: the
signed actions, the chain transaction each was matched to, and the head they are in. Nothing is
asked of the broker. Only records up to the kept checkpoint are known (``verified_size``): run
``verify`` first to trace what happened since.

The time of a record (``at``) is the broker's, pinned by its signed heads but signed by no
member; the chain transaction (``tx_hash``, ``block_number``) is the chain's. A dataset id the
signed action does not name comes from the matched chain event (``dataset_from == "chain"``)
or, failing that, from the broker's unsigned context (``"context"``).
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from typing import Any

from ledger.audit.state import AuditState, ChainStatus, LeafRow
from ledger.errors import NotFound
from ledger.protocol.checkpoint import parse_checkpoint
from ledger.protocol.codes import ErrorCode


@dataclass(frozen=True)
class TraceEntry:
    """One verified record: what was signed, by whom, when, and where it shows on chain."""

    seq: int
    at: str
    action: str
    actor: str
    dataset_id: int | None
    dataset_from: str | None
    detail: dict[str, Any]
    chain: ChainStatus
    tx_hash: str | None
    block_number: int | None


@dataclass(frozen=True)
class DatasetTrace:
    """A dataset's certificate as registered, its lineage, and every flow it took part in."""

    dataset_id: int
    registration: TraceEntry | None
    owner: str | None
    content_hash: str | None
    classification: int | None
    parents: tuple[int, ...]
    previous_version: int | None
    derived: tuple[int, ...]
    flows: tuple[TraceEntry, ...]
    verified_size: int
    checkpoint: str | None


@dataclass(frozen=True)
class MemberTrace:
    """Every verified record a member signed or is named in, and what it registered."""

    address: str
    entries: tuple[TraceEntry, ...]
    registered: tuple[int, ...]
    verified_size: int
    checkpoint: str | None


def dataset_trace(state: AuditState, dataset_id: int) -> DatasetTrace:
    """Trace ``dataset_id`` (NotFound ``dataset_not_found`` if no verified record names it)."""
    rows = state.leaf_rows(dataset_id=dataset_id)
    if not rows:
        raise NotFound(
            f"no verified record names dataset {dataset_id} (run verify first?)",
            code=ErrorCode.DATASET_NOT_FOUND,
        )
    flows = tuple(_entry(row) for row in rows)
    registration = next((e for e in flows if e.action == "register"), None)
    owner = registration.actor if registration else None
    for entry in flows:
        if entry.action == "reassign" and entry.chain == "matched":
            owner = str(entry.detail.get("to"))
    message = registration.detail if registration else {}
    parents = message.get("parents")
    previous = message.get("previousVersion")
    classification = message.get("classification")
    content_hash = message.get("contentHash")
    size, note = _kept(state)
    return DatasetTrace(
        dataset_id=dataset_id,
        registration=registration,
        owner=owner,
        content_hash=content_hash if isinstance(content_hash, str) else None,
        classification=classification if isinstance(classification, int) else None,
        parents=tuple(int(p) for p in parents) if isinstance(parents, list) else (),
        previous_version=previous if isinstance(previous, int) and previous else None,
        derived=_derived(state, dataset_id),
        flows=flows,
        verified_size=size,
        checkpoint=note,
    )


def member_trace(state: AuditState, address: str) -> MemberTrace:
    """Trace the member at ``address`` (an empty trace if no verified record names it)."""
    rows = state.leaf_rows(party=address)
    entries = tuple(_entry(row) for row in rows)
    registered = tuple(
        e.dataset_id
        for e in entries
        if e.action == "register"
        and e.actor.lower() == address.lower()
        and e.dataset_id is not None
    )
    size, note = _kept(state)
    return MemberTrace(
        address=address,
        entries=entries,
        registered=registered,
        verified_size=size,
        checkpoint=note,
    )


def _message(leaf: bytes) -> dict[str, Any]:
    """The signed message of a kept record.

    Kept records were parsed strictly (``parse_leaf``) and their signatures checked when they
    were verified; reading them back needs only the JSON (a sixteenth of the strict parse's
    cost, which a trace over thousands of records would otherwise pay again each time).
    """
    message = json.loads(leaf)["signed"]["message"]
    assert isinstance(message, dict)
    return message


def _entry(row: LeafRow) -> TraceEntry:
    return TraceEntry(
        seq=row.seq,
        at=row.at,
        action=row.action,
        actor=row.actor,
        dataset_id=row.dataset_id,
        dataset_from=row.dataset_from,
        detail=_message(row.leaf),
        chain=row.chain,
        tx_hash=row.tx_hash,
        block_number=row.block_number,
    )


def _derived(state: AuditState, dataset_id: int) -> tuple[int, ...]:
    """Datasets registered with ``dataset_id`` as a parent or as their previous version."""
    return _children(state).get(dataset_id, ())


#: Each open state's derivatives by dataset, as of the checkpoint they were computed at.
_CHILDREN: weakref.WeakKeyDictionary[AuditState, tuple[str | None, dict[int, tuple[int, ...]]]]
_CHILDREN = weakref.WeakKeyDictionary()


def _children(state: AuditState) -> dict[int, tuple[int, ...]]:
    """Every dataset's derivatives, read from all registrations once per verified checkpoint.

    Kept records change only when a run verifies more and keeps a new checkpoint, so the map
    is rebuilt then: a trace costs no pass over every registration in the log.
    """
    note = state.checkpoint_note
    known = _CHILDREN.get(state)
    if known is not None and known[0] == note:
        return known[1]
    children: dict[int, list[int]] = {}
    for row in state.leaf_rows(actions=["register"]):
        if row.dataset_id is None:
            continue
        message = _message(row.leaf)
        parents = message.get("parents")
        sources = list(parents) if isinstance(parents, list) else []
        previous = message.get("previousVersion")
        if isinstance(previous, int) and previous:
            sources.append(previous)
        for source in dict.fromkeys(sources):
            if isinstance(source, int) and source != row.dataset_id:
                children.setdefault(source, []).append(row.dataset_id)
    built = {k: tuple(v) for k, v in children.items()}
    _CHILDREN[state] = (note, built)
    return built


def _kept(state: AuditState) -> tuple[int, str | None]:
    note = state.checkpoint_note
    if note is None:
        return 0, None
    return parse_checkpoint(note).size, note

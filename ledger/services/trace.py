"""Trace: where a dataset came from, what derives from it, and every flow it took part in.

Traces are answered a page at a time (``after``/``limit``) from the flow log's index, whatever
the log's size: a page is one index range scan (``log_records`` by dataset or by actor, in
sequence order; migration 0008) and the lineage one read of the datasets' lineage columns.
Records are read as stored (Core rows, their leaf's JSON): the broker verified each signature
when it appended it, and a trace re-checks nothing, so it pays for no ORM objects or address
checksums per record.
"""

from __future__ import annotations

import json
from typing import Any, Final

from sqlalchemy import Table, bindparam
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from ledger.errors import NotFound
from ledger.protocol.codes import ErrorCode
from ledger.protocol.wire import DatasetTracePublic, FlowPublic, MemberTracePublic
from ledger.services.context import Ledger, dataset
from ledger.store.models import Dataset, Delivery, Grant, LogRecord, Member

#: Flows a trace answers at once unless asked for fewer; the rest follow page by page.
TRACE_PAGE: Final = 500

_RECORDS: Table = LogRecord.__table__  # type: ignore[attr-defined]  # SQLModel sets it
_DATASETS: Table = Dataset.__table__  # type: ignore[attr-defined]
_LINEAGE = core_select(_DATASETS.c.id, _DATASETS.c.parents, _DATASETS.c.previous_version)
# Statements built once: SQLAlchemy reuses their cache keys and compiled forms.
_PAGE = (
    core_select(
        _RECORDS.c.seq,
        _RECORDS.c.action,
        _RECORDS.c.actor,
        _RECORDS.c.dataset_id,
        _RECORDS.c.leaf,
    )
    .where(_RECORDS.c.seq > bindparam("after"))
    .order_by(_RECORDS.c.seq)
    .limit(bindparam("n"))
)
_BY_DATASET = _PAGE.where(_RECORDS.c.dataset_id == bindparam("key"))
_BY_ACTOR = _PAGE.where(_RECORDS.c.actor == bindparam("key"))

#: Signed members a flow shows (the rest, such as nonces and deadlines, stay in the log).
_SHOWN: Final = (
    "datasetId",
    "grantee",
    "purpose",
    "purposeCategory",
    "legalBasis",
    "retentionDays",
    "processingLocation",
    "days",
    "maxUses",
    "score",
    "reason",
    "member",
    "kind",
    "name",
    "expiresAt",
    "contentHash",
)
#: Members of the broker's unsigned context a flow shows.
_CONTEXT: Final = ("tx", "generation", "uses", "request_id", "receipt_id", "refused")


def _flows(
    session: Session,
    *,
    after: int,
    limit: int,
    dataset_id: int | None = None,
    actor: str | None = None,
) -> tuple[list[FlowPublic], int | None]:
    """A page of flows after sequence number ``after``, and where the next page starts."""
    if (dataset_id is None) == (actor is None):
        raise ValueError("a page of flows is of one dataset or of one actor")
    query, key = (_BY_DATASET, dataset_id) if dataset_id is not None else (_BY_ACTOR, actor)
    rows = session.connection().execute(query, {"key": key, "after": after, "n": limit + 1}).all()
    out = []
    for seq, action, record_actor, record_dataset, leaf in rows[:limit]:
        doc = json.loads(leaf)
        msg = doc["signed"]["message"]
        context = doc["context"]
        detail: dict[str, Any] = {k: msg[k] for k in _SHOWN if k in msg}
        for k in _CONTEXT:
            if k in context:
                detail[k] = context[k]
        out.append(
            FlowPublic(
                seq=seq,
                at=doc["at"],
                action=action,
                actor=record_actor,
                dataset_id=record_dataset,
                detail=detail,
            )
        )
    return out, (out[-1].seq if len(rows) > limit and out else None)


def trace_dataset(
    ledger: Ledger, dataset_id: int, *, after: int = -1, limit: int = TRACE_PAGE
) -> DatasetTracePublic:
    """Lineage (ancestors, descendants, versions) and a page of the dataset's flows."""
    with ledger.db.session() as session:
        root = dataset(session, dataset_id)
        parents: dict[int, list[int]] = {}
        previous: dict[int, int | None] = {}
        for row_id, row_parents, row_previous in session.connection().execute(_LINEAGE):
            parents[row_id] = (
                [] if row_parents == "[]" else [int(p) for p in json.loads(row_parents)]
            )
            previous[row_id] = row_previous
        ancestors: list[int] = []
        todo = list(parents[dataset_id])
        while todo:
            pid = todo.pop(0)
            if pid in ancestors or pid not in parents:
                continue
            ancestors.append(pid)
            todo.extend(parents[pid])
        children: dict[int, list[int]] = {}
        for row_id, row_parents in parents.items():
            for p in row_parents:
                children.setdefault(p, []).append(row_id)
        descendants: list[int] = []
        todo = list(children.get(dataset_id, []))
        while todo:
            cid = todo.pop(0)
            if cid not in descendants:
                descendants.append(cid)
                todo.extend(children.get(cid, []))
        versions = [dataset_id]
        current = previous[dataset_id]
        while current and current in previous and current not in versions:
            versions.insert(0, current)
            current = previous[current]
        later = {p: row_id for row_id, p in previous.items() if p}
        while versions[-1] in later and later[versions[-1]] not in versions:
            versions.append(later[versions[-1]])
        flows, next_after = _flows(session, dataset_id=dataset_id, after=after, limit=limit)
        return DatasetTracePublic(
            dataset_id=dataset_id,
            title=root.title,
            owner=root.owner,
            classification=root.classification,
            ancestors=sorted(ancestors),
            descendants=sorted(descendants),
            versions=versions,
            flows=flows,
            next_after=next_after,
        )


def trace_member(
    ledger: Ledger, address: str, *, after: int = -1, limit: int = TRACE_PAGE
) -> MemberTracePublic:
    """What a member owns and received, its credits, and a page of the actions it signed."""
    with ledger.db.session() as session:
        member = session.get(Member, address)
        if member is None:
            raise NotFound(f"{address} is not a member", code=ErrorCode.MEMBER_NOT_FOUND)
        owned = [d.id for d in session.exec(select(Dataset).where(Dataset.owner == address))]
        received = sorted(
            {g.dataset_id for g in session.exec(select(Grant).where(Grant.grantee == address))}
        )
        credited = session.exec(select(Delivery).where(col(Delivery.dataset_id).in_(owned or [-1])))
        credits = sum(d.credit_amount for d in credited)
        flows, next_after = _flows(session, actor=address, after=after, limit=limit)
        return MemberTracePublic(
            address=address,
            name=member.name,
            kind=member.kind,
            status=member.status,
            owned=owned,
            received=received,
            credits=credits,
            flows=flows,
            next_after=next_after,
        )

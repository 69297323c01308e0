"""Trace: where a dataset came from, what derives from it, and every flow it took part in."""

from __future__ import annotations

import json
from typing import Any, Final

from sqlmodel import Session, col, select

from ledger.errors import NotFound
from ledger.protocol.codes import ErrorCode
from ledger.protocol.wire import DatasetTracePublic, FlowPublic, MemberTracePublic
from ledger.services import flowlog
from ledger.services.context import Ledger, dataset
from ledger.store.models import Dataset, Delivery, Grant, Member

#: Flows a trace answers at once unless asked for fewer; the rest follow page by page.
TRACE_PAGE: Final = 500


def _flows(
    session: Session, *, after: int, limit: int, **filters: Any
) -> tuple[list[FlowPublic], int | None]:
    """A page of flows after sequence number ``after``, and where the next page starts."""
    out = []
    records = flowlog.records(session, after=after, limit=limit + 1, **filters)
    more = len(records) > limit
    for record in records[:limit]:
        entry = flowlog.decode(record)
        msg = entry.signed.message
        detail: dict[str, Any] = {
            k: msg[k]
            for k in (
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
            if k in msg
        }
        for k in ("tx", "generation", "uses", "request_id", "receipt_id"):
            if k in entry.context:
                detail[k] = entry.context[k]
        out.append(
            FlowPublic(
                seq=entry.seq,
                at=entry.at,
                action=entry.action,
                actor=entry.actor,
                dataset_id=record.dataset_id,
                detail=detail,
            )
        )
    return out, (out[-1].seq if more and out else None)


def _parents(row: Dataset) -> list[int]:
    return [int(p) for p in json.loads(row.parents)]


def trace_dataset(
    ledger: Ledger, dataset_id: int, *, after: int = -1, limit: int = TRACE_PAGE
) -> DatasetTracePublic:
    """Lineage (ancestors, descendants, versions) and a page of the dataset's flows."""
    with ledger.db.session() as session:
        root = dataset(session, dataset_id)
        rows = {d.id: d for d in session.exec(select(Dataset))}
        ancestors: list[int] = []
        todo = _parents(root)
        while todo:
            pid = todo.pop(0)
            if pid in ancestors or pid not in rows:
                continue
            ancestors.append(pid)
            todo.extend(_parents(rows[pid]))
        children: dict[int, list[int]] = {}
        for d in rows.values():
            for p in _parents(d):
                children.setdefault(p, []).append(d.id)
        descendants: list[int] = []
        todo = list(children.get(dataset_id, []))
        while todo:
            cid = todo.pop(0)
            if cid not in descendants:
                descendants.append(cid)
                todo.extend(children.get(cid, []))
        versions = [dataset_id]
        current = root
        while current.previous_version and current.previous_version in rows:
            versions.insert(0, current.previous_version)
            current = rows[current.previous_version]
        later = {d.previous_version: d.id for d in rows.values() if d.previous_version}
        while versions[-1] in later:
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

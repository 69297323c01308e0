"""Flow and lineage graphs as cytoscape.js elements, built from records (never laid out here).

**Flow.** Organisations are nodes (classed by kind). An edge is one dataset flowing from its
owner (the grantor, once granted) to one consumer, gathered from that pair's records: the
consumer's requests (purpose, form), the owner's grants (expiry, uses allowed) and revocations,
the consumer's fetches and delivery receipts (counted), and fetches the broker refused (counted
apart, and classed ``attempted``). Its status is the latest word: ``requested``, ``active``,
``exhausted`` (no uses left), ``expired`` or ``revoked``.

**Lineage.** Datasets are nodes (classed by classification); an edge runs from each parent to
its derivative (``derived``) and from each version to the next (``version``). A dataset with a
SENSITIVE ancestor is classed ``from-sensitive``, so sensitive data reaching a derivative shows.

The browser lays both out with a cytoscape layout; this module only says what is connected.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ledger.console.records import (
    GROUPED,
    Entry,
    Organisation,
    Records,
    Registration,
    Scope,
    Tally,
)

Element = dict[str, Any]


@dataclass
class _Flow:
    dataset_id: int
    source: str
    target: str
    purpose: str = ""
    category: str = ""
    status: str = "requested"
    requested_at: str | None = None
    granted_at: str | None = None
    revoked_at: str | None = None
    expires_at: int | None = None
    max_uses: int | None = None
    grant_seq: int = -1
    grants: int = 0
    fetches: int = 0
    refused: int = 0
    receipts: int = 0
    uses: int = 0
    first_at: str = ""
    last_at: str = ""
    records: list[int] = field(default_factory=list)
    verified: bool = True

    def saw(self, at: str) -> None:
        self.first_at = min(self.first_at or at, at)
        self.last_at = max(self.last_at, at)


def flow_graph(
    records: Records,
    scope: Scope,
    *,
    now: dt.datetime,
    focus: Iterable[str] = (),
) -> dict[str, Any]:
    """The flow graph of ``scope``: ``{"nodes": [...], "edges": [...]}`` (cytoscape elements)."""
    orgs = records.organisations()
    regs = records.registrations()
    entries, tallies = records.flow_material(scope)
    flows: dict[tuple[int, str], _Flow] = {}

    def flow(dataset_id: int, consumer: str, source: str | None = None) -> _Flow:
        key = (dataset_id, consumer)
        if key not in flows:
            reg = regs.get(dataset_id)
            owner = source or (reg.owner if reg else "unknown")
            flows[key] = _Flow(dataset_id, owner, consumer, verified=records.verified)
        return flows[key]

    for e in entries:
        _apply(e, flow)
    for t in tallies:
        _count(t, flow(t.dataset_id, t.actor), records)
    unix = now.timestamp()
    for f in flows.values():
        f.status = _status(f, unix)
        f.records.sort()
    nodes: dict[str, Element] = {}
    for address in {*focus, *(a for f in flows.values() for a in (f.source, f.target))}:
        nodes[address] = _org_node(address, orgs, focused=address in focus)
    edges = [_edge(f, regs) for f in sorted(flows.values(), key=lambda f: (f.dataset_id, f.target))]
    return {"nodes": sorted(nodes.values(), key=lambda n: n["data"]["id"]), "edges": edges}


def _apply(e: Entry, flow: Any) -> None:
    if e.dataset_id is None:
        return
    if e.action in ("grant", "approval", "revoke") and (grantee := e.names("grantee")):
        f = flow(e.dataset_id, grantee, e.actor if e.action == "grant" else None)
        if e.action == "grant":
            f.source = e.actor
            f.granted_at, f.revoked_at = e.at, None
            f.expires_at = _int(e.message.get("expiresAt"))
            f.max_uses = _int(e.message.get("maxUses"))
            f.grant_seq = e.seq
            f.grants += 1
        elif e.action == "revoke":
            f.revoked_at = e.at
    else:
        return  # a denial names a request id, not its requester: it shows on the timeline
    f.saw(e.at)
    f.records.append(e.seq)
    f.verified = f.verified and e.verified


def _count(t: Tally, f: _Flow, records: Records) -> None:
    if t.action == GROUPED:  # the consumer's requests: the latest names the purpose
        if t.latest is not None:
            f.purpose = str(t.latest.message.get("purpose", ""))
            f.category = str(t.latest.message.get("purposeCategory", ""))
            f.verified = f.verified and t.latest.verified
        f.requested_at = min(f.requested_at or t.first_at, t.first_at)
        f.records.extend(t.seqs)
    elif t.action == "fetch":
        f.fetches += t.count
        # Uses count against the latest grant only (a new grant starts again from zero).
        f.uses = (
            t.count
            if f.grants <= 1
            else records.count_after(
                dataset_id=t.dataset_id, actor=t.actor, action="fetch", after=f.grant_seq
            )
        )
    elif t.action == "refused":
        f.refused += t.count
    else:
        f.receipts += t.count
    f.saw(t.first_at)
    f.saw(t.last_at)


def _status(f: _Flow, now: float) -> str:
    if f.granted_at is None:  # no grant in scope: fetches mean one was given before it
        return "requested" if f.fetches == 0 else "active"
    if f.revoked_at is not None:
        return "revoked"
    if f.expires_at is not None and f.expires_at <= now:
        return "expired"
    if f.max_uses is not None and f.uses >= f.max_uses:
        return "exhausted"
    return "active"


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _org_node(address: str, orgs: Mapping[str, Organisation], *, focused: bool) -> Element:
    org = orgs.get(address)
    kind = org.kind if org else "unknown"
    label = org.name if org and org.name else address[:10] + "…"
    classes = [kind] + (["focus"] if focused else []) + (["suspended"] if org and
               org.status == "suspended" else [])  # fmt: skip
    return {
        "data": {"id": address, "label": label, "kind": kind, "address": address},
        "classes": " ".join(classes),
    }


def _edge(f: _Flow, regs: Mapping[int, Registration]) -> Element:
    reg = regs.get(f.dataset_id)
    title = reg.title if reg else f"dataset {f.dataset_id}"
    expires = (
        dt.datetime.fromtimestamp(f.expires_at, dt.UTC).isoformat(timespec="seconds")
        if f.expires_at
        else None
    )
    uses = f"{f.uses}/{f.max_uses}" if f.max_uses is not None else str(f.fetches)
    return {
        "data": {
            "id": f"flow-{f.dataset_id}-{f.target}",
            "source": f.source,
            "target": f.target,
            "dataset": f.dataset_id,
            "title": title,
            "label": f"#{f.dataset_id} {f.purpose[:32]}".strip(),
            "purpose": f.purpose,
            "category": f.category,
            "status": f.status,
            "uses": f.uses,
            "max_uses": f.max_uses,
            "uses_text": uses,
            "fetches": f.fetches,
            "refused": f.refused,
            "receipts": f.receipts,
            "requested_at": f.requested_at,
            "granted_at": f.granted_at,
            "revoked_at": f.revoked_at,
            "expires_at": expires,
            "first_at": f.first_at,
            "last_at": f.last_at,
            "records": f.records,
            "verified": f.verified,
        },
        "classes": f.status + (" attempted" if f.refused else ""),
    }


def lineage_graph(
    regs: Mapping[int, Registration],
    orgs: Mapping[str, Organisation],
    *,
    dataset: int | None = None,
) -> dict[str, Any]:
    """Datasets linked by ``parents`` and ``previousVersion``; with ``dataset``, only the
    datasets connected to it (ancestors, derivatives and versions, transitively)."""
    links: list[tuple[int, int, str]] = []
    for reg in regs.values():
        links.extend((p, reg.dataset_id, "derived") for p in reg.parents)
        if reg.previous is not None:
            links.append((reg.previous, reg.dataset_id, "version"))
    shown = set(regs) if dataset is None else _component(dataset, links)
    if dataset is not None and dataset not in regs:
        shown = set()
    tainted = _from_sensitive(regs, links)
    nodes = []
    for dataset_id in sorted(shown & set(regs)):
        reg = regs[dataset_id]
        owner = orgs.get(reg.owner)
        classes = [reg.classification]
        if dataset_id in tainted:
            classes.append("from-sensitive")
        if dataset_id == dataset:
            classes.append("focus")
        nodes.append(
            {
                "data": {
                    "id": f"d{dataset_id}",
                    "dataset": dataset_id,
                    "label": f"#{dataset_id} {reg.title}",
                    "title": reg.title,
                    "classification": reg.classification,
                    "owner": reg.owner,
                    "owner_name": owner.name if owner else reg.owner,
                    "registered_at": reg.at,
                    "from_sensitive": dataset_id in tainted,
                },
                "classes": " ".join(classes),
            }
        )
    edges = [
        {
            "data": {"id": f"{kind}-{a}-{b}", "source": f"d{a}", "target": f"d{b}", "kind": kind},
            "classes": kind,
        }
        for a, b, kind in sorted(links)
        if a in shown and b in shown and a in regs and b in regs
    ]
    return {"nodes": nodes, "edges": edges}


def _component(start: int, links: list[tuple[int, int, str]]) -> set[int]:
    near: dict[int, set[int]] = {}
    for a, b, _ in links:
        near.setdefault(a, set()).add(b)
        near.setdefault(b, set()).add(a)
    seen, todo = {start}, [start]
    while todo:
        for other in near.get(todo.pop(), ()):
            if other not in seen:
                seen.add(other)
                todo.append(other)
    return seen


def _from_sensitive(
    regs: Mapping[int, Registration], links: list[tuple[int, int, str]]
) -> set[int]:
    """Datasets with a SENSITIVE dataset upstream of them (not counting themselves)."""
    children: dict[int, list[int]] = {}
    for a, b, _ in links:
        children.setdefault(a, []).append(b)
    tainted: set[int] = set()
    todo = [d for d, r in regs.items() if r.classification == "sensitive"]
    while todo:
        for child in children.get(todo.pop(), ()):
            if child not in tainted:
                tainted.add(child)
                todo.append(child)
    return tainted

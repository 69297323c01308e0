"""What the broker shows a department or an enterprise: its own trace and its datasets' flows.

Members that are not overseers may not read the whole log, so they cannot verify it as
regulators do; the console then draws from the broker's trace routes (the member's own trace,
and each dataset it owns) and its catalog, and marks every record unverified. The member's own
signed actions are confirmed one by one against a signed head when opened
(``ledger.console.session``), as the SDK confirmed them when it signed them.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any, Final

from ledger.console.records import (
    COUNTED,
    DRAWN,
    GROUPED,
    Entry,
    Organisation,
    Registration,
    Scope,
    Tally,
)
from ledger.errors import LedgerError

if TYPE_CHECKING:
    from ledger.client.sdk import BrokerClient
    from ledger.protocol.wire import FlowPublic

#: Seconds the broker's answers are reused before they are asked again.
FRESH: Final = 10.0


class BrokerView:
    """The broker's trace of one member and of the datasets it owns (see the module docstring)."""

    verified = False

    def __init__(self, client: BrokerClient, address: str) -> None:
        self.client = client
        self.address = address.lower()
        self._lock = threading.Lock()
        self._at = 0.0
        self._entries: list[Entry] = []
        self._orgs: dict[str, Organisation] = {}
        self._regs: dict[int, Registration] = {}

    def refresh(self, *, force: bool = False) -> None:
        """Ask the broker again (at most every :data:`FRESH` seconds unless ``force``)."""
        with self._lock:
            if not force and time.monotonic() - self._at < FRESH:
                return
            c = self.client
            orgs = {
                m.address.lower(): Organisation(m.address.lower(), m.name, m.kind, m.status)
                for m in c.members()
            }
            regs: dict[int, Registration] = {}
            for d in c.datasets():
                themes = d.metadata.get("themes")
                regs[d.id] = Registration(
                    dataset_id=d.id,
                    owner=d.owner.lower(),
                    classification=d.classification,
                    parents=tuple(d.parents),
                    previous=d.previous_version or None,
                    title=d.title,
                    at=d.created_at.isoformat(timespec="microseconds"),
                    seq=d.log_seq,
                    themes=tuple(str(t) for t in themes) if isinstance(themes, list) else (),
                    registrant=d.owner.lower(),
                )
            flows: dict[int, FlowPublic] = {f.seq: f for f in c.trace_member(self.address).flows}
            for dataset_id, reg in regs.items():
                if reg.owner == self.address:
                    try:
                        flows.update({f.seq: f for f in c.trace_dataset(dataset_id).flows})
                    except LedgerError:
                        continue  # retired, or no longer this member's to trace
            self._entries = [_entry(flows[seq]) for seq in sorted(flows)]
            self._orgs, self._regs, self._at = orgs, regs, time.monotonic()

    def size(self) -> int:
        self.refresh()
        return len(self._entries)

    def organisations(self) -> dict[str, Organisation]:
        self.refresh()
        return dict(self._orgs)

    def registrations(self) -> dict[int, Registration]:
        self.refresh()
        return dict(self._regs)

    def counts(self) -> dict[str, int]:
        self.refresh()
        found: dict[str, int] = {}
        for e in self._entries:
            found[e.action] = found.get(e.action, 0) + 1
        return found

    def _scoped(self, scope: Scope) -> list[Entry]:
        self.refresh()
        return [e for e in self._entries if scope.admits(e)]

    def flow_material(self, scope: Scope) -> tuple[list[Entry], list[Tally]]:
        entries = self._scoped(scope)
        groups: dict[tuple[int, str, str], list[Entry]] = {}
        for e in entries:
            if e.action in (*COUNTED, GROUPED) and e.dataset_id is not None:
                groups.setdefault((e.dataset_id, e.actor, _tallied(e)), []).append(e)
        tallies = []
        for (d, a, act), g in groups.items():
            grouped = act == GROUPED  # requests also carry their records and the latest one
            seqs = tuple(e.seq for e in g) if grouped else ()
            latest = g[-1] if grouped else None
            tallies.append(Tally(d, a, act, len(g), g[0].at, g[-1].at, g[-1].seq, seqs, latest))
        return [e for e in entries if e.action in DRAWN], tallies

    def count_after(self, *, dataset_id: int, actor: str, action: str, after: int) -> int:
        self.refresh()
        return sum(
            1
            for e in self._entries
            if e.dataset_id == dataset_id
            and e.actor == actor.lower()
            and _tallied(e) == action
            and e.seq > after
        )

    def page(self, scope: Scope, *, after: int, limit: int) -> tuple[list[Entry], int | None]:
        rows = [e for e in self._scoped(scope) if e.seq > after]
        page = rows[:limit]
        return page, (page[-1].seq if len(rows) > limit and page else None)

    def entry(self, seq: int) -> Entry | None:
        self.refresh()
        return next((e for e in self._entries if e.seq == seq), None)


def _tallied(e: Entry) -> str:
    """A fetch the broker refused (context ``refused``) is tallied apart, never as a use."""
    return "refused" if e.action == "fetch" and "refused" in e.context else e.action


def _entry(flow: FlowPublic) -> Entry:
    detail = dict(flow.detail)
    context: dict[str, Any] = {
        k: detail.pop(k)
        for k in ("tx", "generation", "uses", "request_id", "receipt_id", "refused")
        if k in detail
    }
    return Entry(
        seq=flow.seq,
        at=flow.at,
        action=flow.action,
        actor=flow.actor.lower(),
        dataset_id=flow.dataset_id,
        message=detail,
        context=context,
        chain="unverified",
        tx_hash=str(context.get("tx")) if context.get("tx") else None,
        verified=False,
    )

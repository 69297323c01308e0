"""Verify a broker's log on the member's machine, from raw material, incrementally.

:func:`verify` trusts nothing the broker says. In order:

1. **The signed head.** The latest checkpoint parses strictly, names the pinned log (origin),
   its signature recovers to the key it names, and the chain says that key holds BROKER.
2. **Consistency with what was kept.** The head may not shrink; at the same size it must be the
   same root; a larger head must come with a valid RFC 6962 consistency proof from the kept one.
   Otherwise ``log_inconsistent``, and both signed notes are kept as evidence.
3. **The new records.** Only the records after the kept size are read, in pages: each is a
   canonical leaf written at its own position, its signed action verifies under the pinned
   deployment's domains, and no signed action appears twice (same signer, domain and nonce).
   Their leaf hashes extend the kept tree; the root at the head's size must be the signed root.
   If it is not, consistency proofs against the signed head find the first record that differs.
4. **Anchors.** Every head anchored on chain (FlowLog ``TreeHeadAnchored``) since the last run,
   and every one left pending, must equal the recomputed root at its size; one beyond the
   head's size stays pending until a later run.
5. **Chain events against signed records, both ways** (``ledger.audit.links.LINKS``): every new
   event must be explained by a signed record, and every record that causes an event must have
   it. What stays unmatched is kept and tried again on the next run.

Every problem is reported (the run does not stop at the first). The state moves on to the new
checkpoint only if the log side (1-4) checked clean; otherwise it stays where it was, except
for the evidence. Findings never raise: only an unreachable broker or node does, and then
nothing is written.

Timing. The broker relays a signature on chain and then logs it, so every record inside a head
has its event in a block mined before the head was served: the verifier reads the chain's
latest block before fetching the head (events up to it must have their records) and again
after the records (records must have their events up to it). Events mined in between may
belong to records after the head: they are pending, not problems. A delivery receipt is
credited (or withheld) at anchoring, later than it is logged: pending until then.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from ledger.audit.credits import CreditQualities
from ledger.audit.links import ANCHOR_EVENT, BY_ACTION, BY_EVENT, Link
from ledger.audit.records import LeafRecord, parse_leaf
from ledger.audit.sources import PAGE_SIZE, ChainEvent, ChainSource, LogSource
from ledger.audit.state import AuditState, Evidence, LeafRow, StoredAnchor, StoredEvent, plain_json
from ledger.errors import (
    ConfigurationError,
    InvalidInput,
    InvalidSignature,
    LedgerError,
    LogError,
)
from ledger.merkle.proofs import leaf_hash, verify_consistency
from ledger.merkle.tree import MerkleTree
from ledger.protocol.actions import ACTIONS, Domains
from ledger.protocol.checkpoint import SignedCheckpoint, parse_checkpoint
from ledger.protocol.codes import ErrorCode
from ledger.protocol.documents import metadata_hash
from ledger.protocol.labels import check_labels
from ledger.types import CLASSIFICATIONS

Progress = Callable[[str, int, int], None]
"""Called as ``progress(stage, done, total)``; stages ``records``, ``events``, ``matching``."""

#: Records read back from the state per query while matching.
_CHUNK: Final = 1000


@dataclass(frozen=True)
class Problem:
    """One finding: a stable code, where (a record, a transaction, the checkpoint), and what."""

    code: str
    where: str
    what: str


@dataclass
class AuditReport:
    """Everything one run checked and found."""

    origin: str
    #: The checkpoint the broker served this time (``None`` if it served none).
    served_note: str | None = None
    #: The checkpoint kept after this run: the served one if the state moved on, else the old.
    kept_note: str | None = None
    #: Tree size of the kept checkpoint.
    tree_size: int = 0
    #: Tree size kept before this run (0 on a first run).
    previous_size: int = 0
    #: Whether the run started from a kept checkpoint (and read only the new records).
    incremental: bool = False
    #: Whether the state moved on to the served checkpoint.
    advanced: bool = False
    from_block: int = 0
    to_block: int = -1
    problems: list[Problem] = field(default_factory=list)
    #: Not problems (yet): anchors beyond the head, receipts not credited, events newer than it.
    pending: list[Problem] = field(default_factory=list)
    #: ``records``, ``signatures``, ``anchors``, ``events``, ``matched`` (this run).
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            ("records", "signatures", "anchors", "events", "matched"), 0
        )
    )
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def codes(self) -> list[str]:
        """The problems' codes, in order found."""
        return [p.code for p in self.problems]


def verify(
    log: LogSource,
    chain: ChainSource,
    state: AuditState,
    *,
    domains: Domains,
    origin: str,
    progress: Progress | None = None,
) -> AuditReport:
    """Audit the log served by ``log`` against ``chain``, from (and into) ``state``.

    ``domains`` and ``origin`` come from the deployment the member pinned, never from the
    broker. Raises only when a source cannot be reached (the state is then left unchanged) or
    ``state`` audits another log (ConfigurationError).
    """
    return _Run(log, chain, state, domains, origin, progress).run()


class _KeepPrevious(Exception):
    """Raised inside the run's transaction to drop everything it wrote."""


class _Run:
    def __init__(
        self,
        log: LogSource,
        chain: ChainSource,
        state: AuditState,
        domains: Domains,
        origin: str,
        progress: Progress | None,
    ) -> None:
        self.log, self.chain, self.state = log, chain, state
        self.domains, self.origin = domains, origin
        self.progress = progress or (lambda stage, done, total: None)
        self.report = AuditReport(origin=origin)
        self.log_ok = True
        self._shift: tuple[int, int, int] | None = None  # (first position, last, offset)
        self._nonces: dict[tuple[str, str, str], int] = {}
        self.qualities = CreditQualities(state)

    # -- findings -------------------------------------------------------------------------

    def fail(self, code: str, where: str, what: str, *, log_side: bool = True) -> None:
        self.report.problems.append(Problem(code, where, what))
        if log_side:
            self.log_ok = False

    def note(self, code: str, where: str, what: str) -> None:
        self.report.pending.append(Problem(code, where, what))

    # -- the run --------------------------------------------------------------------------

    def run(self) -> AuditReport:
        report, state = self.report, self.state
        if state.origin not in (None, self.origin):
            raise ConfigurationError(
                f"this audit state is of log {state.origin!r}, not of {self.origin!r}"
            )
        kept = self._kept()
        report.incremental = kept is not None
        report.previous_size = kept.size if kept else 0
        report.kept_note = kept.note if kept else None
        report.tree_size = report.previous_size
        block_before = self.chain.latest_block()
        served = self.log.checkpoint()
        report.served_note = served
        try:
            head = parse_checkpoint(served, origin=self.origin)
        except InvalidSignature as exc:
            self.fail(exc.code, "checkpoint", exc.message)
            return report
        if not self.chain.is_broker(head.signer):
            self.fail(
                ErrorCode.CHECKPOINT_NOT_BROKER,
                "checkpoint",
                f"signed by {head.signer}, which holds no BROKER role on FlowLog",
            )
            return report
        if kept is None or self._consistent(kept, head):
            try:
                with state.transaction():
                    tree = self._records(kept.size if kept else 0, head)
                    to_block = self.chain.latest_block()
                    self._chain(tree, head, block_before, to_block)
                    if not self.log_ok:
                        raise _KeepPrevious
                    state.advance(
                        origin=self.origin,
                        checkpoint_note=head.note,
                        last_block=max(to_block, state.last_block),
                    )
            except _KeepPrevious:
                pass
            else:
                report.advanced = True
                report.kept_note, report.tree_size = head.note, head.size
        if report.evidence:
            with state.transaction():
                for item in report.evidence:
                    state.add_evidence(
                        code=item.code,
                        detail=item.detail,
                        kept_note=item.kept_note,
                        served_note=item.served_note,
                    )
        return report

    def _kept(self) -> SignedCheckpoint | None:
        note = self.state.checkpoint_note
        if note is None:
            return None
        try:
            kept = parse_checkpoint(note, origin=self.origin)
        except InvalidSignature as exc:
            raise ConfigurationError(f"the kept checkpoint no longer parses: {exc}") from None
        if self.state.size != kept.size:
            raise ConfigurationError(
                f"the audit state is damaged: {self.state.size} records kept for a head of "
                f"{kept.size}"
            )
        return kept

    # -- 2. consistency with the kept head ------------------------------------------------

    def _consistent(self, kept: SignedCheckpoint, head: SignedCheckpoint) -> bool:
        if head.size < kept.size:
            problem = f"the log shrank from {kept.size} to {head.size} records"
        elif head.size == kept.size:
            if head.root == kept.root:
                return True
            problem = f"two signed heads of size {head.size} with different roots (a fork)"
        elif kept.size == 0:
            return True
        else:
            proof = self.log.consistency(kept.size, head.size)
            if verify_consistency(kept.size, head.size, kept.root, head.root, list(proof)):
                return True
            problem = (
                f"the head of size {head.size} does not extend the kept head of size "
                f"{kept.size} (no valid consistency proof): history was rewritten or forked"
            )
        self.fail(ErrorCode.LOG_INCONSISTENT, "checkpoint", problem)
        self.report.evidence.append(
            Evidence(
                found_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                code=ErrorCode.LOG_INCONSISTENT,
                detail=problem,
                kept_note=kept.note,
                served_note=head.note,
            )
        )
        return False

    # -- 3. the new records ---------------------------------------------------------------

    def _records(self, start: int, head: SignedCheckpoint) -> MerkleTree:
        tree = MerkleTree(self.state.nodes, start)
        pos, total = start, head.size - start
        while pos < head.size:
            want = min(PAGE_SIZE, head.size - pos)
            page = list(self.log.records(pos - 1, want))[:want]
            if not page:
                self._flush_shift()
                self.fail(
                    ErrorCode.RECORD_MISSING,
                    f"log record {pos}",
                    f"the log served {pos - start} of the {total} new records its signed head"
                    " holds",
                )
                break
            hashes: list[bytes] = []
            rows: list[LeafRow] = []
            nonces: list[tuple[str, str, str, int]] = []
            for _claimed, leaf in page:
                hashes.append(self._record(pos, leaf, rows, nonces))
                pos += 1
            tree.append_leaf_hashes(hashes)
            self.state.add_leaves(rows)
            self.state.add_nonces(nonces)
            self.progress("records", pos - start, total)
        self._flush_shift()
        if pos == head.size and tree.root(head.size) != head.root:
            if head.size == start:  # only on a first run, of an empty log
                self.fail(
                    ErrorCode.RECORD_MISMATCH,
                    "checkpoint",
                    f"the signed root of {head.size} records is not the empty tree's",
                )
            else:
                self._locate_mismatch(tree, start, head)
        return tree

    def _record(
        self,
        pos: int,
        leaf: Any,
        rows: list[LeafRow],
        nonces: list[tuple[str, str, str, int]],
    ) -> bytes:
        """Check one record; returns its leaf hash (whatever it holds: the tree is of bytes)."""
        where = f"log record {pos}"
        self.report.counts["records"] += 1
        raw = bytes(leaf) if isinstance(leaf, bytes | bytearray) else b""
        digest = leaf_hash(raw)
        try:
            record = parse_leaf(raw)
        except (LogError, InvalidSignature) as exc:
            self._order(pos, pos)
            self.fail(exc.code, where, exc.message)
            return digest
        # The position (what the tree is over) and the seq the record holds must agree; the
        # label the page gives it (``claimed``) is the broker's and adds nothing.
        self._order(pos, record.seq)
        try:
            record.signed.verify(self.domains)
        except InvalidSignature as exc:
            self.fail(exc.code, where, f"{record.action}: {exc.message}")
            return digest
        self.report.counts["signatures"] += 1
        if record.action == "register":
            self._labels(where, record)
        nonce_key = (
            ACTIONS[record.action].domain,
            record.actor.lower(),
            str(record.signed.message.get("nonce")),
        )
        earlier = self._nonces.get(nonce_key)
        if earlier is None:
            earlier = self.state.nonce_seq(*nonce_key)
        if earlier is not None:
            self.fail(
                ErrorCode.NONCE_REPLAYED,
                where,
                f"the same {record.action} by {record.actor} as log record {earlier} (a replay)",
            )
            return digest
        self._nonces[nonce_key] = pos
        nonces.append((*nonce_key, pos))
        dataset_id, dataset_from = _dataset_of(record)
        rows.append(
            LeafRow(
                seq=pos,
                leaf_hash=digest,
                action=record.action,
                actor=record.actor,
                dataset_id=dataset_id,
                dataset_from=dataset_from,
                at=record.at,
                leaf=raw,
                chain="unmatched" if record.action in BY_ACTION and not refused(record) else "none",
                parties=_parties(record),
            )
        )
        return digest

    def _labels(self, where: str, record: LeafRecord) -> None:
        """A registration's labels keep the labelling rules (ledger.protocol.labels).

        Checked on the metadata document the record carries when it hashes to the signed
        ``metadataHash`` (the owner's word); a document that does not is reported as such.
        """
        metadata = record.context.get("metadata")
        signed_hash = str(record.signed.message.get("metadataHash", ""))
        if not isinstance(metadata, dict):
            return
        try:
            matches = "0x" + metadata_hash(metadata).hex() == signed_hash.lower()
        except InvalidInput:
            matches = False
        if not matches:
            self.fail(
                ErrorCode.METADATA_MISMATCH,
                where,
                "the registration's metadata document does not hash to the signed metadataHash",
            )
            return
        classification = int(record.signed.message.get("classification", -1))
        if not 0 <= classification < len(CLASSIFICATIONS):
            return  # the chain refuses it; matching the event reports it
        try:
            check_labels(metadata, CLASSIFICATIONS[classification])
        except InvalidInput as exc:
            self.fail(exc.code, where, f"register: {exc.message}")

    def _order(self, pos: int, seq: int) -> None:
        """Group records written for another position into runs of one shift each."""
        offset = seq - pos
        if self._shift is not None and (offset != self._shift[2] or pos != self._shift[1] + 1):
            self._flush_shift()
        if offset == 0:
            return
        if self._shift is None:
            self._shift = (pos, pos, offset)
        else:
            self._shift = (self._shift[0], pos, offset)

    def _flush_shift(self) -> None:
        if self._shift is None:
            return
        first, last, offset = self._shift
        self._shift = None
        if first == last:
            what = f"position {first} holds record {first + offset}"
        else:
            what = f"positions {first}-{last} hold records {first + offset}-{last + offset}"
        self.fail(
            ErrorCode.RECORD_OUT_OF_ORDER,
            f"log record {first}",
            what + " (records dropped, inserted or reordered)",
        )

    def _locate_mismatch(self, tree: MerkleTree, start: int, head: SignedCheckpoint) -> None:
        """Find the first record that differs from the signed head, with consistency proofs."""
        good, bad = start, head.size  # our first `good` records are the signed tree's
        while bad - good > 1:
            mid = (good + bad) // 2
            try:
                proof = list(self.log.consistency(mid, head.size))
            except LedgerError:
                proof = []
            if verify_consistency(mid, head.size, tree.root(mid), head.root, proof):
                good = mid
            else:
                bad = mid
        self.fail(
            ErrorCode.RECORD_MISMATCH,
            f"log record {good}",
            f"the records served do not make the signed head of size {head.size}: record "
            f"{good} is the first that differs (rewritten, dropped or reordered)",
        )

    # -- 4 and 5. the chain ---------------------------------------------------------------

    def _chain(
        self, tree: MerkleTree, head: SignedCheckpoint, block_before: int, to_block: int
    ) -> None:
        report, state = self.report, self.state
        first = state.last_block + 1
        report.from_block, report.to_block = first, to_block
        if to_block < state.last_block:
            self.note(
                ErrorCode.CHAIN_ERROR,
                "chain",
                f"the node is at block {to_block}, behind block {state.last_block} scanned before",
            )
        scanned = first <= to_block

        def events(contract: str, name: str) -> list[StoredEvent]:
            if not scanned:
                return []
            found = self.chain.events(contract, name, from_block=first, to_block=to_block)
            return [_stored(contract, ev) for ev in found]

        self._anchors(tree, head, events(*ANCHOR_EVENT))
        fresh: list[StoredEvent] = []
        kinds = list(BY_EVENT)
        for done, (contract, name) in enumerate(kinds, start=1):
            fresh.extend(events(contract, name))
            self.progress("events", done, len(kinds))
        report.counts["events"] = len(fresh)
        self._match([*state.open_events(), *fresh], block_before)

    def _anchors(self, tree: MerkleTree, head: SignedCheckpoint, fresh: list[StoredEvent]) -> None:
        pending = [
            StoredEvent(
                "FlowLog",
                ANCHOR_EVENT[1],
                {"treeSize": a.tree_size, "rootHash": a.root},
                a.block_number,
                a.tx_hash,
                0,
            )
            for a in self.state.anchors("pending")
        ]
        kept: list[StoredAnchor] = []
        for ev in [*pending, *fresh]:
            size, root = ev.args.get("treeSize"), _as_bytes(ev.args.get("rootHash"))
            where = f"anchor of size {size} (tx {ev.tx_hash})"
            if not isinstance(size, int) or isinstance(size, bool) or root is None:
                self.fail(ErrorCode.ANCHOR_MISMATCH, where, "an anchor event that cannot be read")
                continue
            if size > head.size or size > tree.size:
                self.note(
                    ErrorCode.ANCHOR_MISMATCH,
                    where,
                    f"anchored beyond the signed head ({head.size} records): checked next run",
                )
                kept.append(StoredAnchor(size, root, ev.block_number, ev.tx_hash, "pending"))
                continue
            self.report.counts["anchors"] += 1
            if tree.root(size) == root:
                kept.append(StoredAnchor(size, root, ev.block_number, ev.tx_hash, "ok"))
            else:
                self.fail(
                    ErrorCode.ANCHOR_MISMATCH,
                    where,
                    f"the chain holds root 0x{root.hex()} for the first {size} records; the "
                    f"log's records make 0x{tree.root(size).hex()}",
                )
                kept.append(StoredAnchor(size, root, ev.block_number, ev.tx_hash, "mismatch"))
        self.state.replace_anchors(kept)

    def _match(self, events: list[StoredEvent], block_before: int) -> None:
        """Pair records and events (oldest first), keep what stays open, report it."""
        pool: dict[tuple[str, str, str], deque[StoredEvent]] = {}
        for ev in events:
            link = BY_EVENT[ev.contract, ev.name]
            pool.setdefault((ev.contract, ev.name, link.event_key(ev.args)), deque()).append(ev)
        after, done = -1, 0
        while chunk := self.state.open_records(after=after, limit=_CHUNK):
            for seq, leaf in chunk:
                self._match_record(seq, parse_leaf(leaf), pool)
            after = chunk[-1][0]
            done += len(chunk)
            self.progress("matching", done, done)
        left = sorted(
            (ev for queue in pool.values() for ev in queue),
            key=lambda ev: (ev.block_number, ev.log_index),
        )
        for ev in left:
            where = f"tx {ev.tx_hash}"
            what = (
                f"{ev.contract}.{ev.name} at block {ev.block_number} "
                f"({_show_args(ev.args)}) has no signed record in the log"
            )
            if ev.block_number > block_before:
                self.note(
                    ErrorCode.CHAIN_EVENT_UNMATCHED, where, what + " yet (newer than the head)"
                )
            else:
                self.fail(ErrorCode.CHAIN_EVENT_UNMATCHED, where, what, log_side=False)
        self.state.replace_open_events(left)

    def _match_record(
        self, seq: int, record: LeafRecord, pool: dict[tuple[str, str, str], deque[StoredEvent]]
    ) -> None:
        links: tuple[Link, ...] = BY_ACTION[record.action]
        for link in links:
            queue = pool.get(
                (link.contract, link.event, link.record_key(record.signed, self.domains))
            )
            if queue:
                ev = queue.popleft()
                if ev.name == "CreditsMinted":
                    _check_quality(self, seq, record, ev)
                dataset = ev.args.get("datasetId")
                self.state.set_chain(
                    seq,
                    "matched",
                    tx_hash=ev.tx_hash,
                    block_number=ev.block_number,
                    dataset_id=dataset if isinstance(dataset, int) else None,
                )
                self.report.counts["matched"] += 1
                return
        names = " or ".join(f"{link.contract}.{link.event}" for link in links)
        where = f"log record {seq}"
        if any(link.due for link in links):
            self.state.set_chain(seq, "unmatched")
            self.fail(
                ErrorCode.RECORD_UNCONFIRMED,
                where,
                f"{record.action} signed by {record.actor} has no matching {names} on chain",
                log_side=False,
            )
        else:
            self.state.set_chain(seq, "pending")
            self.note(
                ErrorCode.RECORD_UNCONFIRMED,
                where,
                f"{record.action} signed by {record.actor}: no {names} on chain yet",
            )


def _check_quality(run: _Run, seq: int, record: LeafRecord, ev: StoredEvent) -> None:
    dataset = record.signed.message.get("datasetId")
    if not isinstance(dataset, int) or isinstance(dataset, bool):
        return  # the link's key already pairs the event to this dataset
    expected = run.qualities.expected(dataset, record.leaf)
    shown = ev.args.get("quality")
    if shown != expected:
        run.fail(
            ErrorCode.CREDIT_QUALITY_MISMATCH,
            f"tx {ev.tx_hash}",
            f"credits for the receipt in log record {seq} (dataset {dataset}) were minted with "
            f"quality {shown!r}; the signed records before it give {expected}",
            log_side=False,
        )


def _stored(contract: str, ev: ChainEvent) -> StoredEvent:
    log_index = getattr(ev, "log_index", 0)
    return StoredEvent(
        contract=contract,
        name=ev.name,
        args=plain_json(dict(ev.args)),
        block_number=int(ev.block_number),
        tx_hash=str(ev.tx_hash),
        log_index=int(log_index) if isinstance(log_index, int) else 0,
    )


def _as_bytes(value: Any) -> bytes | None:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            return None
    return None


def refused(record: LeafRecord) -> bool:
    """Whether the broker logged this action as refused (context ``refused``: an error code).

    A refused fetch never reached the chain, so no event is expected for it. The mark is the
    broker's unsigned word, and a lie with it shows: a fetch marked refused whose use is on
    chain leaves that ``AccessUsed`` unexplained (``chain_event_unmatched``), and an unmarked
    one that never reached the chain is ``record_unconfirmed``.
    """
    return isinstance(record.context.get("refused"), str)


def _dataset_of(record: LeafRecord) -> tuple[int | None, str | None]:
    """The dataset a record concerns: signed if the action names it, else the broker's word."""
    signed = record.signed.message.get("datasetId")
    if isinstance(signed, int) and not isinstance(signed, bool):
        return signed, "signed"
    context = record.context.get("dataset_id")
    if isinstance(context, int) and not isinstance(context, bool):
        return context, "context"
    return None, None


def _parties(record: LeafRecord) -> tuple[str, ...]:
    """The actor and every address the signed message names."""
    found = [record.actor]
    for member in ACTIONS[record.action].fields:
        value = record.signed.message.get(member["name"])
        if member["type"] == "address" and isinstance(value, str):
            found.append(value)
    return tuple(dict.fromkeys(a.lower() for a in found))


def _show_args(args: dict[str, Any], keys: Iterable[str] | None = None) -> str:
    shown = []
    for key, value in args.items():
        if keys is not None and key not in keys:
            continue
        text = str(value)
        shown.append(f"{key}={text if len(text) <= 20 else text[:12] + '…'}")
    return ", ".join(shown)

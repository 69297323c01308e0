"""Verify: the log, the anchors, the index and the ciphertext against each other and the chain.

A regulator's audit. It recomputes every tree head from the stored records and compares each
head anchored on chain, checks every stored tree node against the records (or its children),
re-verifies every record's signature and refuses a signed action logged twice, checks that every
index row is backed by the log record that created it, agrees with what its signer signed (a
dataset's ciphertext too) and with contract state (every grant generation, replayed from
AccessLedger's events), and re-hashes every blob. The report names each record that fails and
what differs.

What it can and cannot see: records inside an anchored head are pinned by the chain; a record's
signed part is pinned by its signature wherever it is. The unsigned part (time, context) of a
record after the last anchor is only protected by the stored tree, which whoever can write the
database could rebuild: anchor often.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from eth_utils.address import to_checksum_address
from sqlmodel import Session, col, select

from ledger.errors import LedgerError
from ledger.merkle.proofs import leaf_hash, node_hash
from ledger.merkle.tree import MemoryNodeStore, MerkleTree
from ledger.protocol.actions import ACTIONS
from ledger.protocol.documents import metadata_hash
from ledger.services import flowlog
from ledger.services.context import Ledger
from ledger.store.models import Dataset, Delivery, Grant, LogRecord, Member, TreeNode


@dataclass(frozen=True)
class Problem:
    """One thing that does not check out."""

    where: str
    what: str


@dataclass
class VerifyReport:
    """Everything verify looked at and every problem found."""

    problems: list[Problem] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    @property
    def ok(self) -> bool:
        return not self.problems

    def fail(self, where: str, what: str) -> None:
        self.problems.append(Problem(where, what))


def verify(ledger: Ledger) -> VerifyReport:
    """Run every check; never raises for a finding, only for an unreachable chain or DB."""
    report = VerifyReport()
    with ledger.db.session() as session:
        records = list(session.exec(select(LogRecord).order_by(col(LogRecord.seq))))
        entries = _check_records(ledger, session, records, report)
        _check_tree(session, records, report)
        leaves = [leaf_hash(r.leaf) for r in records]
        _check_anchors(ledger, leaves, report)
        _check_members(ledger, session, entries, report)
        _check_datasets(ledger, session, entries, report)
        _check_grants(ledger, session, entries, report)
        _check_credits(ledger, session, entries, report)
    return report


def _check_records(
    ledger: Ledger, session: Session, records: list[LogRecord], report: VerifyReport
) -> dict[int, flowlog.Entry]:
    entries: dict[int, flowlog.Entry] = {}
    first_use: dict[tuple[str, str, str], int] = {}  # (nonce domain, signer, nonce) -> seq
    size = flowlog.size(session)
    if len(records) != size:
        report.fail("log", f"log_state says {size} records, {len(records)} are stored")
    expected = 0
    for record in records:
        report.checked["records"] += 1
        where = f"log record {record.seq}"
        if record.seq != expected:
            missing = ", ".join(str(s) for s in range(expected, min(record.seq, expected + 5)))
            report.fail(
                f"log record {expected}", f"missing (next stored is {record.seq}): {missing}"
            )
        expected = record.seq + 1
        if record.seq >= size:
            report.fail(where, f"beyond the end of the log (log_state says {size} records)")
        try:
            entry = flowlog.decode(record)
        except (LedgerError, ValueError, KeyError, TypeError) as exc:
            report.fail(where, f"unreadable: {exc}")
            continue
        if entry.seq != record.seq:
            report.fail(
                where,
                f"stored at position {record.seq} but written as record {entry.seq}"
                " (reordered or inserted)",
            )
        if entry.action != record.action or entry.actor != record.actor:
            report.fail(where, "index columns disagree with the signed content")
        try:
            entry.signed.verify(ledger.domains)
        except LedgerError as exc:
            report.fail(where, f"signature does not verify: {exc.message}")
            continue
        # Every action carries a nonce its signer never reuses in that domain (the broker's
        # random nonces, the contracts' counters): the same one twice is a replayed record.
        nonce = (ACTIONS[entry.action].domain, entry.actor, str(entry.signed.message.get("nonce")))
        if nonce in first_use:
            report.fail(
                where, f"the same signed action as log record {first_use[nonce]} (a replay)"
            )
            continue
        first_use[nonce] = record.seq
        entries[record.seq] = entry
    if expected < size:
        missing = ", ".join(str(s) for s in range(expected, min(size, expected + 5)))
        report.fail(f"log record {expected}", f"missing (the log holds {size} records): {missing}")
    return entries


def _check_tree(session: Session, records: list[LogRecord], report: VerifyReport) -> None:
    """Each leaf node must hash its record, each other node its two children, and no node
    may stand for a record that is gone."""
    nodes = {(n.level, n.idx): bytes(n.hash) for n in session.exec(select(TreeNode))}
    leaves = {r.seq: leaf_hash(r.leaf) for r in records}
    for seq, digest in leaves.items():
        stored = nodes.get((0, seq))
        if stored is None:
            report.fail(f"log record {seq}", "not in the Merkle tree (no leaf node)")
        elif stored != digest:
            report.fail(
                f"log record {seq}", "content differs from the hash the tree recorded for it"
            )
    for (level, idx), digest in sorted(nodes.items()):
        report.checked["nodes"] += 1
        if level == 0:
            if idx not in leaves:
                report.fail(f"log record {idx}", "missing, but the Merkle tree holds its hash")
            continue
        first, last = idx << level, ((idx + 1) << level) - 1
        left, right = nodes.get((level - 1, 2 * idx)), nodes.get((level - 1, 2 * idx + 1))
        if left is None or right is None:
            report.fail(
                f"tree node ({level}, {idx})", f"a child is missing (log records {first}-{last})"
            )
        elif node_hash(left, right) != digest:
            report.fail(
                f"tree node ({level}, {idx})",
                f"does not hash its children: log records {first}-{last} or the tree were "
                "rewritten",
            )


def _check_anchors(ledger: Ledger, leaves: list[bytes], report: VerifyReport) -> None:
    tree = MerkleTree(MemoryNodeStore())
    for digest in leaves:
        tree.append_leaf_hash(digest)
    heads = sorted(
        (int(ev.args["treeSize"]), bytes(ev.args["rootHash"]))
        for ev in ledger.chain.events("FlowLog", "TreeHeadAnchored")
    )
    intact = 0  # the largest anchored size whose records still hash to its root
    for size, root in heads:
        report.checked["anchors"] += 1
        where = f"anchored head {size}"
        if size > len(leaves):
            report.fail(where, f"chain anchors {size} records, the log holds {len(leaves)}")
        elif tree.root(size) != root:
            # Heads only grow, so the first changed record lies after the last intact head.
            report.fail(
                where,
                "records do not hash to the root anchored on chain: the first altered record "
                f"is among log records {intact}-{size - 1}",
            )
        else:
            intact = size


def _entry(
    entries: dict[int, flowlog.Entry], seq: int, action: str, where: str, report: VerifyReport
) -> flowlog.Entry | None:
    entry = entries.get(seq)
    if entry is None:
        report.fail(where, f"its log record {seq} is missing or invalid")
        return None
    if entry.action != action:
        report.fail(where, f"log record {seq} is a {entry.action}, not a {action}")
        return None
    return entry


def _check_members(
    ledger: Ledger, session: Session, entries: dict[int, flowlog.Entry], report: VerifyReport
) -> None:
    for m in session.exec(select(Member)):
        report.checked["members"] += 1
        where = f"member {m.address}"
        entry = _entry(entries, m.log_seq, "onboard", where, report)
        if entry and to_checksum_address(str(entry.signed.message["member"])) != m.address:
            report.fail(where, f"log record {m.log_seq} onboards someone else")
        on_chain = ledger.chain.member(m.address)
        if (on_chain.kind, on_chain.status, on_chain.encryption_key) != (
            m.kind,
            m.status,
            m.encryption_key,
        ):
            report.fail(
                where,
                f"index says {m.kind}/{m.status}, chain says "
                f"{on_chain.kind}/{on_chain.status} (or the key differs)",
            )


def _check_datasets(
    ledger: Ledger, session: Session, entries: dict[int, flowlog.Entry], report: VerifyReport
) -> None:
    for d in session.exec(select(Dataset)):
        report.checked["datasets"] += 1
        where = f"dataset {d.id}"
        entry = _entry(entries, d.log_seq, "register", where, report)
        if entry:
            msg = entry.signed.message
            if (msg["contentHash"], msg["metadataHash"]) != (
                "0x" + d.content_hash.hex(),
                "0x" + d.metadata_hash.hex(),
            ):
                report.fail(
                    where, f"hashes differ from its signed registration (record {d.log_seq})"
                )
            _check_ciphertext_signed(d, entry, where, report)
        info = ledger.chain.dataset(d.id)
        expected: dict[str, Any] = {
            "owner": info.owner,
            "content_hash": info.content_hash,
            "metadata_hash": info.metadata_hash,
            "classification": info.classification,
            "parents": list(info.parents),
            "retired": info.retired,
        }
        actual: dict[str, Any] = {
            "owner": d.owner,
            "content_hash": d.content_hash,
            "metadata_hash": d.metadata_hash,
            "classification": d.classification,
            "parents": json.loads(d.parents),
            "retired": d.retired,
        }
        for key, value in expected.items():
            if actual[key] != value:
                report.fail(where, f"{key} in the index differs from the chain")
        report.checked["blobs"] += 1
        if not ledger.blobs.exists(d.ciphertext_sha256):
            report.fail(where, f"ciphertext blob 0x{d.ciphertext_sha256.hex()} is missing")
        elif not ledger.blobs.verify(d.ciphertext_sha256):
            report.fail(where, f"ciphertext blob 0x{d.ciphertext_sha256.hex()} was altered")


def _check_ciphertext_signed(
    d: Dataset, entry: flowlog.Entry, where: str, report: VerifyReport
) -> None:
    """The index's ciphertext must be the one the owner's signed metadata names."""
    metadata = entry.context.get("metadata")
    if not isinstance(metadata, dict) or (
        "0x" + metadata_hash(metadata).hex() != entry.signed.message["metadataHash"]
    ):
        report.fail(where, f"log record {d.log_seq} does not hold the metadata its owner signed")
    elif (metadata.get("ciphertext_sha256"), metadata.get("ciphertext_size")) != (
        "0x" + d.ciphertext_sha256.hex(),
        d.ciphertext_size,
    ):
        report.fail(where, f"ciphertext differs from the one its owner signed (record {d.log_seq})")


_GrantKey = tuple[int, str, int]  # dataset id, grantee, generation


def _chain_grant_history(ledger: Ledger) -> dict[_GrantKey, tuple[int, bool]]:
    """Uses and revocation of every grant generation, replayed from AccessLedger's events.

    ``grantOf`` only shows a pair's latest generation; the events show them all: a grant opens
    a generation, each use reports the new count, a revocation closes it.
    """
    events = sorted(
        (
            ev
            for name in ("AccessGranted", "AccessUsed", "AccessRevoked")
            for ev in ledger.chain.events("AccessLedger", name)
        ),
        key=lambda ev: (ev.block_number, ev.log_index),
    )
    current: dict[tuple[int, str], int] = {}
    history: dict[_GrantKey, tuple[int, bool]] = {}
    for ev in events:
        pair = (int(ev.args["datasetId"]), to_checksum_address(str(ev.args["grantee"])))
        if ev.name == "AccessGranted":
            current[pair] = int(ev.args["generation"])
            history[(*pair, current[pair])] = (0, False)
        elif pair in current:
            key = (*pair, current[pair])
            uses, revoked = history[key]
            if ev.name == "AccessUsed":
                history[key] = (int(ev.args["uses"]), revoked)
            else:
                history[key] = (uses, True)
    return history


def _check_grants(
    ledger: Ledger, session: Session, entries: dict[int, flowlog.Entry], report: VerifyReport
) -> None:
    latest: dict[tuple[int, str], Grant] = {}
    rows = list(session.exec(select(Grant).order_by(col(Grant.generation))))
    for g in rows:
        report.checked["grants"] += 1
        where = f"grant {g.id} (dataset {g.dataset_id} to {g.grantee}, generation {g.generation})"
        entry = _entry(entries, g.log_seq, "grant", where, report)
        if entry:
            msg = entry.signed.message
            signed = (
                int(msg["datasetId"]),
                to_checksum_address(str(msg["grantee"])),
                int(msg["expiresAt"]),
                int(msg["maxUses"]),
                str(msg["purposeHash"]).lower(),
                str(msg["termsHash"]).lower(),
            )
            stored = (
                g.dataset_id,
                g.grantee,
                g.expires_at,
                g.max_uses,
                "0x" + g.purpose_hash.hex(),
                "0x" + g.terms_hash.hex(),
            )
            if signed != stored:
                report.fail(
                    where, f"terms differ from the owner's signed grant (record {g.log_seq})"
                )
        latest[(g.dataset_id, g.grantee)] = g
    history = _chain_grant_history(ledger)
    for g in rows:
        if latest[(g.dataset_id, g.grantee)] is g:
            continue  # the latest generation is compared with grantOf below
        where = f"grant {g.id} (dataset {g.dataset_id} to {g.grantee}, generation {g.generation})"
        past = history.get((g.dataset_id, g.grantee, g.generation))
        if past is None:
            report.fail(where, "the chain never granted this generation")
        elif past != (g.uses, g.revoked):
            report.fail(
                where,
                f"index (uses {g.uses}, revoked {g.revoked}) differs from the chain's "
                f"history of this generation (uses {past[0]}, revoked {past[1]})",
            )
    for (dataset_id, grantee), g in latest.items():
        where = f"grant {g.id} (dataset {dataset_id} to {grantee}, generation {g.generation})"
        info = ledger.chain.grant_of(dataset_id, grantee)
        if (info.generation, info.expires_at, info.max_uses, info.uses, info.revoked) != (
            g.generation,
            g.expires_at,
            g.max_uses,
            g.uses,
            g.revoked,
        ):
            report.fail(
                where,
                f"index (uses {g.uses}, revoked {g.revoked}) differs from the "
                f"chain (uses {info.uses}, revoked {info.revoked})",
            )


def _check_credits(
    ledger: Ledger, session: Session, entries: dict[int, flowlog.Entry], report: VerifyReport
) -> None:
    owners = {d.id: d.owner for d in session.exec(select(Dataset))}
    totals: dict[str, int] = defaultdict(int)
    for delivery in session.exec(select(Delivery)):
        report.checked["deliveries"] += 1
        where = f"delivery receipt {delivery.id}"
        entry = _entry(entries, delivery.log_seq, "receipt", where, report)
        if entry and entry.context.get("receipt_id") != "0x" + delivery.receipt_id.hex():
            report.fail(where, f"receipt id differs from its log record {delivery.log_seq}")
        if delivery.dataset_id in owners:
            totals[owners[delivery.dataset_id]] += delivery.credit_amount
    for owner in set(owners.values()):
        report.checked["balances"] += 1
        on_chain = ledger.chain.credits_of(owner)
        if on_chain != totals.get(owner, 0):
            report.fail(
                f"credits of {owner}",
                f"index totals {totals.get(owner, 0)}, chain balance is {on_chain}",
            )

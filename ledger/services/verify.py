"""Verify: the log, the anchors, the index and the ciphertext against each other and the chain.

A regulator's audit. It recomputes every tree head from the stored records and compares each
head anchored on chain, re-verifies every record's signature, checks that every index row is
backed by the log record that created it and agrees with contract state, and re-hashes every
blob. The report names each record that fails and what differs.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from ledger.errors import LedgerError
from ledger.log import flowlog
from ledger.log.merkle import leaf_hash, root_from_leaf_hashes
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
    stored = {
        (n.level, n.idx): n.hash for n in session.exec(select(TreeNode).where(TreeNode.level == 0))
    }
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
        if stored.get((0, record.seq)) not in (None, leaf_hash(record.leaf)):
            report.fail(where, "content differs from the hash the tree recorded for it")
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
        entries[record.seq] = entry
    return entries


def _check_anchors(ledger: Ledger, leaves: list[bytes], report: VerifyReport) -> None:
    for ev in ledger.chain.events("FlowLog", "TreeHeadAnchored"):
        size = int(ev.args["treeSize"])
        report.checked["anchors"] += 1
        where = f"anchored head {size}"
        if size > len(leaves):
            report.fail(where, f"chain anchors {size} records, the log holds {len(leaves)}")
            continue
        if root_from_leaf_hashes(leaves[:size]) != bytes(ev.args["rootHash"]):
            report.fail(where, "records do not hash to the root anchored on chain")


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
        if entry and str(entry.signed.message["member"]) != m.address:
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


def _check_grants(
    ledger: Ledger, session: Session, entries: dict[int, flowlog.Entry], report: VerifyReport
) -> None:
    latest: dict[tuple[int, str], Grant] = {}
    for g in session.exec(select(Grant).order_by(col(Grant.generation))):
        report.checked["grants"] += 1
        where = f"grant {g.id} (dataset {g.dataset_id} to {g.grantee}, generation {g.generation})"
        entry = _entry(entries, g.log_seq, "grant", where, report)
        if entry:
            msg = entry.signed.message
            signed = (
                int(msg["datasetId"]),
                str(msg["grantee"]),
                int(msg["expiresAt"]),
                int(msg["maxUses"]),
                str(msg["purposeHash"]),
                str(msg["termsHash"]),
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

"""Signed records appended and anchored per second, against one chain transaction per record.

Everything runs in one process on a fresh temporary broker state (embedded py-evm chain,
SQLite index, blob directory), in this order:

1. **Setup** (not timed): deploy, onboard a department and an enterprise, register a small
   dataset. The enterprise signs ``--records`` access requests (real EIP-712 signatures, each
   with its own random nonce): signing is the members' work, done on their machines.
2. **Anchored log** (timed): the broker takes each signed request through the real service,
   ``ledger.services.access.request_access`` -- signature, deadline and nonce checks, member
   and dataset checks, ``flowlog.append`` and the request row, in ONE database transaction
   per action, as the services always do -- and runs an anchoring pass
   (``Anchorer.run_once``: one ``FlowLog.anchor`` transaction) after every ``--anchor-every``
   records and once at the end. Gas is the sum of those anchor transactions.
3. **Baseline: one transaction per record** (timed): the first ``--baseline`` of the same
   records, each put on chain by its own ``FlowLog.anchor(i, root_i)`` transaction, where
   ``root_i`` is the log's root after record ``i`` (so every record's commitment is on chain
   individually, verifiable exactly as the anchored log is). It writes to a second FlowLog,
   deployed on the same chain and equally empty, because a FlowLog only accepts growing sizes.
   Only the transactions are timed: the baseline is not charged for verifying or storing the
   records, which makes the comparison lean towards the baseline.
4. **Floor** (timed): the first ``--floor`` records' 32-byte leaf hashes, each sent as the
   calldata of a plain transaction to a burn address -- the cheapest conceivable on-chain
   commitment per record (no contract, no storage, nothing a contract can check), to show the
   gas ratio does not depend on the baseline's storage writes.

Prints a Markdown table (``--markdown`` prints only that) with records/s and gas per record
for each path and the ratios against the issue's targets: at least 100x the per-transaction
rate, and gas per record under 1% of it.

    .venv/bin/python scripts/bench_log.py [--records 4000] [--anchor-every 1000] [--markdown]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr

from ledger import crypto
from ledger.chain.client import LedgerChain
from ledger.chain.embedded import EmbeddedChain
from ledger.client.member import MemberKeys, prepare_upload, sign
from ledger.log import flowlog
from ledger.log.anchorer import Anchorer
from ledger.services import access, datasets, members
from ledger.services.actions import SignedAction
from ledger.services.context import Ledger, check_signed
from ledger.store.blobs import FileBlobStore
from ledger.store.db import Database

BURN = "0x000000000000000000000000000000000000dEaD"


@dataclass(frozen=True)
class PathResult:
    """One way of committing records: how many, how long, how many chain txs, what gas."""

    name: str
    records: int
    seconds: float
    transactions: int
    gas: int

    @property
    def per_second(self) -> float:
        return self.records / self.seconds

    @property
    def gas_per_record(self) -> float:
        return self.gas / self.records


def _keys() -> MemberKeys:
    private, _ = crypto.generate_keypair("x25519")
    return MemberKeys(account=Account.create(), hpke=private)


def _onboard(ledger: Ledger, operator: MemberKeys, kind: str, name: str) -> MemberKeys:
    keys = _keys()
    message = {
        "member": keys.address,
        "kind": kind,
        "name": name,
        "keySuite": keys.hpke.suite.id,
        "encryptionKey": keys.public_key.to_bytes(),
    }
    members.onboard(ledger, sign(operator, "onboard", message, ledger.domains))
    return keys


def _register(ledger: Ledger, owner: MemberKeys, work: Path) -> int:
    source = work / "permits.csv"
    source.write_text("permit_id,ward,cost\n" + "".join(f"BP-{i},Harbour,{i}\n" for i in range(50)))
    prepared = prepare_upload(
        owner,
        source,
        workdir=work,
        title="District building permits",
        domains=ledger.domains,
        chain_nonce=ledger.chain.nonce("DataRegistry", owner.address),
    )
    with prepared.ciphertext_path.open("rb") as fh:
        row = datasets.register(
            ledger,
            prepared.signed,
            metadata=prepared.metadata,
            owner_wrapped_key=prepared.owner_wrapped_key,
            ciphertext=fh,
        )
    return row.id


def _gas_of(ledger: Ledger, tx_hash: str) -> int:
    receipt = ledger.chain.w3.eth.get_transaction_receipt(HexStr(tx_hash))
    return int(receipt["gasUsed"])


def commit_latency(directory: Path, commits: int = 100) -> float:
    """Seconds per durable commit on this disk: SQLite, WAL, synchronous=FULL (as the index)."""
    conn = sqlite3.connect(directory / "fsync-probe.db", isolation_level=None)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("CREATE TABLE t (x INTEGER)")
        began = time.perf_counter()
        for i in range(commits):
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t VALUES (?)", (i,))
            conn.execute("COMMIT")
        return (time.perf_counter() - began) / commits
    finally:
        conn.close()


def anchored_log(
    ledger: Ledger, records: list[SignedAction], *, anchor_every: int
) -> tuple[PathResult, float]:
    """Each record through the service in its own DB transaction; anchor every N records."""
    anchorer = Anchorer(ledger.db, ledger.chain)
    anchor_txs: list[str] = []

    def anchor() -> None:
        done = anchorer.run_once()
        if done.tx_hash:
            anchor_txs.append(done.tx_hash)

    with ledger.db.session() as session:
        base = flowlog.size(session)
    began = time.perf_counter()
    for i, signed in enumerate(records, start=1):
        access.request_access(ledger, signed)
        if i % anchor_every == 0:
            anchor()
    if len(records) % anchor_every:
        anchor()
    seconds = time.perf_counter() - began
    with ledger.db.session() as session:
        appended = flowlog.size(session) - base
    assert appended == len(records), (appended, len(records))
    gas = sum(_gas_of(ledger, tx) for tx in anchor_txs)
    # How much of a record's time is the signature check alone (for the breakdown).
    sample = records[: min(500, len(records))]
    t0 = time.perf_counter()
    for signed in sample:
        check_signed(ledger, signed, "request")
    verify_share = (time.perf_counter() - t0) / len(sample)
    name = f"signed records, 1 DB tx each, anchored every {anchor_every:,}"
    return PathResult(name, len(records), seconds, len(anchor_txs), gas), verify_share


def per_record_anchors(
    ledger: Ledger, operator: LocalAccount, first: int, count: int
) -> PathResult:
    """Records ``first ..`` (``count`` of them), each committed by its own FlowLog.anchor."""
    baseline, _ = LedgerChain.deploy(ledger.chain.backend, operator)
    with ledger.db.session() as session:
        roots = [flowlog.head(session, first + i).root for i in range(1, count + 1)]
    gas = 0
    began = time.perf_counter()
    for i, root in enumerate(roots, start=1):
        gas += baseline.anchor(first + i, root).gas_used
    seconds = time.perf_counter() - began
    return PathResult("one FlowLog.anchor tx per record", count, seconds, count, gas)


def calldata_floor(ledger: Ledger, operator: LocalAccount, first: int, count: int) -> PathResult:
    """Records ``first ..``: each leaf hash as the calldata of its own plain transaction."""
    with ledger.db.session() as session:
        found = flowlog.records(session, after=first - 1, limit=count)
        leaves = [flowlog.leaf_hash_of(r) for r in found]
    w3 = ledger.chain.w3
    nonce = w3.eth.get_transaction_count(operator.address)  # the LedgerChain is done sending
    gas = 0
    began = time.perf_counter()
    for i, leaf in enumerate(leaves):
        tx: Any = {  # web3's TxParams, built as a plain dict
            "from": operator.address,
            "to": BURN,
            "value": 0,
            "data": "0x" + leaf.hex(),
            "nonce": nonce + i,
            "chainId": ledger.chain.deployment.chain_id,
            "gasPrice": w3.eth.gas_price,
        }
        tx["gas"] = w3.eth.estimate_gas(tx)
        signed = operator.sign_transaction(tx)
        tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
        gas += int(w3.eth.wait_for_transaction_receipt(tx_hash)["gasUsed"])
    seconds = time.perf_counter() - began
    return PathResult("one calldata tx per record (floor)", count, seconds, count, gas)


@dataclass(frozen=True)
class Breakdown:
    """Where an anchored record's time goes: the signature check and one durable commit."""

    verify_seconds: float
    commit_seconds: float


def run(args: argparse.Namespace) -> tuple[list[PathResult], Breakdown]:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        operator = _keys()
        backend = EmbeddedChain(root / "chain.sqlite", funded=[operator.address])
        try:
            chain, _ = LedgerChain.deploy(backend, operator.account)
            db = Database(f"sqlite:///{root / 'broker.db'}")
            db.upgrade()
            ledger = Ledger(chain=chain, db=db, blobs=FileBlobStore(root / "blobs"))
            office = _onboard(ledger, operator, "department", "District Planning Office")
            coop = _onboard(ledger, operator, "enterprise", "Harbour Solar Cooperative")
            dataset_id = _register(ledger, office, root)
            message = {
                "requester": coop.address,
                "datasetId": dataset_id,
                "purpose": "rooftop solar potential study for the district",
                "days": 30,
                "maxUses": 5,
            }
            records = [sign(coop, "request", message, ledger.domains) for _ in range(args.records)]
            with db.session() as session:
                first = flowlog.size(session)  # seq of the first measured record
            measured, verify_share = anchored_log(ledger, records, anchor_every=args.anchor_every)
            baseline = per_record_anchors(ledger, operator.account, first, args.baseline)
            floor = calldata_floor(ledger, operator.account, first, args.floor)
            db.dispose()
        finally:
            backend.close()
        breakdown = Breakdown(verify_seconds=verify_share, commit_seconds=commit_latency(root))
    return [measured, baseline, floor], breakdown


def table(results: list[PathResult], breakdown: Breakdown) -> str:
    measured, *baselines = results
    lines = [
        "| path | records | chain txs | records/s | gas per record |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.records:,} | {r.transactions:,} | {r.per_second:,.1f} "
            f"| {r.gas_per_record:,.1f} |"
        )
    lines += ["", "| anchored log vs | speed ratio (target >= 100x) | gas ratio (target < 1%) |"]
    lines.append("|---|---:|---:|")
    for b in baselines:
        speed = measured.per_second / b.per_second
        gas = measured.gas_per_record / b.gas_per_record
        lines.append(
            f"| {b.name} | {speed:,.1f}x {'meets' if speed >= 100 else 'MISSES'} "
            f"| {gas:.3%} {'meets' if gas < 0.01 else 'MISSES'} |"
        )
    per_record = 1 / measured.per_second
    lines += [
        "",
        f"Anchored log, per record: {per_record * 1e3:.2f} ms, of which the EIP-712 signature "
        f"check is {breakdown.verify_seconds * 1e3:.2f} ms and one durable commit on this disk "
        f"(SQLite WAL, synchronous=FULL) {breakdown.commit_seconds * 1e3:.2f} ms; the rest is "
        "the transaction's statements (member, dataset and nonce checks, log append, request "
        "row) and the amortised anchor.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=4_000)
    parser.add_argument("--anchor-every", type=int, default=1_000)
    parser.add_argument("--baseline", type=int, default=200, help="records for the baseline")
    parser.add_argument("--floor", type=int, default=100, help="records for the calldata floor")
    parser.add_argument("--markdown", action="store_true", help="print only the table")
    args = parser.parse_args()
    if not 0 < args.baseline <= args.records or not 0 < args.floor <= args.records:
        parser.error("--baseline and --floor must be between 1 and --records")
    began = time.perf_counter()
    results, breakdown = run(args)
    if not args.markdown:
        print(f"embedded py-evm chain, SQLite index; {time.perf_counter() - began:.0f} s\n")
    print(table(results, breakdown))


if __name__ == "__main__":
    main()

"""Signed records appended and anchored per second, against one chain transaction per record.

Everything runs in one process on a fresh temporary broker state (embedded py-evm chain,
SQLite index, blob directory), on the same chain, in this order:

1. **Setup** (not timed): deploy, onboard a department and ``--members`` enterprises, register
   a small dataset. The enterprises sign access requests (real EIP-712 signatures through the
   members' own code path, each with its own random nonce): signing is the members' work, done
   on their machines. Requests are dealt to the enterprises in turn.
2. **(a) Per-action service** (timed): each signed request through the API's service,
   ``ledger.services.requests.request_access`` -- signature, deadline and form checks, member
   and dataset checks, nonce, ``flowlog.append`` and the request row, in ONE database
   transaction (one durable commit) per action -- and an anchoring pass
   (``Anchorer.run_once``: one ``FlowLog.anchor`` transaction) after every ``--anchor-every``
   records and once at the end.
3. **(b) Batched ingestion** (timed): the same kind of records through
   ``request_access_batch`` in batches of ``--batch``: every record still gets every check
   (its signature verified, its nonce consumed, member and dataset checked, refused on its own
   if bad), and each batch is ONE database transaction (one lock, bulk inserts, one durable
   commit: group commit); anchored exactly as in (a).
4. **(b') Batched, signature checks shared with a process pool** (timed, unless
   ``--no-pool``): as (b), with one worker process checking part of each batch's signatures
   while the calling process checks the rest (``request_access_batch(executor=...)``).
5. **(c) Baseline: one transaction per record** (timed): the first ``--baseline`` records of
   (b), each put on chain by its own ``FlowLog.anchor(i, root_i)`` transaction, where
   ``root_i`` is the log's root after record ``i`` (so every record's commitment is on chain
   individually, verifiable exactly as the anchored log is). It writes to a second FlowLog,
   deployed on the same chain and equally empty, because a FlowLog only accepts growing sizes.
   Only the transactions are timed: the baseline is not charged for verifying or storing the
   records, which makes the comparison lean towards the baseline.
6. **(d) Floor** (timed): the first ``--floor`` records' 32-byte leaf hashes, each sent as the
   calldata of a plain transaction to a burn address -- the cheapest conceivable on-chain
   commitment per record (no contract, no storage, nothing a contract can check), to show the
   gas ratio does not depend on the baseline's storage writes.
7. **Check** (not timed): ``ledger.services.verify.verify`` over the whole log -- every record's
   signature, the tree, every anchored head against the chain, every request row against its
   record -- must pass.

Prints a Markdown table (``--markdown`` prints only the tables) with records/s and gas per
record for each path and the ratios against the issue's targets: at least 100x the
per-transaction rate, and gas per record under 1% of it.

    .venv/bin/python scripts/bench_log.py [--records 2000] [--batch-records 10000]
        [--batch 1000] [--anchor-every 1000] [--markdown]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Executor, ProcessPoolExecutor
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
from ledger.protocol.actions import SignedAction
from ledger.services import datasets, flowlog, members, requests
from ledger.services.anchoring import Anchorer
from ledger.services.context import Ledger, check_signed
from ledger.services.verify import verify
from ledger.store.blobs import FileBlobStore
from ledger.store.db import Database

BURN = "0x000000000000000000000000000000000000dEaD"


@dataclass(frozen=True)
class PathResult:
    """One way of committing records: how many, how long, how many chain txs, what gas."""

    name: str
    includes: str
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


class _Anchoring:
    """Runs an anchoring pass every ``every`` records (and on ``finish``); sums their gas."""

    def __init__(self, ledger: Ledger, every: int) -> None:
        self.ledger = ledger
        self.every = every
        self.anchorer = Anchorer(ledger.db, ledger.chain)
        self.txs: list[str] = []
        self._since = 0

    def added(self, count: int) -> None:
        self._since += count
        if self._since >= self.every:
            self.finish()

    def finish(self) -> None:
        if self._since:
            done = self.anchorer.run_once()
            if done.tx_hash:
                self.txs.append(done.tx_hash)
            self._since = 0

    def gas(self) -> int:
        return sum(_gas_of(self.ledger, tx) for tx in self.txs)


def _log_size(ledger: Ledger) -> int:
    with ledger.db.session() as session:
        return flowlog.size(session)


def per_action(ledger: Ledger, records: list[SignedAction], *, anchor_every: int) -> PathResult:
    """(a) Each record through ``request_access`` in its own DB transaction; anchor every N."""
    anchoring = _Anchoring(ledger, anchor_every)
    base = _log_size(ledger)
    began = time.perf_counter()
    for signed in records:
        requests.request_access(ledger, signed)
        anchoring.added(1)
    anchoring.finish()
    seconds = time.perf_counter() - began
    assert _log_size(ledger) - base == len(records)
    return PathResult(
        f"(a) per-action service `request_access`, anchored every {anchor_every:,}",
        "signature + deadline + form, member/dataset/nonce checks, log append, request row; "
        "one DB transaction (durable commit) per record; anchor txs",
        len(records),
        seconds,
        len(anchoring.txs),
        anchoring.gas(),
    )


def batched(
    ledger: Ledger,
    records: list[SignedAction],
    *,
    batch: int,
    anchor_every: int,
    executor: Executor | None = None,
) -> PathResult:
    """(b) Records through ``request_access_batch``, ``batch`` per DB transaction, anchored."""
    anchoring = _Anchoring(ledger, anchor_every)
    base = _log_size(ledger)
    began = time.perf_counter()
    for start in range(0, len(records), batch):
        outcome = requests.request_access_batch(
            ledger, records[start : start + batch], executor=executor
        )
        assert not outcome.refused, outcome.refused[:3]
        anchoring.added(len(outcome.accepted))
    anchoring.finish()
    seconds = time.perf_counter() - began
    assert _log_size(ledger) - base == len(records)
    pooled = executor is not None
    label = "(b')" if pooled else "(b)"
    return PathResult(
        f"{label} batched ingestion `request_access_batch` of {batch:,}"
        f"{', 1 worker process + caller' if pooled else ''}, anchored every {anchor_every:,}",
        "the same checks for every record (each signature verified"
        f"{', split with the worker' if pooled else ''}, each nonce consumed, bad items "
        "refused one by one); one DB transaction (one lock, bulk inserts, one durable commit) "
        "per batch; anchor txs",
        len(records),
        seconds,
        len(anchoring.txs),
        anchoring.gas(),
    )


def per_record_anchors(
    ledger: Ledger, operator: LocalAccount, first: int, count: int
) -> PathResult:
    """(c) Records ``first ..`` (``count`` of them), each committed by its own FlowLog.anchor."""
    baseline, _ = LedgerChain.deploy(ledger.chain.backend, operator)
    with ledger.db.session() as session:
        roots = [flowlog.head(session, first + i).root for i in range(1, count + 1)]
    gas = 0
    began = time.perf_counter()
    for i, root in enumerate(roots, start=1):
        gas += baseline.anchor(first + i, root).gas_used
    seconds = time.perf_counter() - began
    return PathResult(
        "(c) baseline: one `FlowLog.anchor` tx per record",
        "only the chain transactions (not charged for verifying or storing the records)",
        count,
        seconds,
        count,
        gas,
    )


def calldata_floor(ledger: Ledger, operator: LocalAccount, first: int, count: int) -> PathResult:
    """(d) Records ``first ..``: each leaf hash as the calldata of its own plain transaction."""
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
    return PathResult(
        "(d) floor: one calldata tx per record",
        "only the chain transactions: a 32-byte leaf hash as calldata to a burn address",
        count,
        seconds,
        count,
        gas,
    )


@dataclass(frozen=True)
class Breakdown:
    """Per-record costs measured on their own, and the final audit."""

    verify_seconds: float
    commit_seconds: float
    audited_records: int
    audit_problems: int


def _signer(
    ledger: Ledger, requesters: list[MemberKeys], dataset_id: int
) -> Callable[[int], list[SignedAction]]:
    def signed(count: int) -> list[SignedAction]:
        return [
            sign(
                requesters[i % len(requesters)],
                "request",
                {
                    "requester": requesters[i % len(requesters)].address,
                    "datasetId": dataset_id,
                    "purpose": f"rooftop solar potential study for the district, part {i}",
                    "days": 30,
                    "maxUses": 5,
                },
                ledger.domains,
            )
            for i in range(count)
        ]

    return signed


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
            requesters = [
                _onboard(ledger, operator, "enterprise", f"Harbour Solar Cooperative {n}")
                for n in range(args.members)
            ]
            dataset_id = _register(ledger, office, root)
            make = _signer(ledger, requesters, dataset_id)
            one_by_one = make(args.records)
            in_batches = make(args.batch_records)
            pooled = [] if args.no_pool else make(args.batch_records)
            results = [per_action(ledger, one_by_one, anchor_every=args.anchor_every)]
            first = _log_size(ledger)  # seq of the first batched record
            results.append(
                batched(ledger, in_batches, batch=args.batch, anchor_every=args.anchor_every)
            )
            if pooled:
                with ProcessPoolExecutor(max_workers=1) as pool:
                    pool.submit(int).result()  # the worker is up before the clock starts
                    results.append(
                        batched(
                            ledger,
                            pooled,
                            batch=args.batch,
                            anchor_every=args.anchor_every,
                            executor=pool,
                        )
                    )
            results.append(per_record_anchors(ledger, operator.account, first, args.baseline))
            results.append(calldata_floor(ledger, operator.account, first, args.floor))
            # The signature check alone, per record, as the services do it.
            sample = in_batches[: min(1000, len(in_batches))]
            t0 = time.perf_counter()
            for signed in sample:
                check_signed(ledger, signed, "request")
            verify_share = (time.perf_counter() - t0) / len(sample)
            audit = verify(ledger)
            db.dispose()
        finally:
            backend.close()
        breakdown = Breakdown(
            verify_seconds=verify_share,
            commit_seconds=commit_latency(root),
            audited_records=audit.checked["records"],
            audit_problems=len(audit.problems),
        )
    return results, breakdown


def table(results: list[PathResult], breakdown: Breakdown) -> str:
    logged = [r for r in results if r.name.startswith("(a") or r.name.startswith("(b")]
    baselines = [r for r in results if r not in logged]
    lines = [
        "| path | records | chain txs | records/s | gas per record |",
        "|---|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.name} | {r.records:,} | {r.transactions:,} | {r.per_second:,.1f} "
            f"| {r.gas_per_record:,.1f} |"
        )
    lines += ["", "| path | what the measured time includes |", "|---|---|"]
    lines += [f"| {r.name.split(' ')[0]} | {r.includes} |" for r in results]
    lines += [
        "",
        "| anchored log path | vs | speed ratio (target >= 100x) | gas ratio (target < 1%) |",
        "|---|---|---:|---:|",
    ]
    for m in logged:
        for b in baselines:
            speed = m.per_second / b.per_second
            gas = m.gas_per_record / b.gas_per_record
            lines.append(
                f"| {m.name.split(' ')[0]} | {b.name.split(' ')[0]} "
                f"| {speed:,.1f}x {'meets' if speed >= 100 else 'MISSES'} "
                f"| {gas:.3%} {'meets' if gas < 0.01 else 'MISSES'} |"
            )
    per_action_ms = 1e3 / logged[0].per_second
    lines += [
        "",
        f"Per record, the EIP-712 signature check alone is {breakdown.verify_seconds * 1e3:.3f} "
        f"ms; one durable commit on this disk (SQLite WAL, synchronous=FULL) is "
        f"{breakdown.commit_seconds * 1e3:.2f} ms, which (a) pays for every record "
        f"({per_action_ms:.2f} ms per record in all) and (b) once per batch.",
        f"Audit afterwards (`ledger.services.verify.verify`, every signature, the tree, every "
        f"anchored head against the chain): {breakdown.audited_records:,} records, "
        f"{breakdown.audit_problems} problems.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=2_000, help="records for path (a)")
    parser.add_argument(
        "--batch-records", type=int, default=10_000, help="records for paths (b) and (b')"
    )
    parser.add_argument("--batch", type=int, default=1_000, help="records per batch in (b)")
    parser.add_argument("--members", type=int, default=4, help="enterprises signing requests")
    parser.add_argument("--anchor-every", type=int, default=1_000)
    parser.add_argument("--baseline", type=int, default=200, help="records for the baseline")
    parser.add_argument("--floor", type=int, default=100, help="records for the calldata floor")
    parser.add_argument("--no-pool", action="store_true", help="skip path (b')")
    parser.add_argument("--markdown", action="store_true", help="print only the tables")
    args = parser.parse_args()
    if not 0 < args.baseline <= args.batch_records or not 0 < args.floor <= args.batch_records:
        parser.error("--baseline and --floor must be between 1 and --batch-records")
    if args.records < 1 or args.batch < 1 or args.members < 1:
        parser.error("--records, --batch and --members must be at least 1")
    began = time.perf_counter()
    results, breakdown = run(args)
    if not args.markdown:
        print(f"embedded py-evm chain, SQLite index; {time.perf_counter() - began:.0f} s\n")
    print(table(results, breakdown))
    if breakdown.audit_problems:
        raise SystemExit("the audit found problems: the measured log does not verify")


if __name__ == "__main__":
    main()

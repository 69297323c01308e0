"""A broker killed with SIGKILL at any point loses no acknowledged record and pays nothing twice.

One broker state (embedded chain file, SQLite index, blobs) is set up once. Then, run after
run, ``tests/crash_worker.py`` opens it as a restarting broker would and appends signed
fetches and delivery receipts, anchoring every few records, until the test kills it with
SIGKILL after a random delay (seeded). A few runs instead die on purpose right after a chain
transaction whose database commit never comes (``--die-after``). After every kill the test
reopens the state, checks what the chain and the log hold, runs the start-up recovery a
broker runs (``exchange.reconcile_uses`` and one anchoring pass), and runs ``verify``.
"""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest
from sqlmodel import select

from ledger.chain.client import LedgerChain
from ledger.chain.embedded import EmbeddedChain
from ledger.log import flowlog
from ledger.log.anchorer import Anchorer
from ledger.services import exchange
from ledger.services.context import Ledger
from ledger.services.verify import verify
from ledger.store.blobs import FileBlobStore
from ledger.store.db import Database
from ledger.store.models import Delivery, Grant, LogRecord
from tests import kit
from tests.crash_worker import (
    BLOBS,
    CHAIN_FILE,
    DB_FILE,
    CrashState,
    close_ledger,
    open_ledger,
)

REPO = Path(__file__).resolve().parent.parent
SEED = 20_261_128
RANDOM_KILLS = 20
#: Runs (by index) that end by the worker killing itself right after a chain transaction.
TARGETED = {4: "record_use", 9: "anchor", 14: "mint_batch"}
MAX_DELAY = 0.6  # seconds after READY before the kill
READY_TIMEOUT = 60.0


@dataclass
class Run:
    """What one kill-and-restart cycle saw."""

    index: int
    how: str
    returncode: int | None = None
    ready: bool = False
    delay: float = 0.0
    acked: int = 0
    log_size: int = 0
    stderr: str = ""
    missing: list[int] = field(default_factory=list)
    anchored_sizes: list[int] = field(default_factory=list)
    roots_differing: list[int] = field(default_factory=list)
    minted_twice: list[str] = field(default_factory=list)
    minted_unknown: list[str] = field(default_factory=list)
    problems_before_recovery: int = 0
    reconciled: int = 0
    problems: list[str] = field(default_factory=list)
    chain_uses: int = 0
    index_uses: int = 0
    fetch_records: int = 0


def _setup(root: Path) -> CrashState:
    """Deploy, onboard an owner and a consumer, register a dataset, grant it many uses."""
    operator = kit.new_keys()
    backend = EmbeddedChain(root / CHAIN_FILE, funded=[operator.address])
    # A cap no test run reaches: every receipt earns credits, so double minting would show.
    chain, _ = LedgerChain.deploy(backend, operator.account, credit_cap=10**12)
    db = Database(f"sqlite:///{root / DB_FILE}")
    db.upgrade()
    broker = kit.Broker(
        ledger=Ledger(chain=chain, db=db, blobs=FileBlobStore(root / BLOBS)),
        root=root,
        operator=operator,
    )
    try:
        office = kit.onboard(broker, "department", "District Planning Office")
        coop = kit.onboard(broker, "enterprise", "Harbour Solar Cooperative")
        work = root / "work"
        work.mkdir()
        data = kit.register(broker, office, kit.small_csv(work / "harbour.csv"), workdir=work)
        grant = kit.approve(broker, office, kit.request(broker, coop, data.id, uses=100_000))
        state = CrashState(
            operator_key="0x" + bytes(operator.account.key).hex(),
            consumer_key="0x" + bytes(coop.account.key).hex(),
            deployment=asdict(chain.deployment),
            dataset_id=data.id,
            content_hash="0x" + data.content_hash.hex(),
            generation=grant.generation,
        )
        state.save(root)
    finally:
        broker.close()
    return state


def _worker(root: Path, run: Run, rng: random.Random, acked: dict[int, str]) -> None:
    """Start the worker, let it work, kill it (or let it kill itself); collect its ACKs."""
    command = [sys.executable, "-m", "tests.crash_worker", str(root)]
    if run.how != "random":
        command += ["--die-after", run.how]
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[str] = []
    ready = threading.Event()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.strip())
            if line.startswith("READY"):
                ready.set()
        ready.set()  # EOF: the process is gone

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        run.ready = ready.wait(READY_TIMEOUT) and any(x.startswith("READY") for x in lines)
        if run.how == "random":
            run.delay = rng.uniform(0.0, MAX_DELAY)
            try:
                proc.wait(timeout=run.delay)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
        run.returncode = proc.wait(timeout=READY_TIMEOUT)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(timeout=10)
    assert proc.stderr is not None
    run.stderr = proc.stderr.read()[-2000:]
    for line in lines:
        if line.startswith("ACK "):
            _, seq, action = line.split()
            acked[int(seq)] = action
            run.acked += 1


def _check(root: Path, run: Run, acked: dict[int, str]) -> None:
    """Reopen after the kill: chain and log checks, start-up recovery, then verify."""
    ledger = open_ledger(root)
    try:
        with ledger.db.session() as session:
            stored = {r.seq: r.action for r in session.exec(select(LogRecord))}
        run.log_size = len(stored)
        run.missing = sorted(seq for seq, action in acked.items() if stored.get(seq) != action)
        run.problems_before_recovery = len(verify(ledger).problems)
        run.reconciled = exchange.reconcile_uses(ledger)
        Anchorer(ledger.db, ledger.chain).run_once()
        _check_chain(ledger, run)
        run.problems = [f"{p.where}: {p.what}" for p in verify(ledger).problems]
    finally:
        close_ledger(ledger)


def _check_chain(ledger: Ledger, run: Run) -> None:
    chain = ledger.chain
    heads = chain.events("FlowLog", "TreeHeadAnchored")
    run.anchored_sizes = [int(ev.args["treeSize"]) for ev in heads]
    minted = [bytes(ev.args["receiptId"]) for ev in chain.events("SharingCredits", "CreditsMinted")]
    with ledger.db.session() as session:
        for ev in heads:
            size = int(ev.args["treeSize"])
            if flowlog.head(session, size).root != bytes(ev.args["rootHash"]):
                run.roots_differing.append(size)
        receipts = {d.receipt_id for d in session.exec(select(Delivery))}
        grant = session.exec(select(Grant)).one()
        run.index_uses = grant.uses
        run.fetch_records = len(
            list(session.exec(select(LogRecord.seq).where(LogRecord.action == "fetch")))
        )
        on_chain = chain.grant_of(grant.dataset_id, grant.grantee)
    run.chain_uses = on_chain.uses
    run.minted_twice = sorted(rid.hex() for rid, n in Counter(minted).items() if n > 1)
    run.minted_unknown = sorted(rid.hex() for rid in set(minted) - receipts)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory: pytest.TempPathFactory) -> list[Run]:
    """Set up once, then kill and restart the worker again and again on the same state."""
    root = tmp_path_factory.mktemp("crash")
    _setup(root)
    rng = random.Random(SEED)
    acked: dict[int, str] = {}
    runs: list[Run] = []
    for index in range(RANDOM_KILLS + len(TARGETED)):
        run = Run(index=index, how=TARGETED.get(index, "random"))
        _worker(root, run, rng, acked)
        _check(root, run, acked)
        runs.append(run)
    summary = [
        {k: v for k, v in asdict(r).items() if k not in ("stderr", "anchored_sizes")}
        for r in runs
    ]
    (root / "campaign.json").write_text(json.dumps(summary, indent=1))
    return runs


def test_every_run_was_killed_while_working(campaign: list[Run]) -> None:
    random_runs = [r for r in campaign if r.how == "random"]
    assert len(random_runs) >= 20
    for run in campaign:
        assert run.ready, run.stderr
        assert run.returncode == -signal.SIGKILL, (run.index, run.how, run.stderr)
    # Kills landed while work was going on, not only in idle moments between runs.
    assert sum(1 for r in random_runs if r.acked) >= len(random_runs) // 2
    assert campaign[-1].log_size > campaign[0].log_size


def test_no_acknowledged_record_is_missing_after_any_restart(campaign: list[Run]) -> None:
    for run in campaign:
        assert run.missing == [], (run.index, run.how)
    assert sum(r.acked for r in campaign) > 0


def test_no_tree_head_is_anchored_twice_and_each_matches_the_log(campaign: list[Run]) -> None:
    for run in campaign:
        sizes = run.anchored_sizes
        assert sizes == sorted(set(sizes)), (run.index, sizes)
        assert run.roots_differing == [], (run.index, run.how)
    assert len(campaign[-1].anchored_sizes) >= len(campaign) // 2


def test_no_receipt_is_credited_twice(campaign: list[Run]) -> None:
    for run in campaign:
        assert run.minted_twice == [], (run.index, run.how)
        assert run.minted_unknown == [], (run.index, run.how)


def test_verify_passes_after_every_restart(campaign: list[Run]) -> None:
    for run in campaign:
        assert run.problems == [], (run.index, run.how, run.problems[:5])
        assert run.chain_uses == run.index_uses, run.index


def test_a_use_recorded_on_chain_without_its_commit_is_reconciled(campaign: list[Run]) -> None:
    (died,) = [r for r in campaign if r.how == "record_use"]
    assert died.acked == 0
    assert died.reconciled == 1
    assert died.problems_before_recovery >= 1  # the index lagged the chain until reconciled
    # Each such kill leaves one use on chain with no signed fetch in the log, never more.
    orphaned = campaign[-1].chain_uses - campaign[-1].fetch_records
    assert 1 <= orphaned <= sum(r.reconciled for r in campaign)

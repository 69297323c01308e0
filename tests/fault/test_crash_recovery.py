"""A broker killed with SIGKILL at any point loses no acknowledged record and pays nothing twice.

One broker state (embedded chain file, SQLite index, blobs) is set up once. Then, run after
run, ``tests/support/crash_worker.py`` opens it as a restarting broker would and appends signed
fetches and delivery receipts, anchoring every few records, until the test kills it with
SIGKILL after a random delay (seeded). A few runs instead die on purpose right after a chain
transaction whose database commit never comes (``--die-after``). After every kill the test
reopens the state, checks what the chain and the log hold, runs the start-up recovery a
broker runs (``exchange.reconcile_uses`` and one anchoring pass), and runs ``verify``.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest
from sqlmodel import col, select

from ledger.chain.models import CreditRules
from ledger.services import exchange, flowlog
from ledger.services.anchoring import Anchorer
from ledger.services.context import Ledger
from ledger.services.verify import verify
from ledger.store.blobs import FileBlobStore
from ledger.store.db import Database
from ledger.store.models import Anchor, Delivery, Grant, LogRecord
from tests.support import kit
from tests.support.crash_worker import (
    BLOBS,
    CHAIN_FILE,
    DB_FILE,
    CrashState,
    close_ledger,
    open_ledger,
)

REPO = Path(__file__).resolve().parents[2]
SEED = 20_261_128
RANDOM_KILLS = 20
#: Runs (by index) that end by the worker killing itself right after a chain transaction.
TARGETED = {4: "record_use", 9: "anchor", 14: "mint_batch"}
#: Seconds after READY before the kill (a worker's first fetch takes ~0.4 s, later pairs ~0.13 s).
MAX_DELAY = 1.2
READY_TIMEOUT = 60.0
UNCAPPED = 2**32 - 1  # the largest uint32 cap SharingCredits takes


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
    uses_lag_before_recovery: int = 0
    credit_lag_before_recovery: int = 0
    anchor_lag_before_recovery: int = 0
    anchors_unrecorded: list[int] = field(default_factory=list)
    reconciled: int = 0
    problems: list[str] = field(default_factory=list)
    chain_uses: int = 0
    index_uses: int = 0
    fetch_records: int = 0
    seconds: float = 0.0


def _setup(root: Path) -> CrashState:
    """Deploy, onboard an owner and a consumer, register a dataset, grant it many uses."""
    # Caps no test run reaches: every receipt earns credits, so double minting would show.
    rules = CreditRules(pair_cap=UNCAPPED, owner_cap=UNCAPPED)
    chain, operator, broker_key = kit.deploy(root / CHAIN_FILE, rules=rules)
    db = Database(f"sqlite:///{root / DB_FILE}")
    db.upgrade()
    broker = kit.Broker(
        ledger=Ledger(chain=chain, db=db, blobs=FileBlobStore(root / BLOBS)),
        root=root,
        operator=operator,
        broker_key=broker_key,
    )
    try:
        office = kit.onboard(broker, "department", "District Planning Office")
        coop = kit.onboard(broker, "enterprise", "Harbour Solar Cooperative")
        work = root / "work"
        work.mkdir()
        data = kit.register(broker, office, kit.small_csv(work / "harbour.csv"), workdir=work)
        grant = kit.approve(broker, office, kit.request(broker, coop, data.id, uses=100_000))
        state = CrashState(
            broker_key="0x" + bytes(broker_key.key).hex(),
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


class Launcher:
    """The fork server of tests/support/crash_worker.py and the lines its workers print."""

    def __init__(self, stderr_path: Path) -> None:
        self._stderr_path = stderr_path
        self._stderr = stderr_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.crash_worker", "--launcher"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.strip())
        self.lines.put("EOF")

    def next_line(self, timeout: float = READY_TIMEOUT) -> str:
        line = self.lines.get(timeout=timeout)
        if line == "EOF":
            raise RuntimeError(f"the launcher died: {self.stderr_tail()}")
        return line

    def start(self, root: Path, die_after: str | None) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(f"RUN {root}{' ' + die_after if die_after else ''}\n")
        self.proc.stdin.flush()

    def stderr_tail(self) -> str:
        self._stderr.flush()
        return self._stderr_path.read_text()[-2000:]

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._stderr.close()


def _worker(
    launcher: Launcher, root: Path, run: Run, rng: random.Random, acked: dict[int, str]
) -> None:
    """Start a worker, let it work, kill it (or let it kill itself); collect its ACKs."""
    launcher.start(root, None if run.how == "random" else run.how)
    pid = 0
    timer: threading.Timer | None = None
    lines: list[str] = []
    deadline = time.monotonic() + READY_TIMEOUT
    while run.returncode is None:
        line = launcher.next_line(timeout=max(0.0, deadline - time.monotonic()))
        word, *rest = line.split()
        if word == "STARTED":
            pid = int(rest[0])
        elif word == "READY":
            run.ready = True
            if run.how == "random":
                run.delay = rng.uniform(0.0, MAX_DELAY)
                timer = threading.Timer(run.delay, _kill, args=(pid,))
                timer.start()
        elif word == "EXIT":
            run.returncode = int(rest[1])
            if timer is not None:
                timer.cancel()  # the pid is free again: never signal it later
        else:
            lines.append(line)
    run.stderr = launcher.stderr_tail() if run.returncode != -signal.SIGKILL else ""
    for line in lines:
        if line.startswith("ACK "):
            _, seq, action = line.split()
            acked[int(seq)] = action
            run.acked += 1


def _kill(pid: int) -> None:
    """SIGKILL the worker this test started (a child of the launcher), by its pid."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def _check(root: Path, run: Run, acked: dict[int, str]) -> None:
    """Reopen after the kill: chain and log checks, start-up recovery, then verify."""
    ledger = open_ledger(root)
    try:
        with ledger.db.session() as session:
            stored = {r.seq: r.action for r in session.exec(select(LogRecord))}
        run.log_size = len(stored)
        run.missing = sorted(seq for seq, action in acked.items() if stored.get(seq) != action)
        run.uses_lag_before_recovery = _uses_lag(ledger)
        run.credit_lag_before_recovery, run.anchor_lag_before_recovery = _anchor_lags(ledger)
        run.reconciled = exchange.reconcile_uses(ledger)
        Anchorer(ledger.db, ledger.chain).run_once()
        _check_chain(ledger, run)
        run.problems = [f"{p.where}: {p.what}" for p in verify(ledger).problems]
    finally:
        close_ledger(ledger)


def _uses_lag(ledger: Ledger) -> int:
    """How many uses the chain counts that the index does not (yet)."""
    with ledger.db.session() as session:
        grant = session.exec(select(Grant)).one()
    return ledger.chain.grant_of(grant.dataset_id, grant.grantee).uses - grant.uses


def _anchor_lags(ledger: Ledger) -> tuple[int, int]:
    """Credits minted and tree size anchored on chain beyond what the index has noted."""
    with ledger.db.session() as session:
        deliveries = list(session.exec(select(Delivery)))
        noted = session.exec(select(Anchor.tree_size).order_by(col(Anchor.tree_size).desc()))
        anchored = noted.first() or 0
    credited = sum(d.credit_amount for d in deliveries)
    return (
        ledger.chain.credits_total() - credited,
        ledger.chain.latest_head().tree_size - anchored,
    )


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
        noted = set(session.exec(select(Anchor.tree_size)))
        run.anchors_unrecorded = [size for size in run.anchored_sizes if size not in noted]
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
    launcher = Launcher(root / "workers.stderr")
    try:
        for index in range(RANDOM_KILLS + len(TARGETED)):
            run = Run(index=index, how=TARGETED.get(index, "random"))
            began = time.monotonic()
            _worker(launcher, root, run, rng, acked)
            _check(root, run, acked)
            run.seconds = round(time.monotonic() - began, 2)
            runs.append(run)
    finally:
        launcher.close()
    summary = [
        {k: v for k, v in asdict(r).items() if k not in ("stderr", "anchored_sizes")} for r in runs
    ]
    (root / "campaign.json").write_text(json.dumps(summary, indent=1))
    return runs


def test_every_run_was_killed_while_working(campaign: list[Run]) -> None:
    random_runs = [r for r in campaign if r.how == "random"]
    assert len(random_runs) >= 20
    for run in campaign:
        assert run.ready, run.stderr
        assert run.returncode == -signal.SIGKILL, (run.index, run.how, run.stderr)
    # Kills landed while work was going on, not only before the first action completed.
    assert sum(1 for r in random_runs if r.acked) >= len(random_runs) // 4
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
        assert run.anchors_unrecorded == [], (run.index, run.how)
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
    assert died.uses_lag_before_recovery == 1  # the index lagged the chain until reconciled
    for run in campaign:
        assert run.reconciled == (1 if run.uses_lag_before_recovery else 0), run.index
    # Each such kill leaves exactly one use on chain with no signed fetch in the log (the
    # fetch was never answered); no other use lacks its record.
    orphaned = campaign[-1].chain_uses - campaign[-1].fetch_records
    assert orphaned == sum(r.uses_lag_before_recovery for r in campaign)


def test_an_anchor_or_mint_on_chain_without_its_commit_is_recovered_by_the_next_pass(
    campaign: list[Run],
) -> None:
    (anchored,) = [r for r in campaign if r.how == "anchor"]
    assert anchored.anchor_lag_before_recovery > 0  # the kill landed in the window
    (minted,) = [r for r in campaign if r.how == "mint_batch"]
    assert minted.credit_lag_before_recovery > 0
    # After the recovery pass the index noted them (verify compares balances with the chain).
    assert anchored.anchors_unrecorded == []
    assert anchored.problems == []
    assert minted.minted_twice == []
    assert minted.problems == []

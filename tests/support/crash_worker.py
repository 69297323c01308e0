"""A broker process for the crash test: appends signed actions and anchors until it is killed.

``python -m tests.support.crash_worker STATE_DIR [--die-after METHOD]`` (from the repository
root) runs one worker on STATE_DIR, which holds what ``tests/fault/test_crash_recovery.py`` set
up: the embedded chain file, the SQLite index, the blob store and ``crash-state.json`` (the
BROKER and consumer keys, the deployment record, the dataset and its grant).

A worker opens the state like a restarting broker (reconciling grant uses with the chain),
prints ``READY <log size>``, then loops: a grantee-signed ``fetch``, the grantee-signed
delivery ``receipt`` naming that fetch's nonce, and every few pairs an anchoring pass (anchor
the head, mint credits).
It prints ``ACK <seq> <action>`` only after the service call returned, i.e. after the
action's database transaction committed, and ``ANCHOR <tree size> <credited>`` after a pass.
Each line is flushed as one ``write``, so every ACK the parent reads is a promise the broker
made before it was killed.

``--die-after METHOD`` makes the worker SIGKILL itself right after its first successful
``LedgerChain.METHOD`` transaction (``record_use``, ``anchor`` or ``mint_batch``): the chain
has moved on, the database transaction around it has not committed. Random kills land there
only now and then; these runs make sure each such window is exercised.

``python -m tests.support.crash_worker --launcher`` is a fork server, so twenty-odd runs do not pay
two seconds of imports each: it imports everything once, then for each ``RUN STATE_DIR
[METHOD]`` line on stdin forks a fresh worker process (which opens the state itself), prints
``STARTED <pid>``, and once the worker is dead ``EXIT <pid> <returncode>`` (``-9`` after a
SIGKILL). Workers share the launcher's stdout; the launcher never opens the state, so a
worker starts exactly as a separately executed broker would.

The consumer does not decrypt the ciphertext before signing the receipt: the test is about
the log, anchors and credits surviving a crash, not about the exchange's cryptography (which
tests/service/test_exchange.py covers).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import Any

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.chain.client import LedgerChain
from ledger.chain.embedded import EmbeddedChain
from ledger.chain.models import Deployment
from ledger.protocol.actions import ActionName, SignedAction, new_nonce, sign_action
from ledger.services import exchange, flowlog
from ledger.services.anchoring import Anchorer
from ledger.services.context import Ledger
from ledger.store.blobs import FileBlobStore
from ledger.store.db import Database

STATE_FILE = "crash-state.json"
CHAIN_FILE = "chain.sqlite"
DB_FILE = "broker.db"
BLOBS = "blobs"
ANCHOR_EVERY_PAIRS = 3
DIE_AFTER = ("record_use", "anchor", "mint_batch")


@dataclass(frozen=True)
class CrashState:
    """What the worker needs besides the stores: keys, deployment, dataset and grant."""

    broker_key: str  # the BROKER key: it relays fetches, anchors and mints
    consumer_key: str
    deployment: dict[str, Any]
    dataset_id: int
    content_hash: str
    generation: int

    def save(self, directory: Path) -> None:
        (directory / STATE_FILE).write_text(json.dumps(self.__dict__, indent=2))

    @classmethod
    def load(cls, directory: Path) -> CrashState:
        return cls(**json.loads((directory / STATE_FILE).read_text()))

    @property
    def broker(self) -> LocalAccount:
        account: LocalAccount = Account.from_key(self.broker_key)
        return account

    @property
    def consumer(self) -> LocalAccount:
        account: LocalAccount = Account.from_key(self.consumer_key)
        return account


def open_ledger(directory: Path) -> Ledger:
    """Open the broker state in ``directory`` (takes the chain file's exclusive lock)."""
    state = CrashState.load(directory)
    backend = EmbeddedChain(directory / CHAIN_FILE)
    try:
        deployment = Deployment(**state.deployment)
        chain = LedgerChain(backend, deployment, state.broker)
        db = Database(f"sqlite:///{directory / DB_FILE}")
    except BaseException:
        backend.close()
        raise
    return Ledger(chain=chain, db=db, blobs=FileBlobStore(directory / BLOBS))


def close_ledger(ledger: Ledger) -> None:
    ledger.db.dispose()
    ledger.chain.backend.close()


def signed(
    ledger: Ledger, account: LocalAccount, action: ActionName, **fields: Any
) -> SignedAction:
    message = {"nonce": new_nonce(), "deadline": int(time.time()) + 3600, **fields}
    return sign_action(account, action, message, ledger.domains)


def _die_after(method: str) -> None:
    """Patch ``LedgerChain.method`` to SIGKILL this process once its transaction is mined."""
    original: Callable[..., Any] = getattr(LedgerChain, method)

    @wraps(original)
    def then_die(self: LedgerChain, *args: Any, **kwargs: Any) -> Any:
        original(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(LedgerChain, method, then_die)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def run(directory: Path) -> None:
    state = CrashState.load(directory)
    ledger = open_ledger(directory)
    exchange.reconcile_uses(ledger)
    anchorer = Anchorer(ledger.db, ledger.chain)
    consumer = state.consumer
    with ledger.db.session() as session:
        say(f"READY {flowlog.size(session)}")
    pairs = 0
    while True:
        fetch = signed(
            ledger, consumer, "fetch", grantee=consumer.address, datasetId=state.dataset_id
        )
        fetched = exchange.fetch(ledger, fetch)
        say(f"ACK {fetched.log_seq} fetch")
        delivery = exchange.acknowledge(
            ledger,
            signed(
                ledger,
                consumer,
                "receipt",
                consumer=consumer.address,
                datasetId=state.dataset_id,
                contentHash=state.content_hash,
                grantGeneration=fetched.generation,
                fetchNonce=fetch.message["nonce"],
            ),
        )
        say(f"ACK {delivery.log_seq} receipt")
        pairs += 1
        if pairs % ANCHOR_EVERY_PAIRS == 0:
            done = anchorer.run_once()
            say(f"ANCHOR {done.tree_size} {done.credited}")


def _worker(directory: Path, die_after: str | None) -> None:
    if die_after:
        _die_after(die_after)
    run(directory)


def _launcher() -> None:
    """Fork one worker per ``RUN`` line on stdin; report its pid and how it ended."""
    for line in sys.stdin:
        words = line.split()
        if not words or words[0] != "RUN":
            continue
        directory, die_after = Path(words[1]), words[2] if len(words) > 2 else None
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:  # the worker: never returns into the launcher's loop
            code = 1
            try:
                _worker(directory, die_after)
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stderr.flush()
                os._exit(code)
        say(f"STARTED {pid}")
        _, status = os.waitpid(pid, 0)
        say(f"EXIT {pid} {os.waitstatus_to_exitcode(status)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("state_dir", type=Path, nargs="?")
    parser.add_argument("--die-after", choices=DIE_AFTER)
    parser.add_argument("--launcher", action="store_true", help="fork server (see module doc)")
    args = parser.parse_args(argv)
    if args.launcher:
        _launcher()
    elif args.state_dir is None:
        parser.error("STATE_DIR is required without --launcher")
    else:
        _worker(args.state_dir, args.die_after)


if __name__ == "__main__":
    main()

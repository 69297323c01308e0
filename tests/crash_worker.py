"""A broker process for the crash test: appends signed actions and anchors until it is killed.

Run as ``python -m tests.crash_worker STATE_DIR [--die-after METHOD]`` from the repository
root. STATE_DIR holds what ``tests/test_crash_recovery.py`` set up: the embedded chain file,
the SQLite index, the blob store and ``crash-state.json`` (operator and consumer keys, the
deployment record, the dataset and its grant).

The process opens the state like a restarting broker (reconciling grant uses with the chain),
prints ``READY <log size>``, then loops: a grantee-signed ``fetch``, the grantee-signed
delivery ``receipt``, and every few pairs an anchoring pass (anchor the head, mint credits).
It prints ``ACK <seq> <action>`` only after the service call returned, i.e. after the
action's database transaction committed, and ``ANCHOR <tree size> <credited>`` after a pass.
Output is flushed line by line, so every ACK the parent reads is a promise the broker made.

The consumer does not decrypt the ciphertext before signing the receipt: the test is about
the log, anchors and credits surviving a crash, not about the exchange's cryptography (which
tests/test_exchange.py covers).

``--die-after METHOD`` makes the process SIGKILL itself right after its first successful
``LedgerChain.METHOD`` transaction (``record_use``, ``anchor`` or ``mint_batch``): the chain
has moved on, the database transaction around it has not committed. Random kills land there
only now and then; these runs make sure each such window is exercised.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
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
from ledger.log import flowlog
from ledger.log.anchorer import Anchorer
from ledger.services import exchange
from ledger.services.actions import ActionName, SignedAction, new_nonce, sign_action
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

    operator_key: str
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
    def operator(self) -> LocalAccount:
        account: LocalAccount = Account.from_key(self.operator_key)
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
        chain = LedgerChain(backend, deployment, state.operator)
        db = Database(f"sqlite:///{directory / DB_FILE}")
    except BaseException:
        backend.close()
        raise
    return Ledger(chain=chain, db=db, blobs=FileBlobStore(directory / BLOBS))


def close_ledger(ledger: Ledger) -> None:
    ledger.db.dispose()
    ledger.chain.backend.close()


def signed(ledger: Ledger, account: LocalAccount, action: ActionName, **fields: Any) -> SignedAction:
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
        fetched = exchange.fetch(
            ledger,
            signed(ledger, consumer, "fetch", grantee=consumer.address, datasetId=state.dataset_id),
        )
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
            ),
        )
        say(f"ACK {delivery.log_seq} receipt")
        pairs += 1
        if pairs % ANCHOR_EVERY_PAIRS == 0:
            done = anchorer.run_once()
            say(f"ANCHOR {done.tree_size} {done.credited}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("state_dir", type=Path)
    parser.add_argument("--die-after", choices=DIE_AFTER)
    args = parser.parse_args(argv)
    if args.die_after:
        _die_after(args.die_after)
    run(args.state_dir)


if __name__ == "__main__":
    main()

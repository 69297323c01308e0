"""The broker self-check's replay of AccessLedger events into the history of every grant
generation (``ledger.services.verify._chain_grant_history``), on hand-written events."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

from ledger.chain.models import Event
from ledger.services.context import Ledger
from ledger.services.verify import _chain_grant_history
from ledger.types import TxHash

ALICE = "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF"
BOB = "0x6813Eb9362372EEF6200f3b1dbC3f819671cBA69"


@dataclass
class FakeChain:
    """AccessLedger's events, in the order they were mined (one block each)."""

    logs: list[Event] = field(default_factory=list)

    def emit(self, name: str, **args: Any) -> None:
        block = len(self.logs) + 1
        self.logs.append(Event("AccessLedger", name, args, block, TxHash(f"0x{block:064x}"), 0))

    def events(self, contract: str, name: str) -> list[Event]:
        assert contract == "AccessLedger"
        return [e for e in self.logs if e.name == name]


@dataclass
class FakeLedger:
    chain: FakeChain


def history(chain: FakeChain) -> dict[tuple[int, str, int], tuple[int, bool]]:
    return _chain_grant_history(cast(Ledger, FakeLedger(chain)))


def test_each_generation_keeps_its_own_uses_and_revocation() -> None:
    chain = FakeChain()
    chain.emit("AccessGranted", datasetId=1, grantee=BOB.lower(), generation=1)
    chain.emit("AccessUsed", datasetId=1, grantee=BOB, uses=1)
    chain.emit("AccessUsed", datasetId=1, grantee=BOB, uses=2)
    chain.emit("AccessRevoked", datasetId=1, grantee=BOB)
    chain.emit("AccessGranted", datasetId=1, grantee=BOB, generation=2)
    chain.emit("AccessUsed", datasetId=1, grantee=BOB, uses=1)
    assert history(chain) == {(1, BOB, 1): (2, True), (1, BOB, 2): (1, False)}


def test_a_new_generation_starts_unused_and_not_revoked() -> None:
    """A re-grant without a revocation opens a clean generation; the old one keeps its count."""
    chain = FakeChain()
    chain.emit("AccessGranted", datasetId=3, grantee=ALICE, generation=1)
    chain.emit("AccessUsed", datasetId=3, grantee=ALICE, uses=1)
    chain.emit("AccessGranted", datasetId=3, grantee=ALICE, generation=2)
    assert history(chain) == {(3, ALICE, 1): (1, False), (3, ALICE, 2): (0, False)}


def test_pairs_are_kept_apart_and_events_without_a_grant_are_ignored() -> None:
    chain = FakeChain()
    chain.emit("AccessUsed", datasetId=2, grantee=BOB, uses=1)  # never granted: no history
    chain.emit("AccessRevoked", datasetId=2, grantee=BOB)
    chain.emit("AccessGranted", datasetId=1, grantee=BOB, generation=1)
    chain.emit("AccessGranted", datasetId=2, grantee=ALICE, generation=1)
    chain.emit("AccessUsed", datasetId=1, grantee=BOB, uses=1)
    chain.emit("AccessRevoked", datasetId=2, grantee=ALICE)
    assert history(chain) == {(1, BOB, 1): (1, False), (2, ALICE, 1): (0, True)}

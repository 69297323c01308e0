"""The raw material of a local audit: the broker's records and heads, the member's chain view.

Thin adapters from :class:`~ledger.client.sdk.BrokerClient` and a read-only
:class:`~ledger.chain.client.LedgerChain` to the sources :mod:`ledger.audit` verifies from.
The broker serves bytes and proofs only; every judgement is made by :func:`ledger.audit.verify`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ledger.audit import ChainEvent
from ledger.protocol.wire import CheckpointPublic, LogRecordsPublic, Proof

if TYPE_CHECKING:
    from ledger.chain.client import LedgerChain
    from ledger.client.sdk import BrokerClient


class BrokerLog:
    """The broker's log as a :class:`ledger.audit.LogSource` (records need an overseer)."""

    def __init__(self, client: BrokerClient) -> None:
        self.client = client

    def checkpoint(self) -> str:
        return self.client.call("GET", "/v1/log/checkpoint", CheckpointPublic).note

    def consistency(self, old_size: int, new_size: int) -> list[bytes]:
        return self.client.consistency(old_size, new_size)

    def inclusion(self, seq: int, tree_size: int) -> list[bytes]:
        proof = self.client.call(
            "GET",
            "/v1/log/proofs/inclusion",
            Proof,
            params={"seq": seq, "tree_size": tree_size},
        )
        return [bytes.fromhex(h[2:]) for h in proof.path]

    def records(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        page = self.client.call(
            "GET", "/v1/log/records", LogRecordsPublic, params={"after": after, "limit": limit}
        )
        return [(r.seq, r.leaf.encode()) for r in page.data]


class ChainEvents:
    """A read-only :class:`LedgerChain` as a :class:`ledger.audit.ChainSource`.

    ``broker`` is the pinned BROKER address: a checkpoint must be signed by that key, and the
    chain must still grant it the BROKER role.
    """

    def __init__(self, chain: LedgerChain, *, broker: str) -> None:
        self.chain = chain
        self.broker = broker

    def latest_block(self) -> int:
        return self.chain.block_number()

    def events(
        self, contract: str, event: str, *, from_block: int, to_block: int
    ) -> list[ChainEvent]:
        start = max(from_block, self.chain.deployment.block_number)
        if to_block < start:
            return []
        return list(self.chain.events(contract, event, from_block=start, to_block=to_block))

    def is_broker(self, address: str) -> bool:
        from ledger.chain.client import BROKER_ROLE

        if address.lower() != self.broker.lower():
            return False
        return self.chain.has_role("FlowLog", BROKER_ROLE, address)


def plain(value: Any) -> Any:
    """JSON-friendly form of trace values (bytes as 0x-hex)."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return value

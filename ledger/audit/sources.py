"""Where an audit reads its raw material: the broker's log and a chain node the member chose.

Both are small protocols the caller implements: :class:`LogSource` over the broker's HTTP API
(``/v1/log/...``), :class:`ChainSource` as a thin adapter over ``ledger.chain.LedgerChain``
(read-only, through the member's own node). Nothing either returns is trusted: the verifier
checks every answer against signatures, the signed head and the chain.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Protocol

#: Most records a page holds (``LogSource.records``).
PAGE_SIZE: Final = 1000


class LogSource(Protocol):
    """The broker's flow log, as it serves it."""

    def checkpoint(self) -> str:
        """The latest signed checkpoint note (``ledger.protocol.checkpoint``)."""
        ...

    def consistency(self, old_size: int, new_size: int) -> Sequence[bytes]:
        """RFC 6962 consistency proof from the tree of ``old_size`` to ``new_size`` leaves."""
        ...

    def inclusion(self, seq: int, tree_size: int) -> Sequence[bytes]:
        """RFC 6962 audit path of record ``seq`` in the tree of ``tree_size`` leaves."""
        ...

    def records(self, after: int, limit: int) -> Sequence[tuple[int, bytes]]:
        """Up to ``limit`` (at most :data:`PAGE_SIZE`) records with ``seq > after``, in order,
        as ``(seq, raw leaf bytes)``."""
        ...


class ChainEvent(Protocol):
    """A decoded contract event (``ledger.chain.models.Event`` satisfies it)."""

    @property
    def name(self) -> str: ...

    @property
    def args(self) -> Mapping[str, Any]: ...

    @property
    def block_number(self) -> int: ...

    @property
    def tx_hash(self) -> str: ...


class ChainSource(Protocol):
    """The deployment's contracts, read through a node the member chose.

    ``events`` takes a contract by its Solidity name (``"AccessLedger"``) and an event name
    (``"AccessUsed"``), an inclusive block range, and answers oldest first, with arguments as
    ``LedgerChain.events`` gives them (addresses as text, ``bytes32`` as bytes, arrays as
    tuples). Events may also carry ``log_index`` (order inside a block). ``is_broker`` is
    ``hasRole(BROKER_ROLE, address)`` on FlowLog.
    """

    def latest_block(self) -> int:
        """The node's latest block number."""
        ...

    def events(
        self, contract: str, event: str, *, from_block: int, to_block: int
    ) -> Sequence[ChainEvent]:
        """Events of one kind mined in blocks ``from_block`` to ``to_block`` (inclusive)."""
        ...

    def is_broker(self, address: str) -> bool:
        """Whether ``address`` holds the BROKER role on FlowLog."""
        ...

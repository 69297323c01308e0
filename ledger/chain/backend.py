"""The chain backend seam: one small abstract class, two implementations.

A backend owns a ready :class:`web3.Web3` instance and the resources behind it. Everything
above this module (the typed contract client, services) talks to the chain only through
``backend.w3``: transactions are signed locally with an eth-account ``LocalAccount`` and sent
with ``w3.eth.send_raw_transaction``, so no backend ever holds a member's key.

- :class:`ledger.chain.embedded.EmbeddedChain` -- py-evm in process, persisted in one SQLite file.
- :class:`ledger.chain.rpc.RpcChain` -- any EVM JSON-RPC node over HTTP (anvil, geth, Besu).

Both surface contract reverts the same way (web3's ``ContractLogicError`` family with the raw
revert data in ``.data``), so the client above needs no backend-specific branches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from types import TracebackType
from typing import Any, ClassVar, Self

from web3 import Web3


class ChainBackend(ABC):
    """A connection to one EVM chain, closed with :meth:`close` or a ``with`` block."""

    #: ``"embedded"`` or ``"rpc"``; used in settings, logs and error messages.
    name: ClassVar[str]

    @property
    @abstractmethod
    def w3(self) -> Web3:
        """The ready Web3 instance; valid until :meth:`close`."""

    @property
    def chain_id(self) -> int:
        """The EIP-155 chain id that transactions must be signed for."""
        return int(self.w3.eth.chain_id)

    def ping(self, *, timeout: float = 2.0) -> int:
        """The latest block number, asked once within ``timeout`` (health checks).

        Raises :class:`~ledger.errors.ChainUnavailable` (no endpoint in its message) when the
        node does not answer; no retries, so a health check answers promptly.
        """
        from ledger.chain.tx import translated_errors

        with translated_errors():
            return int(self.w3.eth.block_number)

    def relay(self, method: str, params: list[Any]) -> dict[str, Any]:
        """One JSON-RPC call answered as a node answers it (the broker's read-only relay)."""
        answer = self.w3.provider.make_request(method, params)  # type: ignore[arg-type]
        return dict(answer)

    @abstractmethod
    def close(self) -> None:
        """Release the node connection or database; calling it twice is harmless."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

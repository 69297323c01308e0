"""A read-only chain backend whose JSON-RPC calls go through the broker's relay.

Only for a broker on the embedded chain, where members have no node of their own: every answer
is the broker's word (:class:`ledger.client.trust.ChainView` says so). Calls are signed member
requests to ``POST /v1/chain/rpc``, which relays a few read-only methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from web3 import Web3
from web3.providers.base import JSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from ledger.chain.backend import ChainBackend

Relay = Callable[[str, list[Any]], dict[str, Any]]


class _RelayProvider(JSONBaseProvider):
    def __init__(self, relay: Relay) -> None:
        super().__init__()
        self._relay = relay

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        answer = self._relay(str(method), list(params or []))
        return answer  # type: ignore[return-value]  # a JSON-RPC response dict

    def is_connected(self, show_traceback: bool = False) -> bool:
        return True


class BrokerRelayChain(ChainBackend):
    """The broker's chain, read through its read-only relay (no independent view)."""

    name: ClassVar[str] = "broker-relay"

    def __init__(self, relay: Relay) -> None:
        self._w3 = Web3(_RelayProvider(relay))

    @property
    def w3(self) -> Web3:
        return self._w3

    def close(self) -> None:
        """Nothing to release: the SDK owns the HTTP client."""

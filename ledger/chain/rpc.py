"""A chain reached over HTTP JSON-RPC: anvil in tests, geth or Hyperledger Besu in production.

The node is asked for its chain id and latest block at construction, so a wrong URL fails
at start-up with :class:`~ledger.errors.ChainUnavailable` instead of at the first request.
Besu's QBFT and other proof-of-authority chains put more than 32 bytes in a block's
``extraData``; when the latest block shows that, web3's ``ExtraDataToPOAMiddleware`` is added
so that ``w3.eth.get_block`` keeps working (the extra bytes move to ``proofOfAuthorityData``).
"""

from __future__ import annotations

from typing import Any, ClassVar
from urllib.parse import urlsplit

from web3 import HTTPProvider, Web3
from web3.exceptions import Web3Exception
from web3.middleware import ExtraDataToPOAMiddleware

from ledger.chain.backend import ChainBackend
from ledger.errors import ChainUnavailable, ConfigurationError
from ledger.redact import mask_url

__all__ = ["RpcChain"]

# The construction probe waits at most this long even when ``timeout`` is larger, and does
# not retry: a node that is down should be reported at once, not after web3's back-off.
_PROBE_TIMEOUT_SECONDS = 5.0


class RpcChain(ChainBackend):
    """An EVM node at ``url`` (``http://`` or ``https://``); ``timeout`` applies per request."""

    name: ClassVar[str] = "rpc"

    def __init__(self, url: str, *, timeout: float = 30) -> None:
        # Never show credentials or an API-key path from the URL in messages.
        self._shown = mask_url(url, keep_path=False)
        try:
            parts = urlsplit(url)
            valid = parts.scheme in ("http", "https") and bool(parts.hostname)
            parts.port  # noqa: B018 - raises ValueError for a port that is not a number
        except ValueError:
            valid = False
        if not valid:
            raise ConfigurationError(
                f"chain RPC URL must be http(s)://host[:port][/path], got {self._shown}"
            )
        if timeout <= 0:
            raise ConfigurationError("chain RPC timeout must be positive")
        self._url = url
        chain_id, latest = self._probe(min(timeout, _PROBE_TIMEOUT_SECONDS))
        self._chain_id = chain_id
        self._w3 = Web3(HTTPProvider(url, request_kwargs={"timeout": timeout}))
        if len(bytes.fromhex(str(latest.get("extraData", "0x"))[2:])) > 32:
            self._w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)

    @property
    def w3(self) -> Web3:
        return self._w3

    @property
    def chain_id(self) -> int:
        return self._chain_id

    @property
    def url(self) -> str:
        """The node URL as configured (may hold credentials: do not log it)."""
        return self._url

    def ping(self, *, timeout: float = 2.0) -> int:
        provider = HTTPProvider(
            self._url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
        )
        try:
            answer = provider.make_request("eth_blockNumber", [])
        except (OSError, Web3Exception, ValueError) as exc:
            raise ChainUnavailable(f"chain node not reachable ({type(exc).__name__})") from None
        if "error" in answer or not isinstance(answer.get("result"), str):
            raise ChainUnavailable("chain node did not answer eth_blockNumber")
        return int(str(answer["result"]), 16)

    def close(self) -> None:
        """Nothing to release: HTTP sessions are pooled by web3 and closed at exit."""

    def _probe(self, timeout: float) -> tuple[int, dict[str, Any]]:
        provider = HTTPProvider(
            self._url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
        )
        try:
            chain_id = provider.make_request("eth_chainId", [])
            latest = provider.make_request("eth_getBlockByNumber", ["latest", False])
        except (OSError, Web3Exception, ValueError) as exc:
            # requests' ConnectionError and Timeout are OSErrors; a non-JSON answer is a
            # ValueError. Either way nothing usable answers at this address.
            raise ChainUnavailable(
                f"no Ethereum JSON-RPC node answers at {self._shown}: {type(exc).__name__}"
            ) from exc
        if "error" in chain_id or "error" in latest or not isinstance(latest.get("result"), dict):
            error = chain_id.get("error") or latest.get("error") or "no latest block"
            raise ChainUnavailable(f"the node at {self._shown} refused a basic query: {error}")
        return int(str(chain_id["result"]), 16), dict(latest["result"])

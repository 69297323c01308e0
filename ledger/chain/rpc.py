"""A chain reached over JSON-RPC: anvil in tests, geth or Hyperledger Besu in production.

Over HTTP (``http://`` / ``https://``) or over a node's IPC socket on the same host
(``file:///path/to/node.ipc``, as web3 spells it; anvil ``--ipc``, geth's ``geth.ipc``, and
the embedded chain a broker serves to its own worker processes, ``ledger.chain.siblings``).

The node is asked for its chain id and latest block at construction, so a wrong URL fails
at start-up with :class:`~ledger.errors.ChainUnavailable` instead of at the first request.
Besu's QBFT and other proof-of-authority chains put more than 32 bytes in a block's
``extraData``; when the latest block shows that, web3's ``ExtraDataToPOAMiddleware`` is added
so that ``w3.eth.get_block`` keeps working (the extra bytes move to ``proofOfAuthorityData``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from web3 import HTTPProvider, IPCProvider, Web3
from web3.exceptions import Web3Exception
from web3.middleware import ExtraDataToPOAMiddleware
from web3.providers.base import JSONBaseProvider
from web3.types import RPCEndpoint

from ledger.chain.backend import ChainBackend
from ledger.errors import ChainUnavailable, ConfigurationError
from ledger.redact import mask_url

__all__ = ["RpcChain"]

# The construction probe waits at most this long even when ``timeout`` is larger, and does
# not retry: a node that is down should be reported at once, not after web3's back-off.
_PROBE_TIMEOUT_SECONDS = 5.0


class RpcChain(ChainBackend):
    """An EVM node at ``url`` (``http(s)://`` or ``file:///…ipc``); ``timeout`` per request."""

    name: ClassVar[str] = "rpc"

    def __init__(self, url: str, *, timeout: float = 30) -> None:
        # Never show credentials or an API-key path from the URL in messages.
        self._ipc_path = _ipc_path(url)
        self._shown = url if self._ipc_path is not None else mask_url(url, keep_path=False)
        if self._ipc_path is None:
            try:
                parts = urlsplit(url)
                valid = parts.scheme in ("http", "https") and bool(parts.hostname)
                parts.port  # noqa: B018 - raises ValueError for a port that is not a number
            except ValueError:
                valid = False
            if not valid:
                raise ConfigurationError(
                    "chain RPC URL must be http(s)://host[:port][/path] or "
                    f"file:///path/to/node.ipc, got {self._shown}"
                )
        if timeout <= 0:
            raise ConfigurationError("chain RPC timeout must be positive")
        self._url = url
        chain_id, latest = self._probe(min(timeout, _PROBE_TIMEOUT_SECONDS))
        self._chain_id = chain_id
        self._w3 = Web3(self._provider(timeout, retries=True))
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
        provider = self._provider(timeout, retries=False)
        try:
            answer = provider.make_request(RPCEndpoint("eth_blockNumber"), [])
        except (OSError, Web3Exception, ValueError) as exc:
            raise ChainUnavailable(f"chain node not reachable ({type(exc).__name__})") from None
        finally:
            _release(provider)
        if "error" in answer or not isinstance(answer.get("result"), str):
            raise ChainUnavailable("chain node did not answer eth_blockNumber")
        return int(str(answer["result"]), 16)

    def close(self) -> None:
        """Close an IPC connection; HTTP sessions are pooled by web3 and closed at exit."""
        _release(self._w3.provider)

    def _provider(self, timeout: float, *, retries: bool) -> JSONBaseProvider:
        if self._ipc_path is not None:
            # One connection, requests one at a time under the provider's lock.
            return IPCProvider(self._ipc_path, timeout=timeout)  # type: ignore[arg-type]
        once: dict[str, Any] = {} if retries else {"exception_retry_configuration": None}
        return HTTPProvider(self._url, request_kwargs={"timeout": timeout}, **once)

    def _probe(self, timeout: float) -> tuple[int, dict[str, Any]]:
        provider = self._provider(timeout, retries=False)
        try:
            chain_id = provider.make_request(RPCEndpoint("eth_chainId"), [])
            latest = provider.make_request(RPCEndpoint("eth_getBlockByNumber"), ["latest", False])
        except (OSError, Web3Exception, ValueError) as exc:
            # requests' ConnectionError and Timeout are OSErrors (so are a missing or refused
            # socket file); a non-JSON answer is a ValueError. Nothing usable answers there.
            raise ChainUnavailable(
                f"no Ethereum JSON-RPC node answers at {self._shown}: {type(exc).__name__}"
            ) from exc
        finally:
            _release(provider)
        if "error" in chain_id or "error" in latest or not isinstance(latest.get("result"), dict):
            error = chain_id.get("error") or latest.get("error") or "no latest block"
            raise ChainUnavailable(f"the node at {self._shown} refused a basic query: {error}")
        return int(str(chain_id["result"]), 16), dict(latest["result"])


def _ipc_path(url: str) -> str | None:
    """The socket path of a ``file:///abs/path`` URL (web3's spelling of IPC), else ``None``."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme != "file":
        return None
    path = unquote(parts.path)
    if parts.netloc not in ("", "localhost") or not Path(path).is_absolute():
        raise ConfigurationError(
            f"an IPC chain URL is file:///absolute/path/to/node.ipc, got {url}"
        )
    return path


def _release(provider: Any) -> None:
    """Close an IPC provider's socket (web3 keeps it open until garbage collection)."""
    persistent = getattr(provider, "_socket", None)
    sock = getattr(persistent, "sock", None)
    if persistent is not None and sock is not None:
        sock.close()
        persistent.sock = None

"""Signing, sending and decoding: the one place that touches raw web3 results.

Transactions are signed locally (eth-account) and sent raw, so the same code drives the embedded
py-evm chain and any JSON-RPC node. Every call is first estimated: a revert surfaces there with
its data, which is decoded into :class:`ledger.errors.ContractRevert` carrying the custom error's
name and arguments, and nothing is sent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import Any, Final, Protocol, TypeVar

import requests
from eth_account.signers.local import LocalAccount
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.exceptions import ContractLogicError, TimeExhausted, Web3RPCError

from ledger.chain.abi import artifact, decode_error, event_table
from ledger.chain.models import Event, TxResult
from ledger.errors import ChainError, ChainUnavailable, ContractRevert
from ledger.protocol.codes import ErrorCode
from ledger.redact import scrub_endpoints
from ledger.types import TxHash

T = TypeVar("T")
GAS_MARGIN = 1.25


def plain(value: Any) -> Any:
    """web3 output (HexBytes, AttributeDict, lists) as plain Python values."""
    if isinstance(value, HexBytes | bytearray):
        return bytes(value)
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return tuple(plain(v) for v in value)
    return value


def _revert_bytes(exc: ContractLogicError) -> bytes:
    data = exc.data
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, str) and data.startswith("0x"):
        try:
            return bytes.fromhex(data[2:])
        except ValueError:
            return b""
    return b""


@contextmanager
def translated_errors() -> Iterator[None]:
    """Turn web3 and transport errors into the library's error tree."""
    try:
        yield
    except ContractLogicError as exc:
        data = _revert_bytes(exc)
        if data:
            name, args = decode_error(data)
        else:
            name, args = "Reverted", {"message": str(exc.message or exc)}
        raise ContractRevert(name, args) from None
    except (requests.ConnectionError, ConnectionError, TimeoutError, requests.Timeout) as exc:
        # The transport's text names the node's host, port and path (where API keys live):
        # the kind of failure is all that leaves this module.
        raise ChainUnavailable(f"chain node not reachable ({_kind(exc)})") from None
    except TimeExhausted:
        raise ChainUnavailable("transaction not mined in time") from None
    except Web3RPCError as exc:
        # The node answered but refused (nonce too low, underpriced, pool full, ...): a
        # passing condition, answered 503 with a code, never a server error.
        raise ChainError(
            f"the chain node refused the request: {scrub_endpoints(_rpc_message(exc))}",
            code=ErrorCode.CHAIN_REFUSED,
        ) from None


#: The JSON-RPC error code nodes (and the broker's relay) answer for a log query over too many
#: blocks or with too many results (EIP-1474 "limit exceeded").
LIMIT_EXCEEDED: Final = -32005


class TooManyLogs(ChainError):
    """The node refused an ``eth_getLogs`` as too wide: ask for fewer blocks."""

    code = ErrorCode.CHAIN_REFUSED


def _kind(exc: BaseException) -> str:
    if isinstance(exc, requests.Timeout | TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError) or "refused" in str(exc).lower():
        return "connection refused"
    return "connection failed"


def _rpc_error(exc: Web3RPCError) -> Mapping[str, Any] | None:
    """The node's JSON-RPC error object (``{'code': -32003, 'message': 'nonce too low'}``)."""
    answer = getattr(exc, "rpc_response", None)
    error = answer.get("error") if isinstance(answer, Mapping) else None
    return error if isinstance(error, Mapping) else None


def _rpc_message(exc: Web3RPCError) -> str:
    """The node's own error message and code."""
    error = _rpc_error(exc)
    if error is None:
        return str(exc)
    return f"{error.get('message', '')} (code {error.get('code', '?')})"


class NonceSource(Protocol):
    """Hands out a sender's nonces when several processes send from one key.

    ``reserve(sender, pending)`` holds the sender's nonce for the ``with`` block, given the
    node's pending count (``pending()``) and what other processes used; the nonce is consumed
    only when the block ends normally (the transaction reached the node).
    """

    def reserve(self, sender: str, pending: Callable[[], int]) -> AbstractContextManager[int]:
        """Lock ``sender``'s nonce across processes and yield the next one."""
        ...


class Transactor:
    """Sends contract transactions from local accounts and decodes the results.

    Nonces are tracked locally per sender under a lock, so several threads of the broker can
    relay at once without asking the node for each nonce (and without colliding).
    """

    def __init__(self, w3: Web3, contracts: Mapping[str, Contract] | None = None) -> None:
        self.w3 = w3
        self._by_address: dict[str, tuple[str, Contract]] = {}
        self.watch(contracts or {})
        self._nonces: dict[str, int] = {}
        self._lock = threading.Lock()
        self._chain_id: int | None = None
        self._shared: NonceSource | None = None

    def share_nonces(self, source: NonceSource | None) -> None:
        """Take nonces from ``source`` (shared by replicas) instead of this process's cache."""
        self._shared = source

    @property
    def chain_id(self) -> int:
        if self._chain_id is None:
            with translated_errors():
                self._chain_id = int(self.w3.eth.chain_id)
        return self._chain_id

    def call(self, fn: Callable[[], T]) -> T:
        """Run a read-only call with errors translated."""
        with translated_errors():
            return fn()

    def logs(self, event: Any, first: int, last: int, filters: dict[str, Any] | None) -> list[Any]:
        """``event``'s logs in blocks ``first``..``last``, decoded; :class:`TooManyLogs` when
        the node refuses the range as too wide."""
        with translated_errors():
            try:
                found = event.get_logs(from_block=first, to_block=last, argument_filters=filters)
            except Web3RPCError as exc:
                if (_rpc_error(exc) or {}).get("code") == LIMIT_EXCEEDED:
                    raise TooManyLogs(f"the node refused blocks {first}-{last}") from None
                raise
            return list(found)

    def send(self, fn: ContractFunction, account: LocalAccount) -> TxResult:
        """Estimate, sign, send and wait for one transaction; raise ContractRevert on revert."""
        result, _ = self._send(fn, account)
        return result

    def deploy(
        self, constructor: Any, account: LocalAccount, *, name: str | None = None
    ) -> tuple[str, TxResult]:
        """Deploy a contract; returns its address and the transaction.

        With ``name`` (one of our contracts) the new contract is watched from now on and the
        events its constructor emitted (role grants, initial rules) are decoded into the result.
        """
        result, receipt = self._send(constructor, account)
        address = receipt.get("contractAddress")
        if not address:
            raise ChainError("deployment transaction created no contract")
        checksummed = Web3.to_checksum_address(address)
        if name is not None:
            self.watch({name: self.w3.eth.contract(address=checksummed, abi=artifact(name).abi)})
            result = replace(result, events=tuple(self.decode_logs(receipt["logs"])))
        return checksummed, result

    def _send(self, fn: Any, account: LocalAccount) -> tuple[TxResult, Any]:
        try:
            return self._send_once(fn, account)
        except ChainError as exc:
            # Another client (a CLI next to the broker) used this key: resync once and retry.
            if isinstance(exc, ContractRevert) or "nonce" not in str(exc).lower():
                raise
            with self._lock:
                self._nonces.pop(account.address, None)
            return self._send_once(fn, account)

    def _send_once(self, fn: Any, account: LocalAccount) -> tuple[TxResult, Any]:
        sender = account.address
        with translated_errors():
            gas = int(fn.estimate_gas({"from": sender}) * GAS_MARGIN)
            with self._nonce_for(sender) as nonce:
                tx = fn.build_transaction(
                    {
                        "from": sender,
                        "nonce": nonce,
                        "gas": gas,
                        "chainId": self.chain_id,
                        **self._fees(),
                    }
                )
                signed = account.sign_transaction(tx)
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        if receipt["status"] != 1:
            self._raise_for_failed(tx, int(receipt["blockNumber"]))
        result = TxResult(
            tx_hash=TxHash("0x" + bytes(receipt["transactionHash"]).hex()),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
            events=tuple(self.decode_logs(receipt["logs"])),
        )
        return result, receipt

    def send_value(self, account: LocalAccount, to: str, value: int) -> TxResult:
        """Plain value transfer (funding a member that sends its own transactions)."""
        with translated_errors():
            with self._nonce_for(account.address) as nonce:
                tx: dict[str, Any] = {
                    "from": account.address,
                    "to": Web3.to_checksum_address(to),
                    "value": value,
                    "gas": 21000,
                    "nonce": nonce,
                    "chainId": self.chain_id,
                    **self._fees(),
                }
                signed = account.sign_transaction(tx)
                tx_hash = self.w3.eth.send_raw_transaction(signed.raw_transaction)
            receipt = self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=120)
        return TxResult(
            tx_hash=TxHash("0x" + bytes(receipt["transactionHash"]).hex()),
            block_number=int(receipt["blockNumber"]),
            gas_used=int(receipt["gasUsed"]),
        )

    def decode_logs(self, logs: Any) -> list[Event]:
        """Decode the logs our contracts emitted; foreign logs are skipped."""
        events: list[Event] = []
        table = event_table()
        for log in logs:
            owner = self._by_address.get(str(log["address"]).lower())
            if owner is None or not log["topics"]:
                continue
            name, contract = owner
            spec = table.get((name, bytes(log["topics"][0])))
            if spec is None:
                continue
            decoded = getattr(contract.events, spec.name)().process_log(log)
            events.append(
                Event(
                    contract=name,
                    name=spec.name,
                    args=plain(decoded["args"]),
                    block_number=int(log["blockNumber"]),
                    tx_hash=TxHash("0x" + bytes(log["transactionHash"]).hex()),
                    log_index=int(log["logIndex"]),
                )
            )
        return events

    def watch(self, contracts: Mapping[str, Contract]) -> None:
        """Decode events of these contracts in receipts from now on."""
        for name, contract in contracts.items():
            self._by_address[contract.address.lower()] = (name, contract)

    @contextmanager
    def _nonce_for(self, sender: str) -> Iterator[int]:
        """The sender's next nonce, held until the block hands the transaction to the node.

        One sender at a time in this process; with a shared source (several replicas, one
        key) also across processes, the nonce taken as the larger of the node's pending count
        and what the source recorded. A send that fails releases the nonce unused.
        """
        with self._lock:
            if self._shared is not None:
                checksummed = Web3.to_checksum_address(sender)
                with self._shared.reserve(
                    sender,
                    lambda: int(self.w3.eth.get_transaction_count(checksummed, "pending")),
                ) as nonce:
                    yield nonce
                return
            nonce = self._next_nonce(sender)
            try:
                yield nonce
            except BaseException:
                self._nonces.pop(sender, None)  # resync from the node next time
                raise
            self._nonces[sender] = nonce + 1

    def _next_nonce(self, sender: str) -> int:
        if sender not in self._nonces:
            self._nonces[sender] = int(
                self.w3.eth.get_transaction_count(Web3.to_checksum_address(sender), "pending")
            )
        return self._nonces[sender]

    def _fees(self) -> dict[str, int]:
        block = self.w3.eth.get_block("latest")
        base = int(block.get("baseFeePerGas", 0) or 0)
        if not base:
            return {"gasPrice": int(self.w3.eth.gas_price)}
        tip = 1
        return {"maxFeePerGas": base * 2 + tip, "maxPriorityFeePerGas": tip}

    def _raise_for_failed(self, tx: Mapping[str, Any], block_number: int) -> None:
        """Replay a mined-but-reverted transaction to recover its revert reason."""
        call = {k: tx[k] for k in ("from", "to", "data", "value") if k in tx}
        with translated_errors():
            self.w3.eth.call(call, block_number - 1)  # type: ignore[arg-type]
        raise ContractRevert("Reverted", {"block": block_number})

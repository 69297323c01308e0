"""The embedded chain: py-evm in process (through eth-tester), persisted in one SQLite file.

Persistence
    py-evm keeps every piece of chain data (headers, bodies, receipts, state trie nodes, the
    canonical-head pointer) in a key-value ``BaseDB``. :class:`_SqliteStore` is that key-value
    store over a ``kv`` table, wrapped in ``eth.db.atomic.AtomicDB`` exactly like py-evm's own
    ``MemoryDB``. Writes are buffered in memory and written in ONE SQLite transaction per mined
    block (together with the ``meta`` rows naming the new head), so the file only ever holds
    whole blocks: a process killed at any instant reopens at the last committed head.

    The file is opened in WAL mode with ``synchronous=FULL``: each block commit appends to the
    WAL and fsyncs it once. ``NORMAL`` would already survive a killed process (the OS still holds
    the written pages) but could lose the last blocks on power loss; a ledger that has told a
    member "your dataset is registered" must not forget it, and one fsync per block (about
    0.3-1 ms on the development machines) is cheap next to executing and mining the block
    (about 22 ms with eth-keys' pure-Python ECDSA, 7 ms with coincurve installed).

    ``locking_mode=EXCLUSIVE`` makes the open process the only one that can read or write the
    file until it closes, like geth's data directory lock: a second process gets
    :class:`~ledger.errors.ChainUnavailable` instead of forking the chain. The OS drops the lock
    when a process dies, so a crash never leaves the file locked.

    The first open builds the chain from genesis: only the ``funded`` addresses hold ether
    (never eth-tester's well-known test keys, which this chain does not even list as accounts).
    Later opens rebuild the chain object on the existing database, which py-evm resumes at the
    stored canonical head; ``meta`` records the chain id, the fork, the genesis parameters and
    allocation, and the head marker that is checked against the database on every open.

Blocks and time
    Each transaction is mined into its own block as it arrives (eth-tester's auto-mining), so a
    receipt is available as soon as ``send_raw_transaction`` returns. Stock eth-tester stamps a
    block with the time the *previous* block was mined (or parent + 1 s), so after an idle hour
    the next block is an hour in the past, while a burst of blocks runs ahead of the clock by a
    second per block (py-evm insists on strictly increasing timestamps). Here a block is stamped
    when its first transaction arrives with ``max(parent, wall clock + offset)``, and several
    blocks may share a second, as on anvil. :meth:`EmbeddedChain.advance_time` adds to
    the persisted offset and mines an empty block, so ``block.timestamp`` (and the ``latest``
    block that ``eth_call`` executes against) jumps forward; time never runs backwards. Like any
    chain that only mines on demand, ``eth_call`` sees the timestamp of the last mined block.

Errors
    Reverts from ``eth_call`` and ``eth_estimateGas`` are answered the way geth and anvil answer
    them (JSON-RPC error code 3, ``data`` = the raw revert bytes), so web3 raises
    ``ContractCustomError`` / ``ContractLogicError`` / ``ContractPanicError`` with ``.data``
    holding the selector and ABI-encoded arguments -- stock eth-tester loses the data in a
    string. Other refusals (bad nonce, wrong chain id, insufficient funds) become JSON-RPC errors
    that web3 raises as ``Web3RPCError``, as with a real node. A mined transaction that reverts is
    not an error: its receipt has ``status == 0``; replay it with ``eth_call`` at the parent block
    to read the revert data.

Speed
    Two of eth-tester's answers cost far more than the node's work: ``eth_getLogs`` rebuilt
    every block and receipt in its range on each call, and ``eth_estimateGas`` bisected from
    the intrinsic cost to the block gas limit (about 13 executions). Here each mined block's
    logs are kept by block hash (:class:`_IndexedTester`), and gas is estimated as geth does
    (:func:`_estimate_gas`): usually two executions, never a limit that was not seen to succeed.

Why one module (~860 lines)
    The SQLite key-value store, the block-time rule and the error translation each patch a
    different hook of the same eth-tester/py-evm objects, and their invariants (one SQLite
    transaction per mined block, the head marker, the persisted time offset) cross those hooks.
    Kept together they can be read against each other; split apart, each part would need the
    others' private state.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import Any, ClassVar, Final, cast

from eth.abc import ComputationAPI, SignedTransactionAPI, StateAPI, VirtualMachineAPI
from eth.chains.base import MiningChain
from eth.db.atomic import AtomicDB
from eth.db.backends.base import BaseDB
from eth.exceptions import HeaderNotFound, PyEVMError, Revert, VMError
from eth.exceptions import TransactionNotFound as EVMTransactionNotFound
from eth.vm.forks.prague import PragueVM
from eth.vm.spoof import SpoofTransaction
from eth_abi import abi
from eth_abi.exceptions import DecodingError
from eth_tester import EthereumTester
from eth_tester.backends.pyevm.main import (
    PyEVMBackend,
    _get_block_by_number,
    get_default_genesis_params,
)
from eth_tester.backends.pyevm.serializers import (
    serialize_transaction,
    serialize_transaction_receipt,
)
from eth_tester.exceptions import (
    BlockNotFound,
    FilterNotFound,
    SnapshotNotFound,
    TransactionFailed,
    TransactionNotFound,
)
from eth_tester.exceptions import ValidationError as TesterValidationError
from eth_tester.utils.filters import check_if_log_matches
from eth_typing import BlockNumber
from eth_utils.address import is_address, to_canonical_address, to_checksum_address
from eth_utils.exceptions import ValidationError as EthValidationError
from eth_utils.functional import to_tuple
from rlp.exceptions import RLPException
from web3 import Web3
from web3.providers.eth_tester import EthereumTesterProvider
from web3.providers.eth_tester.defaults import API_ENDPOINTS, static_return
from web3.providers.eth_tester.middleware import request_formatters as tester_request_formatters
from web3.providers.eth_tester.middleware import result_formatters as tester_result_formatters
from web3.types import RPCEndpoint, RPCResponse

from ledger.chain.backend import ChainBackend
from ledger.chain.tx import LIMIT_EXCEEDED
from ledger.errors import ChainError, ChainUnavailable, ConfigurationError
from ledger.private import private_sqlite
from ledger.protocol.codes import ErrorCode

__all__ = ["DEFAULT_CHAIN_ID", "EmbeddedChain"]

#: Chain id of a new embedded chain unless one is given (the common "local dev chain" id).
DEFAULT_CHAIN_ID: Final = 1337

_SCHEMA_VERSION: Final = "1"


def _same_second_blocks(vm_class: Any) -> Any:
    """``vm_class`` accepting a block in the same second as its parent, as anvil does.

    Ethereum requires strictly increasing timestamps, so a chain mining one block per
    transaction would run ahead of the clock by a second per block in a burst (25 tx/s for a
    minute puts it 24 minutes ahead, and EIP-712 deadlines expire early). No other client
    validates this private chain's blocks, so it allows equal timestamps; time still never
    runs backwards.
    """

    class SameSecondVM(vm_class):  # type: ignore[misc]
        @classmethod
        def validate_header(cls, header: Any, parent_header: Any) -> None:
            if parent_header is not None and header.timestamp == parent_header.timestamp:
                header = header.copy(timestamp=parent_header.timestamp + 1)
            super().validate_header(header, parent_header)

    return SameSecondVM


# The fork a chain was created with is stored, so an upgrade of py-evm whose default moves on
# still replays an existing chain with the rules its blocks were made under.
_FORKS: Final[Mapping[str, Any]] = {"prague": _same_second_blocks(PragueVM)}
_NEW_CHAIN_FORK: Final = "prague"
_LOCK_WAIT_SECONDS: Final = 2.0
_CACHE_ENTRIES: Final = 16_384
_ZERO_ADDRESS: Final = b"\x00" * 20
_FEE_FIELDS: Final = ("gas_price", "max_fee_per_gas", "max_priority_fee_per_gas")
_ERROR_STRING_SELECTOR: Final = bytes.fromhex("08c379a0")
#: What :class:`_IndexedTester` keeps: about this many log entries (some 1.5 kB each with three
#: topics), a block without logs counting as one; the least recently read blocks go first.
_INDEXED_LOGS: Final = 50_000
#: ``eth_getLogs`` answers at most this many blocks and this many logs; beyond, JSON-RPC -32005
#: ("limit exceeded", EIP-1474), as node providers answer. The chain client asks in windows
#: (``ledger.chain.client.LOG_WINDOW``) and halves one that is refused.
MAX_LOG_BLOCKS: Final = 5_000
MAX_LOG_RESULTS: Final = 10_000


class EmbeddedChain(ChainBackend):
    """A persistent single-process EVM chain stored in the SQLite file at ``path``.

    ``funded`` and ``balance_wei`` shape the genesis allocation of a new file; on reopen they
    must be empty or match what the file was created with (genesis cannot change).
    ``chain_id`` defaults to :data:`DEFAULT_CHAIN_ID` for a new file and to the stored id on
    reopen. Raises :class:`ConfigurationError` for a file that is not such a chain or does not
    match, and :class:`ChainUnavailable` while another process has the file open.
    """

    name: ClassVar[str] = "embedded"

    def __init__(
        self,
        path: Path,
        *,
        funded: Sequence[str] = (),
        balance_wei: int = 10**24,
        chain_id: int | None = None,
    ) -> None:
        self._path = Path(path)
        self._lock = threading.RLock()
        self._closed = False
        alloc = _genesis_alloc(funded, balance_wei)
        conn = _connect(self._path)
        try:
            self._store = _SqliteStore(conn)
            meta = self._store.read_meta()
            if meta:
                self._chain_id, self._fork, offset = _check_meta(meta, self._path, alloc, chain_id)
                chain = _chain_class(self._chain_id, self._fork)(AtomicDB(self._store))
                _check_head(chain, meta, self._path)
                self._created = False
            else:
                self._chain_id = DEFAULT_CHAIN_ID if chain_id is None else chain_id
                self._fork, offset = _NEW_CHAIN_FORK, 0
                chain = self._create_genesis(alloc)
                self._created = True
        except BaseException:
            conn.close()
            raise
        self._committed_offset = offset
        self._backend = _LedgerBackend(
            chain, time_offset=offset, on_commit=self._commit, on_failure=self._reload
        )
        self._tester = _IndexedTester(backend=self._backend)
        provider = _EmbeddedProvider(
            self._tester, chain_id=self._chain_id, lock=self._lock, check_open=self._check_open
        )
        self._w3 = Web3(provider)

    @property
    def w3(self) -> Web3:
        return self._w3

    def relay(self, method: str, params: list[Any]) -> dict[str, Any]:
        provider = self._w3.provider
        assert isinstance(provider, EthereumTesterProvider)
        return relay_embedded(provider, method, params)

    @property
    def chain_id(self) -> int:
        return self._chain_id

    @property
    def path(self) -> Path:
        """The SQLite file holding the chain."""
        return self._path

    @property
    def created(self) -> bool:
        """True when this open created the chain from genesis (nothing is deployed yet)."""
        return self._created

    def advance_time(self, seconds: int) -> int:
        """Move chain time forward by ``seconds`` and mine an empty block stamped with it.

        The offset to the wall clock is persisted with the block, so it survives a reopen.
        Returns the new head block's timestamp.
        """
        if seconds < 0:
            raise ValueError("chain time cannot move backwards")
        with self._lock:
            self._check_open()
            if self._backend.chain.header.gas_used:
                self._tester.mine_blocks(1)  # seal what is pending at its own time first
            self._backend.time_offset += seconds
            try:
                self._tester.mine_blocks(1)
            except BaseException:
                self._backend.time_offset = self._committed_offset
                raise
            return int(self._backend.chain.get_canonical_head().timestamp)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self._store.dirty:
                    self._commit()
            finally:
                self._store.close()

    # -- internals ------------------------------------------------------------------------

    def _create_genesis(self, alloc: Mapping[str, int]) -> Any:
        params = get_default_genesis_params()
        state = {
            to_canonical_address(address): {
                "balance": balance,
                "nonce": 0,
                "code": b"",
                "storage": {},
            }
            for address, balance in alloc.items()
        }
        chain_class = _chain_class(self._chain_id, self._fork)
        chain = chain_class.from_genesis(AtomicDB(self._store), params, state)
        genesis = chain.get_canonical_head()
        self._store.commit(
            {
                "schema_version": _SCHEMA_VERSION,
                "chain_id": str(self._chain_id),
                "fork": self._fork,
                "genesis_hash": genesis.hash.hex(),
                "genesis_params": json.dumps(_jsonable(params), sort_keys=True),
                "genesis_alloc": json.dumps({a: str(b) for a, b in alloc.items()}, sort_keys=True),
                **_head_meta(genesis, 0),
            }
        )
        return chain

    def _commit(self) -> None:
        head = self._backend.chain.get_canonical_head()
        self._store.commit(_head_meta(head, self._backend.time_offset))
        self._committed_offset = self._backend.time_offset

    def _reload(self) -> None:
        """Drop uncommitted writes and rebuild the chain at the last committed head."""
        self._store.discard()
        chain_class = _chain_class(self._chain_id, self._fork)
        self._backend.chain = chain_class(AtomicDB(self._store))
        self._backend.time_offset = self._committed_offset

    def _check_open(self) -> None:
        if self._closed:
            raise ChainUnavailable(f"the embedded chain at {self._path} is closed")


# -- the key-value store ------------------------------------------------------------------


class _SqliteStore(BaseDB):
    """py-evm's key-value interface over one SQLite table, committed in whole blocks.

    Writes and deletes collect in ``_pending`` (``None`` marks a delete) and reach SQLite only
    in :meth:`commit`, one transaction with ``executemany``. Reads look at ``_pending``, then at
    a two-generation cache of committed entries (about the last ``_CACHE_ENTRIES`` used trie
    nodes and headers), then at SQLite.
    """

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn
        self._pending: dict[bytes, bytes | None] = {}
        self._recent: dict[bytes, bytes] = {}
        self._older: dict[bytes, bytes] = {}

    def __getitem__(self, key: bytes) -> bytes:
        if key in self._pending:
            value = self._pending[key]
            if value is None:
                raise KeyError(key)
            return value
        cached = self._recent.get(key)
        if cached is not None:
            return cached
        cached = self._older.get(key)
        if cached is None:
            row = self._conn.execute("SELECT v FROM kv WHERE k = ?", (key,)).fetchone()
            if row is None:
                raise KeyError(key)
            cached = cast(bytes, row[0])
        self._remember(key, cached)
        return cached

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._pending[key] = value

    def __delitem__(self, key: bytes) -> None:
        if not self._exists(key):
            raise KeyError(key)
        self._pending[key] = None

    def _exists(self, key: bytes) -> bool:
        try:
            self[key]
        except KeyError:
            return False
        return True

    def _remember(self, key: bytes, value: bytes) -> None:
        self._recent[key] = value
        if len(self._recent) >= _CACHE_ENTRIES // 2:
            self._older, self._recent = self._recent, {}

    @property
    def dirty(self) -> bool:
        return bool(self._pending)

    def read_meta(self) -> dict[str, str]:
        return dict(self._conn.execute("SELECT key, value FROM meta").fetchall())

    def commit(self, meta: Mapping[str, str]) -> None:
        puts = [(k, v) for k, v in self._pending.items() if v is not None]
        deletes = [(k,) for k, v in self._pending.items() if v is None]
        try:
            with _transaction(self._conn):
                self._conn.executemany("INSERT OR REPLACE INTO kv (k, v) VALUES (?, ?)", puts)
                self._conn.executemany("DELETE FROM kv WHERE k = ?", deletes)
                self._conn.executemany(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", meta.items()
                )
        except sqlite3.Error as exc:
            raise ChainError(f"could not write the embedded chain database: {exc}") from exc
        for key, value in self._pending.items():
            if value is None:
                self._recent.pop(key, None)
                self._older.pop(key, None)
            else:
                self._remember(key, value)
        self._pending.clear()

    def discard(self) -> None:
        self._pending.clear()

    def close(self) -> None:
        self._conn.close()


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _connect(path: Path) -> sqlite3.Connection:
    try:
        private_sqlite(path)  # 0600 before SQLite opens it, so its -wal is 0600 too
        conn = sqlite3.connect(
            path, timeout=_LOCK_WAIT_SECONDS, isolation_level=None, check_same_thread=False
        )
    except (OSError, sqlite3.Error) as exc:
        raise ConfigurationError(f"cannot open the embedded chain file {path}: {exc}") from exc
    try:
        conn.execute("PRAGMA locking_mode = EXCLUSIVE")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")
        with _transaction(conn):  # takes the exclusive lock, held until close()
            conn.execute(
                "CREATE TABLE IF NOT EXISTS kv (k BLOB PRIMARY KEY, v BLOB NOT NULL) WITHOUT ROWID"
            )
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
    except sqlite3.OperationalError as exc:
        conn.close()
        if "locked" in str(exc) or "busy" in str(exc):
            raise ChainUnavailable(
                f"the embedded chain file {path} is in use by another process"
            ) from exc
        raise ConfigurationError(f"cannot use {path} as an embedded chain: {exc}") from exc
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise ConfigurationError(f"{path} is not an embedded chain database: {exc}") from exc
    return conn


# -- genesis and meta ---------------------------------------------------------------------


def _genesis_alloc(funded: Sequence[str], balance_wei: int) -> dict[str, int]:
    if isinstance(funded, str):
        raise ConfigurationError("funded must be a sequence of addresses, not one string")
    if balance_wei < 0:
        raise ConfigurationError("balance_wei must not be negative")
    alloc: dict[str, int] = {}
    for address in funded:
        if not is_address(address):
            raise ConfigurationError(f"not an Ethereum address: {address!r}")
        alloc[to_checksum_address(address)] = balance_wei
    return alloc


def _check_meta(
    meta: Mapping[str, str], path: Path, alloc: Mapping[str, int], chain_id: int | None
) -> tuple[int, str, int]:
    if meta.get("schema_version") != _SCHEMA_VERSION or meta.get("fork") not in _FORKS:
        raise ConfigurationError(
            f"{path} holds an embedded chain of an unknown version "
            f"(schema {meta.get('schema_version')!r}, fork {meta.get('fork')!r})"
        )
    stored_id = int(meta["chain_id"])
    if chain_id is not None and chain_id != stored_id:
        raise ConfigurationError(f"{path} holds chain id {stored_id}, not {chain_id}")
    stored_alloc = {a: int(b) for a, b in json.loads(meta["genesis_alloc"]).items()}
    if alloc and dict(alloc) != stored_alloc:
        raise ConfigurationError(
            f"{path} was created with genesis allocation {stored_alloc}; genesis cannot change "
            f"(asked for {dict(alloc)})"
        )
    return stored_id, meta["fork"], int(meta["time_offset"])


def _check_head(chain: Any, meta: Mapping[str, str], path: Path) -> None:
    head = chain.get_canonical_head()
    if head.hash.hex() != meta["head_hash"] or str(head.block_number) != meta["head_number"]:
        raise ChainError(
            f"{path} is inconsistent: meta names head {meta['head_number']} "
            f"but the database holds {head.block_number}"
        )


def _head_meta(head: Any, time_offset: int) -> dict[str, str]:
    return {
        "head_number": str(head.block_number),
        "head_hash": head.hash.hex(),
        "time_offset": str(time_offset),
    }


def _jsonable(params: Mapping[str, Any]) -> dict[str, Any]:
    return {k: "0x" + v.hex() if isinstance(v, bytes) else v for k, v in params.items()}


#: geth's gas estimate: within 1.5% of the least gas that succeeds (``estimateGasErrorRatio``).
_ESTIMATE_ERROR_RATIO: Final = 0.015
_CALL_STIPEND: Final = 2300


def _estimate_gas(state: StateAPI, transaction: SignedTransactionAPI) -> int:
    """The gas ``transaction`` needs, found as geth finds it rather than by py-evm's bisection
    from the intrinsic cost to the block gas limit (about 13 full executions each time).

    One run at the block limit gives the gas used (or the error, raised as py-evm raises it);
    that much usually suffices, which a second run confirms. Otherwise geth's first guess
    (used + refund + call stipend, times 64/63 for the gas a CALL holds back) and a bisection
    between the used gas and a limit known to succeed, down to 1.5%. The answer is always a
    limit that ran without error (or the block limit).
    """

    def run(gas: int, **price: int) -> ComputationAPI:
        snapshot = state.snapshot()
        try:
            spoofed = SpoofTransaction(transaction, gas=gas, **price)
            return state.apply_transaction(cast(SignedTransactionAPI, spoofed))
        finally:
            state.revert(snapshot)

    cap = int(state.gas_limit)
    top = run(cap, gas_price=0)  # free, as py-evm's own first run: the sender need not afford it
    if top.is_error:
        raise top.error
    used = int(transaction.intrinsic_gas) + int(top.get_gas_used())
    if used >= cap or not run(used).is_error:
        return min(used, cap)
    low, high = used, cap
    guess = (used + int(top.get_gas_refund()) + _CALL_STIPEND) * 64 // 63
    if guess < cap and not run(guess).is_error:
        high = guess
    while high - low > 1 and (high - low) / high > _ESTIMATE_ERROR_RATIO:
        middle = (low + high) // 2
        if run(middle).is_error:
            low = middle
        else:
            high = middle
    return high


def _chain_class(chain_id: int, fork: str) -> Any:
    vm_class = _FORKS[fork]

    class LedgerChain(MiningChain):
        """eth-tester's post-merge tester chain, with our chain id and a stored fork."""

        vm_configuration: tuple[tuple[BlockNumber, type[VirtualMachineAPI]], ...] = (
            (BlockNumber(0), vm_class),
        )
        gas_estimator = staticmethod(_estimate_gas)

        def create_header_from_parent(self, parent_header: Any, **header_params: Any) -> Any:
            header_params["gas_limit"] = parent_header.gas_limit  # constant, as eth-tester
            return super().create_header_from_parent(parent_header, **header_params)

        def get_transaction_builder(self) -> Any:
            return self.get_vm().get_transaction_builder()

    LedgerChain.chain_id = chain_id
    return LedgerChain


# -- eth-tester backend and web3 provider -------------------------------------------------


class _RpcError(Exception):
    """An error to answer as a JSON-RPC error object rather than raise through web3."""

    def __init__(self, code: int, message: str, data: bytes | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    @classmethod
    def from_vm_error(cls, error: VMError) -> _RpcError:
        if not isinstance(error, Revert):
            return cls(-32000, f"execution failed: {type(error).__name__} {error}".strip())
        data = bytes(error.args[0]) if error.args else b""
        message = "execution reverted"
        if data[:4] == _ERROR_STRING_SELECTOR:
            with suppress(DecodingError):
                message += f": {abi.decode(['string'], data[4:])[0]}"
        return cls(3, message, data)

    def response(self, request_id: int) -> RPCResponse:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = "0x" + self.data.hex()
        return cast(RPCResponse, {"id": request_id, "jsonrpc": "2.0", "error": error})


class _LedgerBackend(PyEVMBackend):  # type: ignore[misc]
    """PyEVMBackend on a chain object we built, committing after each mined block."""

    def __init__(
        self,
        chain: Any,
        *,
        time_offset: int,
        on_commit: Callable[[], None],
        on_failure: Callable[[], None],
    ) -> None:
        # PyEVMBackend.__init__ would build a new in-memory chain funding eth-tester's
        # well-known keys; this backend has no keys at all (eth_accounts is empty).
        self.chain = chain
        self.account_keys: tuple[Any, ...] = ()
        self.time_offset = time_offset
        self._on_commit = on_commit
        self._on_failure = on_failure

    def reset_to_genesis(self, *args: Any, **kwargs: Any) -> None:
        """Refused: rewinding a persistent ledger would erase recorded rights."""
        raise ChainError(
            "a persistent embedded chain cannot be reset to genesis", code=ErrorCode.RESET_REFUSED
        )

    # writes

    def send_raw_transaction(self, raw_transaction: bytes) -> bytes:
        builder = self.chain.get_transaction_builder()
        if raw_transaction[:1] == b"\x03":
            raise TesterValidationError("blob transactions are not supported")
        transaction = builder.decode(raw_transaction)
        signed_for = getattr(transaction, "chain_id", None)
        if signed_for != self.chain.chain_id:
            raise TesterValidationError(
                f"invalid chain id: the transaction is signed for {signed_for}, "
                f"this chain is {self.chain.chain_id}"
            )
        self._refresh_pending_timestamp()
        self.chain.apply_transaction(transaction)
        return cast(bytes, transaction.hash)

    def mine_blocks(self, num_blocks: int = 1, coinbase: bytes = _ZERO_ADDRESS) -> tuple[Any, ...]:
        hashes: list[Any] = []
        try:
            for _ in range(num_blocks):
                self._refresh_pending_timestamp()
                hashes.extend(super().mine_blocks(1, coinbase))
            self._on_commit()
        except BaseException:
            self._on_failure()
            raise
        return tuple(hashes)

    def revert_to_snapshot(self, snapshot: bytes) -> None:
        try:
            super().revert_to_snapshot(snapshot)
            self._on_commit()
        except BaseException:
            self._on_failure()
            raise

    def time_travel(self, to_timestamp: int) -> int:
        now = int(time.time()) + self.time_offset
        self.time_offset += max(0, to_timestamp - now)
        self.mine_blocks()
        return to_timestamp

    def _refresh_pending_timestamp(self) -> None:
        """Stamp an empty pending block with the current chain time (see module docstring)."""
        header = self.chain.header
        if header.gas_used:
            return  # transactions already ran with this timestamp
        parent = self.chain.get_canonical_head()
        stamp = max(parent.timestamp, int(time.time()) + self.time_offset)
        if stamp != header.timestamp:
            self.chain.header = header.copy(timestamp=stamp)

    # reads

    def call(self, transaction: dict[str, Any], block_number: Any = "latest") -> bytes:
        transaction = _unpriced_is_free(transaction)
        transaction.setdefault("gas", self._max_available_gas())
        header = _get_block_by_number(self.chain, block_number).header
        if not transaction.get("max_fee_per_gas", 1):
            header = header.copy(base_fee_per_gas=0)  # a free call pays no base fee (geth)
        unsigned = self._get_normalized_and_unsigned_evm_transaction(transaction, block_number)
        state = self.chain.get_vm(at_header=header).state
        snapshot = state.snapshot()
        try:
            computation = state.apply_transaction(
                SpoofTransaction(unsigned, from_=transaction["from"])
            )
        finally:
            state.revert(snapshot)
        if computation.is_error:
            raise _RpcError.from_vm_error(computation.error)
        return cast(bytes, computation.output)

    def estimate_gas(self, transaction: dict[str, Any], block_number: Any = "latest") -> int:
        # py-evm estimates in a costless state (base fee 0); with no fee fields the sender
        # needs no ether either, as with geth and anvil.
        transaction = _unpriced_is_free(transaction)
        try:
            return cast(int, super().estimate_gas(transaction, block_number))
        except TransactionFailed as exc:  # eth-tester wraps Revert and InvalidInstruction
            cause = exc.args[0] if exc.args else None
            if isinstance(cause, VMError):
                raise _RpcError.from_vm_error(cause) from exc
            raise
        except VMError as exc:
            raise _RpcError.from_vm_error(exc) from exc

    def get_transaction_by_hash(self, transaction_hash: bytes) -> Any:
        block, transaction, index = self._find_transaction(transaction_hash)
        is_pending = block.number == self.chain.header.block_number
        return serialize_transaction(block, transaction, index, is_pending)

    def get_transaction_receipt(self, transaction_hash: bytes) -> Any:
        block, transaction, index = self._find_transaction(transaction_hash)
        is_pending = block.number == self.chain.header.block_number
        receipts = block.get_receipts(self.chain.chaindb)
        return serialize_transaction_receipt(
            block, receipts, transaction, index, is_pending, self.chain.get_vm()
        )

    def _find_transaction(self, transaction_hash: bytes) -> tuple[Any, Any, int]:
        """Look a transaction up through py-evm's hash index (eth-tester scans every block)."""
        if self.chain.header.gas_used:
            pending = self.chain.get_block()
            for index, transaction in enumerate(pending.transactions):
                if transaction.hash == transaction_hash:
                    return pending, transaction, index
        try:
            number, index = self.chain.chaindb.get_transaction_index(transaction_hash)
        except EVMTransactionNotFound:
            number, index = -1, -1
        if number >= 0:
            block = self.chain.get_canonical_block_by_number(number)
            if index < len(block.transactions):
                transaction = block.transactions[index]
                if transaction.hash == transaction_hash:
                    return block, transaction, index
        raise TransactionNotFound(f"no transaction with hash 0x{transaction_hash.hex()}")


def _unpriced_is_free(transaction: Mapping[str, Any]) -> dict[str, Any]:
    """A call or estimate without fee fields costs nothing, so unfunded senders can read.

    eth-tester would price it at 1 gwei and refuse senders that cannot pay for the gas limit;
    geth and anvil run it at gas price zero (and base fee zero) instead.
    """
    free = dict(transaction)
    free["from"] = free.get("from") or _ZERO_ADDRESS
    if not any(field in free for field in _FEE_FIELDS):
        free["max_fee_per_gas"] = 0
        free["max_priority_fee_per_gas"] = 0
    return free


# eth-tester raises these for requests a node refuses; they become JSON-RPC errors.
_REFUSALS: Final = (
    TesterValidationError,
    EthValidationError,
    TransactionFailed,
    BlockNotFound,
    FilterNotFound,
    SnapshotNotFound,
    PyEVMError,
    RLPException,
)


_SENDERLESS: Final = frozenset({"eth_call", "eth_estimateGas", "eth_createAccessList"})
_ZERO_ADDRESS_HEX: Final = "0x" + "00" * 20


#: What the request formatting (and eth-tester behind it) raises for parameters of the wrong
#: shape: a node answers those with JSON-RPC's "invalid params".
_MALFORMED_PARAMS: Final = (
    TypeError,
    ValueError,
    KeyError,
    IndexError,
    AttributeError,
    ArithmeticError,
)


def relay_embedded(
    provider: EthereumTesterProvider, method: str, params: list[Any]
) -> dict[str, Any]:
    """A call to eth-tester with web3's own request and result formatting, so that its answer
    has the shape a node's has (camelCase, hex quantities) for a remote web3 to decode;
    parameters of the wrong shape are answered as a node answers them (-32602)."""
    endpoint = RPCEndpoint(method)
    try:
        request = tester_request_formatters.get(endpoint)
        formatted = request(params) if request is not None else params
        answer = dict(provider.make_request(endpoint, formatted))
        result = (tester_result_formatters or {}).get(endpoint)
        if "result" in answer and result is not None:
            answer["result"] = result(answer["result"])
        quantity = answer.get("result")
        if isinstance(quantity, int) and not isinstance(quantity, bool):
            answer["result"] = hex(quantity)  # a quantity, as a node sends it
        relayed: dict[str, Any] = json.loads(Web3.to_json(answer))
    except _MALFORMED_PARAMS as exc:
        return {"error": {"code": -32602, "message": f"invalid params ({type(exc).__name__})"}}
    return relayed


class _IndexedTester(EthereumTester):  # type: ignore[misc]
    """eth-tester whose ``eth_getLogs`` keeps each mined block's logs.

    Stock ``get_logs`` rebuilds every block and every receipt in the range on each call (about
    0.3 s over a few hundred blocks), and verification and recovery ask for events many times
    over the whole chain. A mined block's logs never change; they are kept by block hash, so a
    reverted snapshot (a new canonical block at that height) is read afresh. The filtering is
    eth-tester's own predicate, on the same normalized entries it would have built. Blocks above the
    canonical head are refused as eth-tester refuses them (py-evm keeps the numbers of blocks a
    snapshot revert dropped). Like a node, it answers a bounded range (:data:`MAX_LOG_BLOCKS`,
    :data:`MAX_LOG_RESULTS`), so one query cannot hold the chain's lock for the whole chain.
    """

    def __init__(self, backend: PyEVMBackend) -> None:
        super().__init__(backend=backend)
        self._block_logs: OrderedDict[bytes, tuple[Any, ...]] = OrderedDict()
        self._indexed = 0

    @to_tuple
    def get_logs(
        self, from_block: Any = None, to_block: Any = None, address: Any = None, topics: Any = None
    ) -> Iterator[Any]:
        self.validator.validate_inbound_filter_params(
            from_block=from_block, to_block=to_block, address=address, topics=topics
        )
        raw_from, raw_to, raw_address, raw_topics = self.normalizer.normalize_inbound_filter_params(
            from_block=from_block, to_block=to_block, address=address, topics=topics
        )
        params = {
            "from_block": raw_from,
            "to_block": raw_to,
            "addresses": raw_address,
            "topics": raw_topics,
        }
        matches = partial(check_if_log_matches, **params)
        lower = raw_from if isinstance(raw_from, int) else self._number(raw_from)
        upper = raw_to if isinstance(raw_to, int) else self._number(raw_to)
        if upper - lower + 1 > MAX_LOG_BLOCKS:
            raise _RpcError(
                LIMIT_EXCEEDED, f"block range too large: at most {MAX_LOG_BLOCKS} blocks per query"
            )
        found: list[Any] = []
        head = int(self.backend.chain.get_canonical_head().block_number)
        for number in range(lower, upper + 1):
            found.extend(entry for entry in self._logs_of(number, head) if matches(entry))
            if len(found) > MAX_LOG_RESULTS:
                raise _RpcError(
                    LIMIT_EXCEEDED, f"query returned more than {MAX_LOG_RESULTS} results"
                )
        for item in found:
            yield self.normalizer.normalize_outbound_log_entry(item)

    def _number(self, tag: Any) -> int:
        return int(self.get_block_by_number("latest" if tag is None else tag)["number"])

    def _logs_of(self, number: int, head: int) -> tuple[Any, ...]:
        chain = self.backend.chain
        if not 0 <= number <= head:
            raise BlockNotFound(f"no block number {number}")
        try:
            block_hash = chain.chaindb.get_canonical_block_hash(BlockNumber(number))
        except HeaderNotFound:
            raise BlockNotFound(f"no block number {number}") from None
        kept = self._block_logs.get(block_hash)
        if kept is not None:
            self._block_logs.move_to_end(block_hash)
            return kept
        # The backend's receipts, serialized as eth-tester serializes them: their logs are
        # already the raw entries its filters take (what normalizing them out and back in
        # gives), without looking each transaction up again by hash.
        block = chain.get_block_by_hash(block_hash)
        receipts = block.get_receipts(chain.chaindb)
        vm = chain.get_vm()
        entries = tuple(
            log
            for index, transaction in enumerate(block.transactions)
            for log in serialize_transaction_receipt(
                block, receipts, transaction, index, False, vm
            )["logs"]
        )
        self._block_logs[block_hash] = entries
        self._indexed += max(1, len(entries))
        while self._indexed > _INDEXED_LOGS and len(self._block_logs) > 1:
            _, dropped = self._block_logs.popitem(last=False)
            self._indexed -= max(1, len(dropped))
        return entries


class _EmbeddedProvider(EthereumTesterProvider):
    """eth-tester's provider, answering like a node: our chain id, JSON-RPC errors, one caller
    at a time (eth-tester is not thread-safe; the broker calls from a thread pool)."""

    def __init__(
        self,
        tester: EthereumTester,
        *,
        chain_id: int,
        lock: threading.RLock,
        check_open: Callable[[], None],
    ) -> None:
        endpoints = {namespace: dict(methods) for namespace, methods in API_ENDPOINTS.items()}
        endpoints["eth"]["chainId"] = static_return(chain_id)
        endpoints["net"]["version"] = static_return(str(chain_id))
        super().__init__(tester, endpoints)
        self._lock = lock
        self._check_open = check_open
        self._request_ids = iter(range(1, 2**63))

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        with self._lock:
            self._check_open()
            request_id = next(self._request_ids)
            if method in _SENDERLESS and params and params[0].get("from") is None:
                # web3 fills a missing sender with eth_accounts[0], which is None here; a node
                # executes such calls from the zero address, and so do we.
                params = [{**params[0], "from": _ZERO_ADDRESS_HEX}, *params[1:]]
            try:
                return super().make_request(method, params)
            except _RpcError as exc:
                return exc.response(request_id)
            except _REFUSALS as exc:
                return _RpcError(-32000, str(exc) or type(exc).__name__).response(request_id)

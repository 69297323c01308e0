"""Chain backends: the embedded py-evm chain persists and reopens, anvil answers alike.

Contracts here are hand-written EVM bytecode (no compiler needed):

- ``ECHO`` -- called with no data it increments storage slot 0; called with data it reverts
  with exactly that data, so one contract produces any custom error, ``Error(string)`` or panic.
- ``CLOCK`` -- returns ``block.timestamp``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from eth_abi.abi import encode
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3 import Web3
from web3.exceptions import (
    ContractCustomError,
    ContractLogicError,
    ContractPanicError,
    Web3RPCError,
)
from web3.types import TxParams, TxReceipt

from ledger.chain.backend import ChainBackend
from ledger.chain.embedded import DEFAULT_CHAIN_ID, EmbeddedChain
from ledger.chain.rpc import RpcChain
from ledger.errors import ChainUnavailable, ConfigurationError
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"
SINK = Web3.to_checksum_address("0x000000000000000000000000000000000000dead")
FUNDS = 10**24


def _creation_code(runtime: bytes) -> bytes:
    """Init code that returns ``runtime``: CODECOPY(0, 12, n) RETURN(0, n)."""
    n = len(runtime)
    assert n < 256
    return bytes([0x60, n, 0x60, 0x0C, 0x60, 0x00, 0x39, 0x60, n, 0x60, 0x00, 0xF3]) + runtime


ECHO_RUNTIME = bytes.fromhex(
    "36"  # CALLDATASIZE
    "15"  # ISZERO
    "600f57"  # PUSH1 0x0f JUMPI             -> increment when there is no calldata
    "36600060003736"  # CALLDATACOPY(0, 0, size); CALLDATASIZE
    "6000fd"  # REVERT(0, size)
    "5b"  # JUMPDEST (0x0f)
    "6000546001016000"
    "55"  # SSTORE(0, SLOAD(0) + 1)
    "00"  # STOP
)
CLOCK_RUNTIME = bytes.fromhex("4260005260206000f3")  # MSTORE(0, TIMESTAMP) RETURN(0, 32)
#: LOG1(data = calldata, topic = its first 32 bytes).
LOGGER_RUNTIME = bytes.fromhex("366000600037600035366000a100")

CUSTOM_ERROR = bytes.fromhex("deadbeef") + encode(["uint256", "address"], [42, SINK])
ERROR_STRING = bytes.fromhex("08c379a0") + encode(["string"], ["not allowed"])
PANIC_OVERFLOW = bytes.fromhex("4e487b71") + encode(["uint256"], [0x11])


# -- helpers ------------------------------------------------------------------------------


def _send(
    backend: ChainBackend, account: LocalAccount, *, legacy: bool = False, **fields: Any
) -> TxReceipt:
    w3 = backend.w3
    tx: dict[str, Any] = {
        "from": account.address,
        "nonce": w3.eth.get_transaction_count(account.address),
        "chainId": backend.chain_id,
        **fields,
    }
    if "gas" not in tx:
        tx["gas"] = w3.eth.estimate_gas(
            cast(TxParams, {k: v for k, v in tx.items() if k != "chainId"})
        )
    if legacy:
        tx["gasPrice"] = 2 * w3.eth.get_block("latest")["baseFeePerGas"] + 1
    else:
        tx["maxFeePerGas"] = 2 * w3.eth.get_block("latest")["baseFeePerGas"] + 1
        tx["maxPriorityFeePerGas"] = 1
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    return w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)


def _deploy(backend: ChainBackend, account: LocalAccount, runtime: bytes) -> ChecksumAddress:
    receipt = _send(backend, account, data=_creation_code(runtime))
    assert receipt["status"] == 1
    address = receipt["contractAddress"]
    assert address is not None
    return Web3.to_checksum_address(address)


def _python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter of this virtualenv."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        check=False,
    )


# -- fixtures -----------------------------------------------------------------------------


@pytest.fixture
def operator() -> LocalAccount:
    """A fresh key, like the operator key generated at first start."""
    account: LocalAccount = Account.create()
    return account


@pytest.fixture
def chain_file(tmp_path: Path) -> Path:
    return tmp_path / "chain.sqlite"


@pytest.fixture
def embedded(chain_file: Path, operator: LocalAccount) -> Iterator[EmbeddedChain]:
    with EmbeddedChain(chain_file, funded=[operator.address], balance_wei=FUNDS) as chain:
        yield chain


@pytest.fixture(scope="module")
def anvil_rpc_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real anvil node on a free loopback port for this module, stopped at teardown."""
    if not ANVIL.exists():
        pytest.fail(f"anvil is missing at {ANVIL}: run `npm ci`", pytrace=False)
    log = tmp_path_factory.mktemp("anvil") / "anvil.log"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        node = subprocess.Popen(
            [str(ANVIL), "--port", str(port), "--host", "127.0.0.1", "--silent"],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                RpcChain(url).close()
                break
            except ChainUnavailable:
                if node.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"anvil did not start: {log.read_text()}", pytrace=False)
                time.sleep(0.05)
        yield url
    finally:
        node.terminate()
        try:
            node.wait(timeout=5)
        except subprocess.TimeoutExpired:
            node.kill()
            node.wait()


@pytest.fixture(params=["embedded", pytest.param("anvil", marks=pytest.mark.anvil)])
def backend(
    request: pytest.FixtureRequest, chain_file: Path, operator: LocalAccount
) -> Iterator[ChainBackend]:
    """Each backend with ``operator`` funded: in genesis (embedded) or by the node (anvil)."""
    chain: ChainBackend
    if request.param == "embedded":
        chain = EmbeddedChain(chain_file, funded=[operator.address], balance_wei=FUNDS)
    else:
        chain = RpcChain(request.getfixturevalue("anvil_rpc_url"))
        response = chain.w3.provider.make_request(
            "anvil_setBalance",  # type: ignore[arg-type]
            [operator.address, hex(FUNDS)],
        )
        assert "error" not in response
    with chain:
        yield chain


# -- both backends ------------------------------------------------------------------------


def test_funded_account_sends_value_and_deploys_a_contract(
    backend: ChainBackend, operator: LocalAccount
) -> None:
    w3 = backend.w3
    assert backend.chain_id == w3.eth.chain_id
    recipient = Account.create().address
    before = w3.eth.get_balance(operator.address)

    receipt = _send(backend, operator, to=recipient, value=12345)

    assert receipt["status"] == 1
    assert w3.eth.get_balance(recipient) == 12345
    fee = receipt["gasUsed"] * receipt["effectiveGasPrice"]
    assert w3.eth.get_balance(operator.address) == before - 12345 - fee

    echo = _deploy(backend, operator, ECHO_RUNTIME)
    assert bytes(w3.eth.get_code(echo)) == ECHO_RUNTIME
    assert _send(backend, operator, to=echo)["status"] == 1
    assert int.from_bytes(w3.eth.get_storage_at(echo, 0), "big") == 1


def test_legacy_transaction_is_accepted(backend: ChainBackend, operator: LocalAccount) -> None:
    receipt = _send(backend, operator, legacy=True, to=SINK, value=1)

    assert receipt["status"] == 1
    assert backend.w3.eth.get_transaction(receipt["transactionHash"])["type"] == 0


def test_transaction_signed_for_another_chain_is_refused(
    backend: ChainBackend, operator: LocalAccount
) -> None:
    w3 = backend.w3
    tx: dict[str, Any] = {
        "nonce": w3.eth.get_transaction_count(operator.address),
        "chainId": backend.chain_id + 1,
        "to": SINK,
        "value": 1,
        "gas": 21000,
        "maxFeePerGas": 10**10,
        "maxPriorityFeePerGas": 1,
    }
    with pytest.raises(Web3RPCError, match="chain id"):
        w3.eth.send_raw_transaction(operator.sign_transaction(tx).raw_transaction)


@pytest.mark.parametrize(
    ("revert_data", "error_type"),
    [
        (CUSTOM_ERROR, ContractCustomError),
        (ERROR_STRING, ContractLogicError),
        (PANIC_OVERFLOW, ContractPanicError),
    ],
    ids=["custom-error", "error-string", "panic"],
)
def test_call_and_estimate_reverts_carry_the_raw_revert_data(
    backend: ChainBackend,
    operator: LocalAccount,
    revert_data: bytes,
    error_type: type[ContractLogicError],
) -> None:
    echo = _deploy(backend, operator, ECHO_RUNTIME)
    request: TxParams = {"from": operator.address, "to": echo, "data": revert_data}
    w3 = backend.w3
    attempts: list[Callable[[TxParams], object]] = [w3.eth.call, w3.eth.estimate_gas]

    for attempt in attempts:
        with pytest.raises(error_type) as raised:
            attempt(request)
        assert type(raised.value) is error_type
        assert raised.value.data == "0x" + revert_data.hex()
    if error_type is ContractLogicError:
        assert "not allowed" in str(raised.value)


def test_mined_revert_gives_status_zero_and_replays_with_its_data(
    backend: ChainBackend, operator: LocalAccount
) -> None:
    echo = _deploy(backend, operator, ECHO_RUNTIME)

    receipt = _send(backend, operator, to=echo, data=CUSTOM_ERROR, gas=100_000)

    assert receipt["status"] == 0
    # The receipt has no revert data on any node: replay the call on the parent state.
    with pytest.raises(ContractCustomError) as raised:
        backend.w3.eth.call(
            {"from": operator.address, "to": echo, "data": CUSTOM_ERROR},
            receipt["blockNumber"] - 1,
        )
    assert raised.value.data == "0x" + CUSTOM_ERROR.hex()


def _forwarder(target: str) -> bytes:
    """CALL ``target`` with all gas left (the 63/64 rule holds some back); revert if it fails."""
    call = "6000" * 5 + "73" + target[2:].lower() + "5af1"  # CALL(GAS, target, 0, 0, 0, 0, 0)
    return bytes.fromhex(call + "602957" + "60006000fd" + "5b00")  # JUMPI ok; REVERT; ok: STOP


@pytest.mark.parametrize("through", ["direct", "forwarded"])
def test_gas_estimates_are_enough_and_within_geths_margin(
    embedded: EmbeddedChain, operator: LocalAccount, through: str
) -> None:
    """The embedded estimator (geth's method, not py-evm's 13-run bisection) gives a limit that
    succeeds and is at most 1.5% above the least that does, also when a CALL holds gas back."""
    echo = _deploy(embedded, operator, ECHO_RUNTIME)
    to = echo if through == "direct" else _deploy(embedded, operator, _forwarder(echo))
    w3 = embedded.w3
    estimate = w3.eth.estimate_gas({"from": operator.address, "to": to})
    snapshot = embedded._tester.take_snapshot()  # both sends from the same state
    assert _send(embedded, operator, to=to, gas=estimate)["status"] == 1
    embedded._tester.revert_to_snapshot(snapshot)
    short = int(estimate * (1 - 0.015)) - 1
    assert _send(embedded, operator, to=to, gas=short)["status"] == 0


def test_unfunded_sender_can_call_and_estimate(
    backend: ChainBackend, operator: LocalAccount
) -> None:
    clock = _deploy(backend, operator, CLOCK_RUNTIME)
    w3 = backend.w3
    nobody = Account.create().address

    requests: list[TxParams] = [{"to": clock}, {"to": clock, "from": nobody}]

    for request in requests:
        now = int.from_bytes(w3.eth.call(request), "big")
        assert now == w3.eth.get_block("latest")["timestamp"]
        assert w3.eth.estimate_gas(request) >= 21000


# -- embedded: genesis, persistence, crash safety -------------------------------------------


def test_well_known_test_accounts_hold_nothing(embedded: EmbeddedChain) -> None:
    w3 = embedded.w3
    for secret in range(1, 11):  # eth-tester's (and many tutorials') default keys
        address = Account.from_key(secret.to_bytes(32, "big")).address
        assert w3.eth.get_balance(address) == 0
    assert not w3.eth.accounts
    assert embedded.created
    assert embedded.chain_id == DEFAULT_CHAIN_ID == w3.eth.chain_id


_REPORT = """
import json, sys
from pathlib import Path
from ledger.chain.embedded import EmbeddedChain
path, operator, echo = sys.argv[1:4]
with EmbeddedChain(Path(path)) as chain:
    w3 = chain.w3
    head = w3.eth.get_block("latest")
    print(json.dumps({
        "created": chain.created,
        "number": head["number"],
        "hash": head["hash"].hex(),
        "balance": w3.eth.get_balance(operator),
        "code": w3.eth.get_code(echo).hex(),
        "slot0": w3.eth.get_storage_at(echo, 0).hex(),
    }))
"""


def test_second_process_sees_the_same_head_balances_code_and_storage(
    chain_file: Path, operator: LocalAccount
) -> None:
    with EmbeddedChain(chain_file, funded=[operator.address], balance_wei=FUNDS) as chain:
        echo = _deploy(chain, operator, ECHO_RUNTIME)
        _send(chain, operator, to=echo)
        _send(chain, operator, to=SINK, value=7)
        w3 = chain.w3
        head = w3.eth.get_block("latest")
        expected = {
            "created": False,
            "number": head["number"],
            "hash": head["hash"].hex(),
            "balance": w3.eth.get_balance(operator.address),
            "code": ECHO_RUNTIME.hex(),
            "slot0": (1).to_bytes(32, "big").hex(),
        }

    run = _python(_REPORT, str(chain_file), operator.address, echo)

    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout) == expected


def test_reopened_chain_keeps_growing_from_the_stored_head(
    chain_file: Path, operator: LocalAccount
) -> None:
    with EmbeddedChain(chain_file, funded=[operator.address], balance_wei=FUNDS) as chain:
        first = _send(chain, operator, to=SINK, value=1)

    with EmbeddedChain(chain_file, funded=[operator.address], balance_wei=FUNDS) as chain:
        assert not chain.created
        second = _send(chain, operator, to=SINK, value=1)
        w3 = chain.w3
        assert second["blockNumber"] == first["blockNumber"] + 1
        assert w3.eth.get_block(second["blockNumber"])["parentHash"] == first["blockHash"]
        assert w3.eth.get_transaction_receipt(first["transactionHash"])["status"] == 1
        assert w3.eth.get_balance(SINK) == 2


def test_event_queries_answer_as_stock_eth_tester_and_follow_new_and_reverted_blocks(
    embedded: EmbeddedChain, operator: LocalAccount
) -> None:
    """The embedded chain keeps each mined block's logs (``_IndexedTester``); what it answers
    must be what eth-tester's own scan of every receipt answers, whatever the filter."""
    from eth_tester import EthereumTester
    from eth_tester.exceptions import BlockNotFound

    tester = embedded._tester  # the stock scan is called on the same chain, as the reference
    one, two = (_deploy(embedded, operator, LOGGER_RUNTIME) for _ in range(2))
    topic = {n: "0x" + f"{n:02x}" * 32 for n in (1, 2)}
    for to, n in ((one, 1), (two, 2), (one, 2), (two, 1)):
        _send(embedded, operator, to=to, data=bytes.fromhex(topic[n][2:]) + b"more" * n)
    head = embedded.w3.eth.block_number
    queries: list[dict[str, Any]] = [
        {"from_block": 0, "to_block": "latest"},
        {"from_block": 0, "to_block": head, "address": one},
        {"from_block": 0, "to_block": "latest", "topics": [topic[1]]},
        {"from_block": head - 1, "to_block": head, "address": [one, two], "topics": [topic[2]]},
        {"from_block": head, "to_block": head - 1},
    ]
    for query in queries:
        assert tester.get_logs(**query) == EthereumTester.get_logs(tester, **query), query
    assert len(tester.get_logs(from_block=0, to_block="latest")) == 4
    assert len(embedded.w3.eth.get_logs({"fromBlock": 0, "address": one})) == 2

    snapshot = tester.take_snapshot()
    _send(embedded, operator, to=one, data=bytes.fromhex(topic[2][2:]))
    assert len(embedded.w3.eth.get_logs({"fromBlock": 0, "address": one})) == 3  # a new block
    tester.revert_to_snapshot(snapshot)
    with pytest.raises(BlockNotFound):  # the reverted block is gone, as stock eth-tester says
        tester.get_logs(from_block=0, to_block=head + 1)
    _send(embedded, operator, to=two, data=bytes.fromhex(topic[1][2:]))  # same height, new hash
    for query in queries[:3]:
        assert tester.get_logs(**query) == EthereumTester.get_logs(tester, **query), query
    assert len(embedded.w3.eth.get_logs({"fromBlock": 0, "address": one})) == 2


def test_open_chain_file_is_locked_against_other_processes(
    embedded: EmbeddedChain, chain_file: Path
) -> None:
    code = (
        "import sys\nfrom pathlib import Path\nfrom ledger.chain.embedded import EmbeddedChain\n"
        "from ledger.errors import ChainUnavailable\n"
        "try:\n    EmbeddedChain(Path(sys.argv[1]))\nexcept ChainUnavailable as e:\n"
        "    print('refused:', e)\n"
    )
    run = _python(code, str(chain_file))

    assert run.returncode == 0, run.stderr
    assert "in use by another process" in run.stdout
    assert embedded.w3.eth.block_number == 0  # the owner is unaffected


_SEND_FOREVER = """
import sys
from pathlib import Path
from eth_account import Account
from ledger.chain.embedded import EmbeddedChain
path, key, sink = sys.argv[1:4]
account = Account.from_key(key)
chain = EmbeddedChain(Path(path))
w3 = chain.w3
nonce = w3.eth.get_transaction_count(account.address)
while True:
    tx = {"nonce": nonce, "chainId": chain.chain_id, "to": sink, "value": 1, "gas": 21000,
          "maxFeePerGas": 10**10, "maxPriorityFeePerGas": 1}
    tx_hash = w3.eth.send_raw_transaction(account.sign_transaction(tx).raw_transaction)
    print(w3.eth.get_transaction_receipt(tx_hash)["blockNumber"], flush=True)
    nonce += 1
"""


def test_sigkill_mid_run_reopens_at_a_consistent_head(
    chain_file: Path, operator: LocalAccount
) -> None:
    EmbeddedChain(chain_file, funded=[operator.address], balance_wei=FUNDS).close()
    acknowledged = 0
    for minimum in (15, 40):  # kill twice: the second run starts from a recovered file
        child = subprocess.Popen(
            [sys.executable, "-c", _SEND_FOREVER, str(chain_file), operator.key.hex(), SINK],
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        assert child.stdout is not None
        try:
            for line in child.stdout:
                acknowledged = int(line)
                if acknowledged >= minimum:
                    break
            time.sleep(0.05)  # land the kill somewhere inside the next transactions
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
        assert acknowledged >= minimum, "the sender process died early"

        with EmbeddedChain(chain_file) as chain:
            w3 = chain.w3
            head = w3.eth.block_number
            # Every receipt the child saw was committed; nothing half-written is visible.
            assert head >= acknowledged
            assert int(w3.eth.get_transaction_count(operator.address)) == head
            assert int(w3.eth.get_balance(SINK)) == head
            assert w3.eth.get_block(head)["parentHash"] == w3.eth.get_block(head - 1)["hash"]
            assert _send(chain, operator, to=SINK, value=1)["blockNumber"] == head + 1


def test_reopen_refuses_a_different_genesis_or_chain_id(
    chain_file: Path, operator: LocalAccount
) -> None:
    EmbeddedChain(chain_file, funded=[operator.address]).close()

    with pytest.raises(ConfigurationError, match="genesis"):
        EmbeddedChain(chain_file, funded=[Account.create().address])
    with pytest.raises(ConfigurationError, match="chain id"):
        EmbeddedChain(chain_file, chain_id=DEFAULT_CHAIN_ID + 1)
    with EmbeddedChain(chain_file, funded=[operator.address], chain_id=DEFAULT_CHAIN_ID) as chain:
        assert chain.w3.eth.get_balance(operator.address) == 10**24


def test_a_file_that_is_not_a_chain_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(os.urandom(8192))

    with pytest.raises(ConfigurationError):
        EmbeddedChain(junk)
    with pytest.raises(ConfigurationError, match="address"):
        EmbeddedChain(tmp_path / "new.sqlite", funded=["0x1234"])


def test_closed_chain_refuses_requests(embedded: EmbeddedChain) -> None:
    embedded.close()
    embedded.close()  # twice is harmless

    with pytest.raises(ChainUnavailable, match="closed"):
        embedded.w3.eth.get_block("latest")


# -- embedded: time -----------------------------------------------------------------------


def test_block_time_follows_the_wall_clock_even_in_bursts(
    embedded: EmbeddedChain, operator: LocalAccount
) -> None:
    for _ in range(15):
        _send(embedded, operator, to=SINK, value=1, gas=21000)

    latest = embedded.w3.eth.get_block("latest")["timestamp"]

    assert latest <= time.time() + 1  # 15 blocks did not push time 15 s ahead


def test_advance_time_moves_block_time_and_persists(
    chain_file: Path, embedded: EmbeddedChain, operator: LocalAccount
) -> None:
    clock = _deploy(embedded, operator, CLOCK_RUNTIME)
    w3 = embedded.w3
    before = w3.eth.get_block("latest")["timestamp"]

    head_time = embedded.advance_time(86_400)

    assert head_time >= before + 86_400
    assert w3.eth.get_block("latest")["timestamp"] == head_time
    assert int.from_bytes(w3.eth.call({"to": clock}), "big") == head_time
    later = _send(embedded, operator, to=SINK, value=1)
    assert w3.eth.get_block(later["blockNumber"])["timestamp"] >= head_time
    embedded.close()

    with EmbeddedChain(chain_file) as reopened:
        receipt = _send(reopened, operator, to=SINK, value=1)
        stamped = reopened.w3.eth.get_block(receipt["blockNumber"])["timestamp"]
        assert stamped >= time.time() + 86_400 - 5  # the offset survived the reopen


# -- rpc ----------------------------------------------------------------------------------


def test_rpc_chain_on_a_dead_port_is_unavailable_at_once() -> None:
    started = time.monotonic()

    with pytest.raises(ChainUnavailable, match="no Ethereum JSON-RPC node answers"):
        RpcChain(f"http://127.0.0.1:{free_port()}")

    assert time.monotonic() - started < 3


def test_rpc_chain_refuses_urls_it_cannot_use() -> None:
    with pytest.raises(ConfigurationError):
        RpcChain("ws://127.0.0.1:8545")
    with pytest.raises(ConfigurationError):
        RpcChain("127.0.0.1:8545")


@pytest.mark.anvil
def test_rpc_chain_reports_the_node_chain_id(anvil_rpc_url: str) -> None:
    with RpcChain(anvil_rpc_url, timeout=5) as chain:
        assert chain.name == "rpc"
        assert chain.chain_id == 31337 == chain.w3.eth.chain_id

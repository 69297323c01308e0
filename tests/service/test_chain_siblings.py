"""Sibling processes of one broker: the embedded chain served on a private Unix socket, the
BROKER nonce under a file lock, and ``RpcChain`` over a node's IPC socket (``file:///…``).

The sibling here is an ``RpcChain`` in this process: it runs exactly the client code a sibling
process runs, and the flock of :class:`FileNonces` excludes two open files of one process as
it excludes two processes.
"""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr

import ledger.chain.siblings
from ledger.chain.embedded import EmbeddedChain
from ledger.chain.rpc import RpcChain
from ledger.chain.siblings import SERVED, ChainSocket, FileNonces
from ledger.chain.tx import Transactor
from ledger.errors import ChainUnavailable, ConfigurationError
from ledger.types import TxHash

ROOT = Path(__file__).resolve().parents[2]
ANVIL = ROOT / "node_modules" / ".bin" / "anvil"
FUNDS = 10**21
NOT_SERVED = ("evm_increaseTime", "evm_mine", "evm_snapshot", "eth_accounts", "personal_sign")


@pytest.fixture(scope="module")
def broker_key() -> LocalAccount:
    account: LocalAccount = Account.create()
    return account


@pytest.fixture(scope="module")
def primary(
    tmp_path_factory: pytest.TempPathFactory, broker_key: LocalAccount
) -> Iterator[EmbeddedChain]:
    """The first process's embedded chain, the broker key funded in genesis."""
    path = tmp_path_factory.mktemp("primary") / "chain.sqlite"
    chain = EmbeddedChain(path, funded=[broker_key.address], balance_wei=FUNDS)
    try:
        yield chain
    finally:
        chain.close()


@pytest.fixture(scope="module")
def served(primary: EmbeddedChain) -> Iterator[ChainSocket]:
    chain_socket = ChainSocket(primary)
    try:
        yield chain_socket
    finally:
        chain_socket.close()


@pytest.fixture(scope="module")
def sibling(served: ChainSocket) -> Iterator[RpcChain]:
    """A sibling's chain client: ``DRL_CHAIN_URL=file:///…`` as ``drl serve`` sets it."""
    chain = RpcChain(served.url)
    try:
        yield chain
    finally:
        chain.close()


class Line:
    """A raw connection to the socket: one JSON text written per line, one line read back."""

    def __init__(self, path: Path) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(5)
        self.sock.connect(str(path))
        self._reader = self.sock.makefile("rb")

    def send(self, text: str) -> None:
        self.sock.sendall(text.encode())

    def answer(self) -> Any:
        line = self._reader.readline()
        assert line.endswith(b"\n"), f"no complete answer: {line!r}"
        return json.loads(line)

    def ask(self, text: str) -> Any:
        self.send(text)
        return self.answer()

    def closed_by_server(self) -> bool:
        return self._reader.read() == b""

    def close(self) -> None:
        self._reader.close()
        self.sock.close()


@pytest.fixture
def line(served: ChainSocket) -> Iterator[Line]:
    connection = Line(served.path)
    try:
        yield connection
    finally:
        connection.close()


def request(method: str, params: Any = None, request_id: Any = 1) -> str:
    params = [] if params is None else params
    return json.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})


def error_code(answer: Any) -> int:
    assert isinstance(answer, dict), answer
    assert "error" in answer, answer
    return int(answer["error"]["code"])


def poll(condition: Callable[[], bool], timeout: float = 3.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


# -- the private socket -------------------------------------------------------------------


def test_the_socket_is_0600_in_a_0700_folder_and_close_removes_the_folder(
    primary: EmbeddedChain,
) -> None:
    chain_socket = ChainSocket(primary)
    folder = chain_socket.path.parent
    try:
        mode = chain_socket.path.stat().st_mode
        assert stat.S_ISSOCK(mode)
        assert stat.S_IMODE(mode) == 0o600
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700
        assert chain_socket.url == f"file://{chain_socket.path}"
        assert len(str(chain_socket.path).encode()) < 108  # fits sockaddr_un on Linux
    finally:
        chain_socket.close()

    assert not folder.exists()
    with pytest.raises(FileNotFoundError):
        Line(chain_socket.path)


def test_closing_the_socket_ends_connections_still_open(primary: EmbeddedChain) -> None:
    chain_socket = ChainSocket(primary)
    connection = Line(chain_socket.path)
    try:
        assert "result" in connection.ask(request("eth_blockNumber") + "\n")

        chain_socket.close()

        assert connection.closed_by_server()  # not answered on from a chain about to close
    finally:
        connection.close()


# -- a sibling over file:// -----------------------------------------------------------------


def test_a_sibling_sees_the_primarys_chain_id_and_head(
    primary: EmbeddedChain, sibling: RpcChain
) -> None:
    assert sibling.chain_id == primary.chain_id
    assert sibling.w3.eth.block_number == primary.w3.eth.block_number
    assert sibling.w3.eth.get_block("latest")["hash"] == primary.w3.eth.get_block("latest")["hash"]


def test_a_transaction_sent_through_the_sibling_is_mined_on_the_primarys_chain(
    primary: EmbeddedChain, sibling: RpcChain, broker_key: LocalAccount
) -> None:
    payee = Account.create().address

    sent = Transactor(sibling.w3).send_value(broker_key, payee, 12345)

    assert primary.w3.eth.get_balance(payee) == 12345
    assert primary.w3.eth.get_transaction(HexStr(sent.tx_hash))["blockNumber"] == sent.block_number
    assert primary.w3.eth.block_number == sent.block_number


def test_primary_and_sibling_sending_from_one_key_never_collide(
    primary: EmbeddedChain,
    sibling: RpcChain,
    broker_key: LocalAccount,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each side has its own lock file handle, as two processes would. Without the resync a
    send does after a nonce error, so a collision fails instead of being retried away."""
    monkeypatch.setattr(Transactor, "_send", Transactor._send_once)
    senders = [Transactor(primary.w3), Transactor(sibling.w3)]
    for sender in senders:
        sender.share_nonces(FileNonces(tmp_path / "nonce.lock"))
    first_nonce = primary.w3.eth.get_transaction_count(broker_key.address)
    payee = Account.create().address
    start = threading.Barrier(len(senders))
    hashes: list[TxHash] = []
    failures: list[BaseException] = []

    def send_three(sender: Transactor) -> None:
        start.wait()
        try:
            for _ in range(3):
                hashes.append(sender.send_value(broker_key, payee, 1).tx_hash)
        except BaseException as exc:  # reported below, with the rest
            failures.append(exc)

    threads = [threading.Thread(target=send_three, args=(s,)) for s in senders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert primary.w3.eth.get_balance(payee) == 6
    nonces = sorted(primary.w3.eth.get_transaction(HexStr(h))["nonce"] for h in hashes)
    assert nonces == list(range(first_nonce, first_nonce + 6))


def test_file_nonces_exclude_a_second_holder_until_the_first_is_done(tmp_path: Path) -> None:
    path = tmp_path / "nonce.lock"
    first, second = FileNonces(path), FileNonces(path)  # two open files, as two processes
    holding, release, second_in = threading.Event(), threading.Event(), threading.Event()
    order: list[str] = []

    def hold_first() -> None:
        with first.reserve("0xbroker", lambda: 7) as nonce:
            order.append(f"first {nonce}")
            holding.set()
            release.wait(5)
            order.append("first done")

    def take_second() -> None:
        with second.reserve("0xbroker", lambda: 8) as nonce:
            order.append(f"second {nonce}")
            second_in.set()

    threads = [threading.Thread(target=hold_first), threading.Thread(target=take_second)]
    threads[0].start()
    assert holding.wait(5)
    threads[1].start()

    assert not second_in.wait(0.2)  # blocked on the flock
    release.set()
    assert second_in.wait(5)
    for thread in threads:
        thread.join(5)
    assert order == ["first 7", "first done", "second 8"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_file_nonces_do_not_hand_out_twice_what_a_lagging_node_has_not_counted(
    tmp_path: Path,
) -> None:
    nonces = FileNonces(tmp_path / "nonce.lock")
    for expected in (5, 6, 7):  # the node still says 5: it has not counted the last ones
        with nonces.reserve("0xbroker", lambda: 5) as nonce:
            assert nonce == expected
    with nonces.reserve("0xother", lambda: 0) as nonce:
        assert nonce == 0  # per sender
    with nonces.reserve("0xbroker", lambda: 9) as nonce:
        assert nonce == 9  # the node ahead of the file wins


def test_file_nonces_believe_the_node_when_the_file_names_another_chain(tmp_path: Path) -> None:
    nonces = FileNonces(tmp_path / "nonce.lock")
    with nonces.reserve("0xbroker", lambda: 500) as nonce:
        assert nonce == 500
    with nonces.reserve("0xbroker", lambda: 3) as nonce:  # a reset node, a restored backup
        assert nonce == 3


def test_a_send_that_fails_records_no_nonce(tmp_path: Path) -> None:
    nonces = FileNonces(tmp_path / "nonce.lock")
    with pytest.raises(RuntimeError), nonces.reserve("0xbroker", lambda: 4):
        raise RuntimeError("the node refused it")
    with nonces.reserve("0xbroker", lambda: 4) as nonce:
        assert nonce == 4


# -- what the socket answers ------------------------------------------------------------------


def test_methods_outside_served_are_not_found_and_the_head_does_not_move(
    primary: EmbeddedChain, line: Line
) -> None:
    head = primary.w3.eth.get_block("latest")

    for number, method in enumerate(NOT_SERVED):
        assert method not in SERVED
        params: list[Any] = [3600] if method == "evm_increaseTime" else []
        answer = line.ask(request(method, params, number) + "\n")
        assert error_code(answer) == -32601, method
        assert answer["id"] == number

    assert primary.w3.eth.get_block("latest")["hash"] == head["hash"]
    assert int(line.ask(request("eth_blockNumber") + "\n")["result"], 16) == head["number"]


def test_answers_carry_the_callers_request_id(line: Line) -> None:
    assert line.ask(request("eth_chainId", request_id="abc") + "\n")["id"] == "abc"
    assert line.ask(request("eth_blockNumber", request_id=41) + "\n")["id"] == 41
    assert line.ask(request("eth_getBalance", ["0x12", "latest"], 42) + "\n")["id"] == 42


def test_a_line_that_is_not_json_gets_a_parse_error_and_the_connection_answers_on(
    line: Line,
) -> None:
    for garbage in ("garbage\n", '{"jsonrpc": "2.0", "id": 1, "method": tru\n', "}\n"):
        answer = line.ask(garbage)
        assert error_code(answer) == -32700, garbage
        assert answer["id"] is None

    assert line.ask(request("eth_chainId", request_id=2) + "\n")["id"] == 2


def test_a_request_written_in_pieces_is_answered_once_complete(line: Line) -> None:
    line.send('{"jsonrpc": "2.0", "id": 3, "meth')
    line.send('od": "eth_chainId",\n')  # a line break between tokens is whitespace
    line.send(' "params": []}\n')

    assert line.answer()["id"] == 3


def test_a_non_object_and_an_empty_batch_are_invalid_requests(line: Line) -> None:
    for value in ("1", '"eth_chainId"', "[]", "null"):
        answer = line.ask(value + "\n")
        assert error_code(answer) == -32600, value
        assert answer["id"] is None

    assert "result" in line.ask(request("eth_chainId") + "\n")


def test_a_batch_gets_a_list_of_answers_in_order(primary: EmbeddedChain, line: Line) -> None:
    batch = [
        json.loads(request("eth_chainId", request_id=1)),
        json.loads(request("evm_mine", request_id=2)),
        3,
        json.loads(request("eth_blockNumber", request_id=4)),
    ]

    answers = line.ask(json.dumps(batch) + "\n")

    assert isinstance(answers, list)
    assert [a["id"] for a in answers] == [1, 2, None, 4]
    assert int(answers[0]["result"], 16) == primary.chain_id
    assert error_code(answers[1]) == -32601
    assert error_code(answers[2]) == -32600
    assert int(answers[3]["result"], 16) == primary.w3.eth.block_number


def test_wrong_shaped_params_are_invalid_params(broker_key: LocalAccount, line: Line) -> None:
    address = broker_key.address
    for method, params in [
        ("eth_getBalance", [address]),  # the block is missing
        ("eth_getBalance", [1, 2, 3]),
        ("eth_getTransactionCount", [address, {"block": 1}]),
        ("eth_getLogs", [None]),
        ("eth_estimateGas", [None]),
    ]:
        answer = line.ask(request(method, params, 5) + "\n")
        assert error_code(answer) == -32602, (method, params)
        assert answer["id"] == 5

    by_name = line.ask(request("eth_blockNumber", {"block": "latest"}) + "\n")
    assert error_code(by_name) == -32600  # only positional params are served
    assert "result" in line.ask(request("eth_blockNumber") + "\n")


def test_an_oversized_request_gets_a_parse_error_and_the_connection_is_closed(
    monkeypatch: pytest.MonkeyPatch, line: Line
) -> None:
    monkeypatch.setattr(ledger.chain.siblings, "MAX_REQUEST_BYTES", 1024)

    answer = line.ask('{"jsonrpc": "2.0", "id": 1, "method": "eth_call", "params": ["' + "a" * 4096)

    assert error_code(answer) == -32700
    assert line.closed_by_server()


# -- RpcChain over IPC ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url", ["file://relative/node.ipc", "file:relative/node.ipc", "file://host/abs/node.ipc"]
)
def test_a_relative_path_or_a_host_in_a_file_url_is_a_configuration_error(url: str) -> None:
    with pytest.raises(ConfigurationError, match="file:///absolute/path"):
        RpcChain(url)


def test_an_ipc_path_nothing_listens_on_is_chain_unavailable_at_once(tmp_path: Path) -> None:
    stale = tmp_path / "stale.ipc"  # a socket file left by a node that died
    leftover = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    leftover.bind(str(stale))
    leftover.close()

    for path in (tmp_path / "absent.ipc", stale):
        started = time.monotonic()
        with pytest.raises(ChainUnavailable, match="no Ethereum JSON-RPC node"):
            RpcChain(path.as_uri())
        assert time.monotonic() - started < 2


def connection_threads() -> int:
    return sum("process_request_thread" in t.name for t in threading.enumerate())


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_ping_over_ipc_answers_the_head_and_leaves_no_connection_open(
    primary: EmbeddedChain, sibling: RpcChain
) -> None:
    assert sibling.w3.eth.block_number >= 0  # the sibling's own connection is open
    sibling.ping()  # anything lazily opened on a first ping is opened now
    assert poll(lambda: connection_threads() == 1)  # the sibling's own connection
    descriptors = open_descriptors()

    heads = {sibling.ping() for _ in range(20)}

    assert heads == {primary.w3.eth.block_number}
    assert poll(lambda: connection_threads() == 1), "a ping's connection is still served"
    assert poll(lambda: open_descriptors() == descriptors), "a ping leaked a descriptor"


def test_closing_an_ipc_chain_closes_its_connection(served: ChainSocket) -> None:
    assert poll(lambda: connection_threads() <= 1)
    before = connection_threads()
    chain = RpcChain(served.url)
    assert chain.w3.eth.block_number >= 0
    assert poll(lambda: connection_threads() == before + 1)

    chain.close()

    assert poll(lambda: connection_threads() == before)


def started_on(path: Path, process: subprocess.Popen[bytes]) -> RpcChain:
    """The node at ``path`` once it answers (it binds the socket before it listens)."""
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, "anvil exited"
        try:
            return RpcChain(path.as_uri())
        except ChainUnavailable:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.anvil
def test_anvil_answers_over_its_ipc_socket() -> None:
    if not ANVIL.exists():
        pytest.skip(f"no anvil at {ANVIL} (npm ci installs it)")
    with tempfile.TemporaryDirectory(prefix="drl-anvil-") as folder:  # a short socket path
        path = Path(folder) / "anvil.ipc"
        process = subprocess.Popen(
            [str(ANVIL), "--port", "0", "--silent", "--ipc", str(path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            chain = started_on(path, process)
            try:
                assert chain.chain_id == 31337  # anvil's default
                assert chain.w3.eth.block_number == 0
                assert chain.ping() == 0
            finally:
                chain.close()
        finally:
            process.terminate()
            process.wait(timeout=10)

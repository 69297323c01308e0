"""Shared fixtures: chain backends, time travel, revert checks (the contract tests' deployment
with members is ``tests/contracts/conftest.py``).

Two backends run the same contract tests:

- ``embedded`` -- :class:`ledger.chain.embedded.EmbeddedChain` (py-evm in process) on a fresh
  SQLite file per module; test accounts are funded in genesis.
- ``anvil`` -- a real anvil node (``node_modules/.bin/anvil``) started once per session on a
  free loopback port; test accounts are funded from anvil's unlocked account 0.

Fixtures are module-scoped where they deploy, so each test module deploys the contracts once per
backend (py-evm runs ~25 transactions per second). Tests sharing a deployment keep out of each
other's way by using fresh content hashes (``unique_hash``) and fresh members
(``env.new_member``, in the contract tests) for anything they suspend, retire or exhaust.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from eth_account import Account
from eth_account.signers.local import LocalAccount
from web3 import Web3

from ledger.chain.backend import ChainBackend
from ledger.chain.embedded import EmbeddedChain
from ledger.chain.rpc import RpcChain
from ledger.errors import ContractRevert
from tests.support.net import free_port

ROOT = Path(__file__).resolve().parents[2]
ANVIL_BINARY = ROOT / "node_modules" / ".bin" / "anvil"
ANVIL_START_SECONDS = 20.0
FUNDING_WEI = 10**20  # 100 ether: far more than any test spends on gas
#: Accounts funded in an embedded chain's genesis; ``ChainNet.new_account`` hands them out.
EMBEDDED_RESERVE = 48
HPKE_X25519 = 1  # key suite id of DHKEM(X25519) in ledger.crypto.hpke
BACKENDS = ("embedded", pytest.param("anvil", marks=pytest.mark.anvil))


# -- the anvil node -----------------------------------------------------------------------


def _wait_for_rpc(url: str, process: subprocess.Popen[bytes], timeout: float) -> bool:
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 2}))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        try:
            w3.eth.chain_id  # noqa: B018 - the request is the readiness probe
        except Exception:  # not listening yet
            time.sleep(0.05)
            continue
        return True
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


@contextmanager
def running_anvil(log_dir: Path) -> Iterator[str]:
    """A real anvil node on a free 127.0.0.1 port for the ``with`` block; yields its URL."""
    if not ANVIL_BINARY.exists():
        pytest.fail(
            f"the anvil binary is missing at {ANVIL_BINARY}: run `npm ci` to install "
            "@foundry-rs/anvil (the anvil backend tests need a real node; deselect them with "
            "`-m 'not anvil'`)",
            pytrace=False,
        )
    log_path = log_dir / "anvil.log"
    for _attempt in range(3):  # a free port can be taken between probing and binding
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with log_path.open("ab") as log:
            process = subprocess.Popen(
                [str(ANVIL_BINARY), "--host", "127.0.0.1", "--port", str(port), "--silent"],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if _wait_for_rpc(url, process, ANVIL_START_SECONDS):
            break
        _stop(process)
    else:
        pytest.fail(
            f"anvil did not start; its output:\n{log_path.read_text(errors='replace')}",
            pytrace=False,
        )
    try:
        yield url
    finally:
        _stop(process)


@pytest.fixture(scope="session")
def anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a real anvil node shared by the session (contract tests may move its clock)."""
    with running_anvil(tmp_path_factory.mktemp("anvil")) as url:
        yield url


@pytest.fixture(scope="module")
def wall_clock_anvil_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A fresh anvil node for one module, its clock on the wall clock.

    For tests that run a real broker: the broker signs and checks deadlines by the wall clock,
    and the session's node may have been moved days ahead by contract tests' time travel.
    """
    with running_anvil(tmp_path_factory.mktemp("anvil")) as url:
        yield url


# -- a backend with funding and time travel -----------------------------------------------


@dataclass
class ChainNet:
    """A chain backend under test plus funding, clock reading and time travel."""

    kind: str  # "embedded" or "anvil"
    backend: ChainBackend
    _reserve: list[LocalAccount] = field(default_factory=list)

    @property
    def w3(self) -> Web3:
        return self.backend.w3

    def new_account(self) -> LocalAccount:
        """A fresh account holding ether (genesis reserve on embedded, funded on anvil)."""
        if self.kind == "embedded":
            if not self._reserve:
                raise RuntimeError(
                    f"all {EMBEDDED_RESERVE} genesis-funded accounts of this module's embedded "
                    "chain are used: raise EMBEDDED_RESERVE in tests/conftest.py"
                )
            return self._reserve.pop()
        account: LocalAccount = Account.create()
        funder = self.w3.eth.accounts[0]  # anvil's unlocked default account 0
        tx_hash = self.w3.eth.send_transaction(
            {"from": funder, "to": account.address, "value": FUNDING_WEI}
        )
        self.w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30)
        return account

    def now(self) -> int:
        """Timestamp of the latest block (what ``eth_call`` sees)."""
        return int(self.w3.eth.get_block("latest")["timestamp"])

    def travel(self, seconds: int) -> int:
        """Mine a block at least ``seconds`` after the latest one; returns its timestamp.

        Both nodes keep time as wall clock + offset, never going below the parent's time.
        Should a chain be ahead of that clock (many blocks a second, each a second later),
        one step of ``seconds`` moves the head by less: step again until it got there.
        """
        target = self.now() + seconds
        head = self._advance(seconds)
        while head < target:
            head = self._advance(target - head)
        return head

    def _advance(self, seconds: int) -> int:
        if self.kind == "embedded":
            assert isinstance(self.backend, EmbeddedChain)
            return self.backend.advance_time(seconds)
        provider = self.w3.provider
        for method, params in (("evm_increaseTime", [seconds]), ("evm_mine", [])):
            response = provider.make_request(method, params)  # type: ignore[arg-type]
            assert "error" not in response, response
        return self.now()


@pytest.fixture(scope="module", params=BACKENDS)
def net(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ChainNet]:
    """One chain per test module and backend, with funding and time travel."""
    if request.param == "embedded":
        reserve = [Account.create() for _ in range(EMBEDDED_RESERVE)]
        path = tmp_path_factory.mktemp("embedded") / "chain.sqlite"
        backend = EmbeddedChain(path, funded=[a.address for a in reserve], balance_wei=FUNDING_WEI)
        chain_net = ChainNet("embedded", backend, reserve)
    else:
        backend = RpcChain(request.getfixturevalue("anvil_url"))
        chain_net = ChainNet("anvil", backend)
    try:
        yield chain_net
    finally:
        backend.close()


@pytest.fixture(scope="module")
def backend(net: ChainNet) -> ChainBackend:
    """The module's :class:`ChainBackend` (embedded py-evm or a real anvil node)."""
    return net.backend


@pytest.fixture(scope="module")
def time_travel(net: ChainNet) -> Callable[[int], int]:
    """``time_travel(seconds)`` moves chain time forward on either backend."""
    return net.travel


# -- helpers ------------------------------------------------------------------------------


def new_hash() -> bytes:
    """32 random bytes: a content, metadata, purpose or receipt hash no other test uses."""
    return os.urandom(32)


def encryption_key() -> bytes:
    """A real X25519 public key (HPKE suite 1), as members register them."""
    public = x25519.X25519PrivateKey.generate().public_key()
    return public.public_bytes(Encoding.Raw, PublicFormat.Raw)


@contextmanager
def expect_revert(error: str, **args: Any) -> Iterator[pytest.ExceptionInfo[ContractRevert]]:
    """Expect a :class:`ContractRevert` naming ``error`` with (at least) these arguments."""
    with pytest.raises(ContractRevert) as info:
        yield info
    assert info.value.error == error, f"expected {error}, got {info.value}"
    for name, expected in args.items():
        assert name in info.value.error_args, f"{info.value} has no argument {name!r}"
        assert info.value.error_args[name] == expected, f"{name} in {info.value}"


@pytest.fixture(scope="session")
def unique_hash() -> Callable[[], bytes]:
    """``unique_hash()`` returns 32 fresh random bytes."""
    return new_hash


@pytest.fixture(scope="session")
def reverts() -> Callable[..., Any]:
    """``with reverts("ErrorName", arg=value): ...`` asserts a decoded custom error."""
    return expect_revert

"""A deployment under attack: a real ``drl serve``, member machines, and the attacker's tools.

:class:`Site` is one broker (``drl serve`` on the embedded chain, or on a real anvil node with
``DRL_CHAIN_URL``) plus members that each have a home of their own (their machine: keystore,
pinned deployment, kept checkpoints). Members act through the installed ``drl`` (``site.drl``)
or the SDK (``site.sdk``), against the real broker or a stand-in. The attacker holds the
broker host: its database (``site.db``), its blob store, the BROKER key
(``site.attacker_chain()``; inside ``site.broker_stopped()``, which stops the broker only on the
embedded chain, whose file one process holds) and, in the single-host setup, the ADMIN key too.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.chain.client import LedgerChain
from ledger.chain.home import OpenedChain, open_chain
from ledger.client import keystore
from ledger.client.member import MemberKeys
from ledger.client.sdk import BrokerClient
from ledger.crypto import generate_keypair
from ledger.keys import load_account, save_account
from ledger.types import MemberKind
from tests.support.broker import DRL, start_broker, stop_broker
from tests.support.http_kit import PASSPHRASE, env_for
from tests.support.net import free_port

os.environ.setdefault("DRL_KDF_FAST", "1")

#: Both setups: the embedded chain inside the broker, and a real anvil node members read.
BACKENDS = ["embedded", pytest.param("anvil", marks=pytest.mark.anvil)]
FUNDS = 10**21


@dataclass
class Member:
    """A member's machine: its home (keystore, trust directory) and keys."""

    handle: str
    home: Path
    profile: keystore.Profile
    keys: MemberKeys

    @property
    def address(self) -> str:
        return self.profile.address


@dataclass
class Site:
    """One broker under attack and the members around it."""

    backend: str
    root: Path
    home: Path  # the broker host's DRL_HOME: broker/ (BROKER key, db, blobs) and admin/
    chain_url: str | None
    port: int
    process: subprocess.Popen[bytes] | None = None
    members: dict[str, Member] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def broker_dir(self) -> Path:
        return self.home / "broker"

    # -- the broker process ---------------------------------------------------------------

    def serve_env(self) -> dict[str, str]:
        env = env_for(self.home, self.url)
        if self.chain_url:
            env["DRL_CHAIN_URL"] = self.chain_url
        return env

    def start(self) -> None:
        self.process = start_broker(
            self.serve_env(), port=self.port, log=self.root / "serve.log", cwd=self.root
        )

    def stop(self) -> None:
        if self.process is not None:
            stop_broker(self.process)
            self.process = None

    @contextmanager
    def broker_stopped(self) -> Iterator[None]:
        """The broker down while the attacker uses its key, started again afterwards.

        Only the embedded chain needs it (its file is locked to one process); on a node the
        attacker sends beside the idle broker, whose next transaction resyncs its nonce.
        """
        if self.chain_url:
            yield
            return
        self.stop()
        try:
            yield
        finally:
            self.start()

    # -- members --------------------------------------------------------------------------

    def new_member(self, handle: str, kind: MemberKind, name: str) -> Member:
        """A member with a home of its own, onboarded with the operator's signed Onboard."""
        home = self.root / f"m-{handle}"
        profile = keystore.create(home, handle, kind=kind, name=name, passphrase=PASSPHRASE)
        with self.admin_sdk() as op:
            op.onboard(
                address=profile.address,
                kind=profile.kind,
                name=profile.name,
                key_suite=profile.key_suite,
                encryption_key=bytes.fromhex(profile.encryption_key[2:]),
            )
        member = Member(handle, home, profile, keystore.unlock(home, handle, PASSPHRASE))
        self.members[handle] = member
        return member

    def env(self, who: str, url: str | None = None) -> dict[str, str]:
        """The environment of ``drl`` on ``who``'s machine (``admin``: the operator's)."""
        if who == "admin":
            env = env_for(self.home, url or self.url)
        else:
            env = env_for(self.members[who].home, url or self.url)
            env["DRL_AS"] = who
        if self.chain_url:
            env["DRL_CHAIN_URL"] = self.chain_url
        return env

    def drl(
        self, who: str, *args: str, url: str | None = None, extra: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The installed ``drl`` as ``who``, against ``url`` (default: the real broker)."""
        return subprocess.run(
            [DRL, *args],
            capture_output=True,
            text=True,
            env=self.env(who, url) | (extra or {}),
            timeout=180,
            cwd=self.root,
        )

    def sdk(self, who: str, url: str | None = None) -> BrokerClient:
        """The SDK as ``who`` would run it on its machine (same trust directory as its CLI)."""
        member = self.members[who]
        return BrokerClient(
            url or self.url,
            member.keys,
            trust_dir=member.home / "trust",
            chain_url=self.chain_url,
        )

    def admin_account(self) -> LocalAccount:
        return load_account(self.home / "admin" / "admin.key.json", PASSPHRASE)

    def admin_sdk(self, url: str | None = None) -> BrokerClient:
        keys = MemberKeys(account=self.admin_account(), hpke=generate_keypair()[0])
        return BrokerClient(
            url or self.url, keys, trust_dir=self.home / "trust", chain_url=self.chain_url
        )

    # -- the attacker's tools -------------------------------------------------------------

    def broker_account(self) -> LocalAccount:
        return load_account(self.broker_dir / "broker.key.json", PASSPHRASE)

    @contextmanager
    def attacker_chain(self) -> Iterator[LedgerChain]:
        """The contracts, signing as the BROKER key read from the broker host."""
        opened: OpenedChain = open_chain(
            self.broker_dir, PASSPHRASE, admin=None, chain_url=self.chain_url
        )
        try:
            yield opened.chain
        finally:
            opened.close()

    def db(self) -> sqlite3.Connection:
        """The broker's own database, opened behind its back."""
        return sqlite3.connect(self.broker_dir / "broker.db", timeout=30, isolation_level=None)


def _fund(chain_url: str, address: str) -> None:
    import httpx

    answer = httpx.post(
        chain_url,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "anvil_setBalance",
            "params": [address, hex(FUNDS)],
        },
        timeout=10,
    ).json()
    assert "error" not in answer, answer


@pytest.fixture(scope="module", params=BACKENDS)
def site(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Site]:
    """A broker of this module on each backend; stopped at the end of the module."""
    root = tmp_path_factory.mktemp(f"adversary-{request.param}")
    home = root / "srv"
    chain_url: str | None = None
    if request.param == "anvil":
        chain_url = request.getfixturevalue("wall_clock_anvil_url")
        # The broker key must hold ether on a real node: made here and funded before the start.
        broker = Account.create()
        save_account(home / "broker" / "broker.key.json", broker, PASSPHRASE)
        _fund(chain_url, broker.address)
    s = Site(backend=request.param, root=root, home=home, chain_url=chain_url, port=free_port())
    s.start()
    try:
        yield s
    finally:
        s.stop()

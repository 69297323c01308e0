"""A real broker for HTTP tests: `drl serve` in a subprocess on a free loopback port."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ledger.client import keystore
from ledger.client.sdk import BrokerClient
from ledger.keys import load_account
from tests.support.broker import DRL, start_broker, stop_broker
from tests.support.net import free_port

PASSPHRASE = "integration-test-passphrase"


def env_for(home: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRL_")}
    env.update(
        DRL_HOME=str(home),
        DRL_PASSPHRASE=PASSPHRASE,
        DRL_KDF_FAST="1",
        DRL_BROKER_URL=url,
        COLUMNS="200",
        DRL_ANCHOR_EVERY_SECONDS="3600",
    )
    return env


@dataclass
class RunningBroker:
    """A broker process and how to reach it."""

    home: Path
    url: str
    process: subprocess.Popen[bytes]

    @property
    def env(self) -> dict[str, str]:
        return env_for(self.home, self.url)

    def drl(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [DRL, *args],
            capture_output=True,
            text=True,
            env=self.env,
            timeout=timeout,
        )

    def client(self, handle: str) -> BrokerClient:
        os.environ.setdefault("DRL_KDF_FAST", "1")
        if handle == "operator":
            from ledger.client.member import MemberKeys
            from ledger.crypto import generate_keypair

            account = load_account(self.home / "admin" / "admin.key.json", PASSPHRASE)
            return BrokerClient(self.url, MemberKeys(account=account, hpke=generate_keypair()[0]))
        return BrokerClient(self.url, keystore.unlock(self.home, handle, PASSPHRASE))


@contextmanager
def running_broker(
    home: Path, *, extra_env: dict[str, str] | None = None, args: tuple[str, ...] = ()
) -> Iterator[RunningBroker]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = env_for(home, url) | (extra_env or {})
    log = home.parent / f"{home.name}-serve.log"
    process = start_broker(env, port=port, log=log, timeout=60, args=args)
    try:
        yield RunningBroker(home=home, url=url, process=process)
    finally:
        stop_broker(process)


def new_member(
    broker: RunningBroker,
    handle: str,
    kind: str,
    name: str,
    *,
    onboard: bool = True,
    pq: bool = False,
) -> keystore.Profile:
    os.environ.setdefault("DRL_KDF_FAST", "1")
    profile = keystore.create(
        broker.home,
        handle,
        kind=kind,
        name=name,  # type: ignore[arg-type]
        passphrase=PASSPHRASE,
        pq=pq,
    )
    if onboard:
        with broker.client("operator") as op:
            op.onboard(
                address=profile.address,
                kind=profile.kind,
                name=profile.name,
                key_suite=profile.key_suite,
                encryption_key=bytes.fromhex(profile.encryption_key[2:]),
            )
    return profile

"""A local scale-out cluster: PostgreSQL, anvil, a shared blob volume and two ``drl serve``.

Used by ``tests/scaleout/test_cluster.py`` and by ``scripts/cluster`` (a person's cluster):

- PostgreSQL: a throwaway cluster (``tests/support/pg.py``) and a fresh database in it;
- the node: a real anvil from ``node_modules`` behind :class:`NodeProxy`, a TCP relay the tests
  stop to make the node unreachable (connections refused) and start again, state intact;
- the BROKER key in one keystore both replicas read (``DRL_BROKER_KEY``), funded on anvil; the
  ADMIN key elsewhere (the replicas get only ``DRL_ADMIN_ADDRESS``);
- a shared blob directory (``DRL_BLOB_STORE``): the shared volume of a real deployment;
- replica ``a`` starts first and deploys; replica ``b`` gets a copy of ``a``'s
  ``deployment.json`` (what docs/deploy.md tells an operator to do) and joins.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from eth_account import Account

from ledger.keys import save_account
from tests.support.broker import start_broker, stop_broker
from tests.support.http_kit import PASSPHRASE, env_for
from tests.support.net import free_port

FUNDS = 10**21
LEASE_SECONDS = 3.0


class NodeProxy:
    """A TCP relay on a fixed loopback port to ``upstream``; ``down()`` refuses connections."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = upstream_port
        self.port = free_port()
        self._server: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(128)
        self._server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def down(self) -> None:
        """Stop listening and cut every open connection: the node looks gone."""
        server, self._server = self._server, None
        if server is not None:
            # shutdown() first: on Linux it wakes the thread blocked in accept() and stops
            # listening at once (close() alone leaves the socket listening until accept returns).
            with suppress(OSError):
                server.shutdown(socket.SHUT_RDWR)
            server.close()
        with self._lock:
            for conn in self._open:
                with suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
                conn.close()
            self._open.clear()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return  # closed by down()
            try:
                node = socket.create_connection(("127.0.0.1", self.upstream), timeout=5)
            except OSError:
                client.close()
                continue
            node.settimeout(None)
            with self._lock:
                self._open.update((client, node))
            for a, b in ((client, node), (node, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            with self._lock:
                self._open.discard(src)
                self._open.discard(dst)
            src.close()


@dataclass
class Replica:
    name: str
    home: Path
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 120.0) -> None:
        self.process = start_broker(self.env, port=self.port, log=self.log, timeout=timeout)

    def stop(self) -> None:
        if self.process is not None:
            stop_broker(self.process)
            self.process = None

    def kill(self) -> None:
        """``kill -9``: no shutdown, no lease released."""
        if self.process is not None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)
            self.process = None

    def health(self) -> httpx.Response:
        return httpx.get(f"{self.url}/v1/health", timeout=15)


@dataclass
class LocalCluster:
    root: Path
    database_url: str
    node_url: str  # anvil itself: what members read through (their own node)
    proxy: NodeProxy
    admin_key: Path
    broker_key: Path
    blobs: Path
    replicas: dict[str, Replica] = field(default_factory=dict)

    def replica_env(self, name: str, home: Path, port: int) -> dict[str, str]:
        from ledger.keys import keystore_address

        env = env_for(home, f"http://127.0.0.1:{port}")
        env.update(
            DRL_DATABASE_URL=self.database_url,
            DRL_CHAIN_URL=self.proxy.url,
            DRL_BROKER_KEY=str(self.broker_key),
            DRL_BLOB_STORE=str(self.blobs),
            DRL_ADMIN_ADDRESS=keystore_address(self.admin_key),
            DRL_REPLICA_ID=name,
            DRL_ANCHOR_LEASE_SECONDS=str(LEASE_SECONDS),
            DRL_ANCHOR_EVERY_RECORDS="100000",
            # The load test runs 20 transfers per replica for one member at once.
            DRL_TRANSFERS_PER_MEMBER="64",
            DRL_TRANSFERS_TOTAL="128",
        )
        return env

    def add_replica(self, name: str) -> Replica:
        home = self.root / name
        port = free_port()
        replica = Replica(
            name=name,
            home=home,
            port=port,
            env=self.replica_env(name, home, port),
            log=self.root / f"{name}-serve.log",
        )
        self.replicas[name] = replica
        return replica

    def join(self, name: str, first: Replica) -> Replica:
        """A second replica: the first one's deployment file copied into its home."""
        replica = self.add_replica(name)
        target = replica.home / "broker"
        target.mkdir(parents=True, exist_ok=True, mode=0o700)
        shutil.copy2(first.home / "broker" / "deployment.json", target / "deployment.json")
        return replica


def fund(node_url: str, address: str) -> None:
    answer = httpx.post(
        node_url,
        json={
            "jsonrpc": "2.0",
            "id": 1,
            "method": "anvil_setBalance",
            "params": [address, hex(FUNDS)],
        },
        timeout=10,
    ).json()
    assert "error" not in answer, answer


@contextmanager
def local_cluster(root: Path, *, database_url: str, node_url: str) -> Iterator[LocalCluster]:
    """Two replicas, ``a`` (deployed the contracts) and ``b`` (joined), both serving."""
    os.environ.setdefault("DRL_KDF_FAST", "1")
    root.mkdir(parents=True, exist_ok=True)
    upstream = int(node_url.rsplit(":", 1)[1])
    proxy = NodeProxy(upstream)
    proxy.up()
    shared = root / "shared"
    broker = Account.create()
    save_account(shared / "broker.key.json", broker, PASSPHRASE)
    fund(node_url, broker.address)
    admin = Account.create()
    save_account(root / "operator" / "admin.key.json", admin, PASSPHRASE)
    cluster = LocalCluster(
        root=root,
        database_url=database_url,
        node_url=node_url,
        proxy=proxy,
        admin_key=root / "operator" / "admin.key.json",
        broker_key=shared / "broker.key.json",
        blobs=shared / "blobs",
    )
    with ExitStack() as stack:
        stack.callback(proxy.down)
        a = cluster.add_replica("a")
        stack.callback(lambda: cluster.replicas["a"].stop())
        a.start()
        b = cluster.join("b", a)
        stack.callback(lambda: cluster.replicas["b"].stop())
        b.start()
        yield cluster

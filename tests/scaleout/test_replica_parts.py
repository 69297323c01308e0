"""The parts replicas share, each on its own (cheap; the cluster test runs them together).

The install's PostgreSQL driver, the deployment a database records, the anchoring lease, the
BROKER key's shared nonces, error text that names no endpoint, and health per part.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from fastapi.testclient import TestClient
from web3.exceptions import Web3RPCError

from api.errors import status_of
from api.main import create_app
from ledger.chain.tx import translated_errors
from ledger.errors import ChainError, ChainUnavailable, ConfigurationError
from ledger.redact import scrub_endpoints
from ledger.store.db import Database
from ledger.store.replicas import (
    DeploymentFacts,
    LeaseKeeper,
    SharedNonces,
    check_deployment,
)
from tests.support.processes import wait_until

FACTS = DeploymentFacts(
    chain_id=31337,
    member_registry="0x" + "11" * 20,
    data_registry="0x" + "22" * 20,
    access_ledger="0x" + "33" * 20,
    flow_log="0x" + "44" * 20,
    sharing_credits="0x" + "55" * 20,
    admin="0x" + "66" * 20,
    broker="0x" + "77" * 20,
    block_number=1,
)


def test_a_missing_postgresql_driver_is_one_line_before_anything_is_deployed(
    tmp_path: Path,
) -> None:
    hide = "import sys; sys.modules['psycopg'] = None; sys.argv = ['drl', 'serve']; "
    env = {
        "PATH": "/usr/bin:/bin",
        "DRL_HOME": str(tmp_path / "home"),
        "DRL_PASSPHRASE": "x" * 12,
        "DRL_DATABASE_URL": "postgresql+psycopg://drl@127.0.0.1:9/drl",
    }
    result = subprocess.run(
        [sys.executable, "-c", hide + "from ledger.cli import main; main()"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error [database_driver_missing]:")
    assert "psycopg[binary]" in lines[0]
    assert not (tmp_path / "home" / "broker" / "deployment.json").exists()
    assert not (tmp_path / "home" / "broker" / "broker.key.json").exists()


# -- the deployment a database belongs to ---------------------------------------------------


def test_the_first_start_records_the_deployment_and_the_same_one_is_accepted(
    db: Database,
) -> None:
    assert check_deployment(db, FACTS) is True
    assert check_deployment(db, FACTS) is False


def test_another_deployment_or_key_is_refused_naming_each_difference(
    db: Database,
) -> None:
    check_deployment(db, FACTS)
    other = DeploymentFacts(
        **{**FACTS.__dict__, "flow_log": "0x" + "99" * 20, "broker": "0x" + "88" * 20}
    )
    with pytest.raises(ConfigurationError) as info:
        check_deployment(db, other)
    assert info.value.code == "deployment_mismatch"
    assert "flow_log: database 0x4444" in info.value.message
    assert "broker: database 0x7777" in info.value.message
    assert "member_registry" not in info.value.message


def test_a_replica_without_the_deployment_file_is_refused_before_it_makes_keys(
    tmp_path: Path,
) -> None:
    from ledger.broker import open_broker
    from ledger.settings import Settings

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    shared = Database(url)
    shared.upgrade()
    check_deployment(shared, FACTS)
    shared.dispose()
    settings = Settings(home=tmp_path / "b", database_url=url)
    with pytest.raises(ConfigurationError) as info:
        open_broker(settings, "passphrase-for-b")
    assert info.value.code == "deployment_mismatch"
    assert "deployment.json" in info.value.message
    assert not (tmp_path / "b" / "broker" / "broker.key.json").exists()
    assert not (tmp_path / "b" / "admin").exists()


# -- the anchoring lease ----------------------------------------------------------------------


def test_one_replica_holds_the_lease_and_another_takes_it_once_it_lapses(
    db: Database,
) -> None:
    a = LeaseKeeper(db, name="anchoring", holder="a", seconds=0.5)
    b = LeaseKeeper(db, name="anchoring", holder="b", seconds=0.5)
    assert a.hold()
    assert not b.hold()
    assert a.hold()  # renewing
    assert b.state().holder == "a"
    # a stopped renewing (killed): b takes over within the lease
    assert wait_until(b.hold, 5, every=0.02)
    assert not a.hold()
    b.release()  # a clean stop hands over at once
    assert a.hold()


def test_a_follower_request_is_seen_by_the_holder_and_cleared_when_answered(
    db: Database,
) -> None:
    a = LeaseKeeper(db, name="anchoring", holder="a", seconds=5)
    b = LeaseKeeper(db, name="anchoring", holder="b", seconds=5)
    a.hold()
    asked = b.request()
    assert asked
    assert a.requested() == asked
    a.answered(asked)
    assert a.requested() is None


def test_shared_nonces_never_hand_out_one_nonce_twice(pg_url: str) -> None:
    from tests.support.pg import fresh_schema

    database = Database(fresh_schema(pg_url))
    database.upgrade()
    try:
        nonces = SharedNonces(database)
        # Two "replicas" (sources on one database) and 16 threads: each sends under the lock.
        sources = [nonces, SharedNonces(database)]
        node_pending = [3]  # the node's pending count starts at 3 (earlier transactions)
        lock = threading.Lock()

        def send(i: int) -> int:
            with sources[i % 2].reserve("0xBroker", lambda: node_pending[0]) as nonce:
                with lock:
                    node_pending[0] = max(node_pending[0], nonce + 1)
                return nonce

        with ThreadPoolExecutor(16) as pool:
            used = list(pool.map(send, range(40)))
        assert sorted(used) == list(range(3, 43))

        refused: list[int] = []

        def refuse() -> None:
            with nonces.reserve("0xBroker", lambda: 0) as nonce:
                refused.append(nonce)
                raise RuntimeError("the node refused the transaction")

        with pytest.raises(RuntimeError):
            refuse()
        assert refused == [43]
        with nonces.reserve("0xBroker", lambda: 0) as nonce:
            assert nonce == 43  # the refused one was not consumed
    finally:
        database.dispose()


# -- chain errors reach clients as codes, without endpoints --------------------------------


def test_an_unreachable_node_is_503_without_its_host_or_port() -> None:
    with pytest.raises(ChainUnavailable) as info, translated_errors():
        raise requests.ConnectionError(
            "HTTPConnectionPool(host='10.1.2.3', port=58546): "
            "Max retries exceeded with url: /v3/KEY"
        )
    assert status_of(info.value) == 503
    for secret in ("10.1.2.3", "58546", "KEY"):
        assert secret not in info.value.message


def test_a_node_refusing_a_transaction_is_503_chain_refused_not_500() -> None:
    refusal = Web3RPCError(
        "{'code': -32003, 'message': 'nonce too low'}",
        rpc_response={"error": {"code": -32003, "message": "nonce too low"}},
    )
    with pytest.raises(ChainError) as info, translated_errors():
        raise refusal
    assert info.value.code == "chain_refused"
    assert status_of(info.value) == 503
    assert "nonce too low" in info.value.message


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("HTTPConnectionPool(host='node.internal', port=8545): refused", ["node.internal", "8545"]),
        ('connection to server at "10.0.0.5", port 5432 failed', ["10.0.0.5", "5432"]),
        ("POST https://user:pw@rpc.example.com/v3/abc failed", ["rpc.example.com", "pw", "abc"]),
        ("node 192.168.1.7:8545 timed out", ["192.168.1.7", "8545"]),
    ],
)
def test_messages_for_clients_name_no_endpoint(text: str, hidden: list[str]) -> None:
    shown = scrub_endpoints(text)
    for secret in hidden:
        assert secret not in shown


# -- health per part ------------------------------------------------------------------------


def test_health_names_the_part_that_is_down_with_503_and_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledger.broker import open_broker
    from ledger.settings import Settings

    monkeypatch.setenv("DRL_KDF_FAST", "1")
    broker = open_broker(Settings(home=tmp_path / "home"), "passphrase-for-health")
    try:
        client = TestClient(create_app(broker))
        ok = client.get("/v1/health")
        assert ok.status_code == 200
        assert ok.json()["status"] == "ok"

        def down(*, timeout: float = 2.0) -> int:
            raise ChainUnavailable("chain node not reachable (connection refused)")

        backend = broker.ledger.chain.backend
        backend.ping = down  # type: ignore[method-assign]
        answer = client.get("/v1/health")
        assert answer.status_code == 503
        body = answer.json()
        assert body["code"] == "chain_unavailable"
        assert body["chain"] == {
            "ok": False,
            "code": "chain_unavailable",
            "message": "chain node not reachable (connection refused)",
        }
        assert body["database"]["ok"]
        assert body["blobs"]["ok"]
        del backend.ping
        store = broker.ledger.blobs
        (store.root / ".tmp").rename(tmp_path / "moved")  # type: ignore[attr-defined]
        answer = client.get("/v1/health")
        assert answer.status_code == 503
        assert answer.json()["code"] == "blob_store_unavailable"
        assert answer.json()["chain"]["ok"]
    finally:
        broker.close()

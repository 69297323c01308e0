"""Two broker replicas on PostgreSQL, a real anvil node and a shared blob volume (issue 10).

One cluster per module (tests/scaleout/cluster.py): replica ``a`` deployed the contracts,
``b`` joined with ``a``'s deployment file and the shared BROKER key. The tests run in order,
each on what the previous left, as an operator's day would:

the exchange across replicas; a replica of another deployment refused; simultaneous anchoring
(one anchor per head, no failed or wasted transaction); ``kill -9`` of the leader while it
anchors (takeover, nothing lost or double-minted); the node unreachable for 20 s (503 with a
code everywhere, health included, then recovery without a restart); 40 concurrent fetches on
one grant split over both replicas (no 500, uses equal to successful fetches); the log verified
clean through each replica.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from web3 import Web3

from ledger.chain.client import LedgerChain
from ledger.chain.models import Deployment
from ledger.chain.rpc import RpcChain
from ledger.client import keystore
from ledger.client.member import MemberKeys
from ledger.client.sdk import BrokerClient
from ledger.crypto import generate_keypair
from ledger.keys import load_account
from tests.scaleout.cluster import LEASE_SECONDS, LocalCluster, Replica, local_cluster
from tests.support.broker import DRL
from tests.support.http_kit import PASSPHRASE
from tests.support.pg import Cluster, fresh_database

pytestmark = pytest.mark.anvil

SAMPLE = Path(__file__).resolve().parents[2] / "samples" / "building_permits.csv"
SCHEMA = SAMPLE.with_name("building_permits.schema.json")
NODE_DOWN_SECONDS = 20
CONCURRENT_FETCHES = 40
USES = 30


@dataclass
class Site:
    cluster: LocalCluster
    members: Path
    dataset: int = 0

    @property
    def a(self) -> Replica:
        return self.cluster.replicas["a"]

    @property
    def b(self) -> Replica:
        return self.cluster.replicas["b"]

    def client(self, who: str, replica: Replica) -> BrokerClient:
        if who == "operator":
            account = load_account(self.cluster.admin_key, PASSPHRASE)
            keys = MemberKeys(account=account, hpke=generate_keypair()[0])
            trust = self.cluster.root / "operator" / "trust"
        else:
            keys = keystore.unlock(self.members, who, PASSPHRASE)
            trust = self.members / who / "trust"
        # Members read the chain through a node of their own (anvil itself, not the replicas').
        return BrokerClient(replica.url, keys, trust_dir=trust, chain_url=self.cluster.node_url)

    def chain(self) -> LedgerChain:
        deployment = Deployment.load(self.a.home / "broker" / "deployment.json")
        return LedgerChain(RpcChain(self.cluster.node_url), deployment)

    def leader(self) -> Replica:
        deadline = time.monotonic() + 3 * LEASE_SECONDS + 10
        while time.monotonic() < deadline:
            leaders = [r for r in (self.a, self.b) if r.process and r.health().json()["leader"]]
            if len(leaders) == 1:
                return leaders[0]
            time.sleep(0.2)
        raise AssertionError("no single anchoring leader")


@pytest.fixture(scope="module")
def site(
    pg_cluster: Cluster,
    wall_clock_anvil_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("scaleout")
    with local_cluster(
        root, database_url=fresh_database(pg_cluster), node_url=wall_clock_anvil_url
    ) as cluster:
        members = root / "members"
        s = Site(cluster=cluster, members=members)
        with s.client("operator", s.a) as operator:
            for handle, kind, name in (
                ("office", "department", "District Planning Office"),
                ("coop", "enterprise", "Harbour Solar Cooperative"),
                ("dpa", "regulator", "Data Protection Authority"),
            ):
                p = keystore.create(members, handle, kind=kind, name=name, passphrase=PASSPHRASE)  # type: ignore[arg-type]
                operator.onboard(
                    address=p.address,
                    kind=p.kind,
                    name=p.name,
                    key_suite=p.key_suite,
                    encryption_key=bytes.fromhex(p.encryption_key[2:]),
                )
        yield s


def _broker_txs(site: Site, first_block: int) -> list[tuple[str, int]]:
    """(function selector name, status) of every transaction the BROKER key sent since."""
    chain = site.chain()
    w3 = chain.w3
    broker = chain.deployment.broker
    names = {}
    for contract in ("FlowLog", "SharingCredits", "AccessLedger"):
        c = chain.contract(contract)
        for fn in c.all_functions():
            names[bytes(Web3.keccak(text=fn.signature)[:4])] = fn.fn_name
    out = []
    for number in range(first_block, w3.eth.block_number + 1):
        block = w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            if tx["from"] != broker:
                continue
            receipt = w3.eth.get_transaction_receipt(tx["hash"])
            out.append((names.get(bytes(tx["input"][:4]), "?"), int(receipt["status"])))
    return out


def test_the_exchange_runs_across_replicas(site: Site, tmp_path: Path) -> None:
    with site.client("office", site.a) as owner:
        dataset = owner.register(
            SAMPLE, title="Permits (replicas)", schema=json.loads(SCHEMA.read_text())
        )
    site.dataset = dataset.id
    with site.client("coop", site.b) as consumer:
        request = consumer.request_access(dataset.id, purpose="solar potential", days=30, uses=3)
    with site.client("office", site.a) as owner:
        assert owner.approve(request.id).status == "granted"
    out = tmp_path / "received.csv"
    with site.client("coop", site.b) as consumer:  # uploaded through a, fetched through b
        fetched = consumer.fetch(dataset.id, out)
    assert out.read_bytes() == SAMPLE.read_bytes()
    assert fetched.content_hash == dataset.content_hash


def test_both_replicas_are_healthy_and_one_leads(site: Site) -> None:
    answers = [r.health() for r in (site.a, site.b)]
    assert [a.status_code for a in answers] == [200, 200]
    bodies = [a.json() for a in answers]
    assert all(b["database"]["ok"] and b["chain"]["ok"] and b["blobs"]["ok"] for b in bodies)
    assert sorted(b["leader"] for b in bodies) == [False, True]
    assert {b["replica"] for b in bodies} == {"a", "b"}


def test_a_replica_with_a_deployment_of_its_own_is_refused_before_deploying(site: Site) -> None:
    home = site.cluster.root / "stray"
    env = site.cluster.replica_env("stray", home, 1) | {"DRL_BROKER_KEY": str(home / "own.key")}
    result = subprocess.run(
        [DRL, "serve", "--port", "1"], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    line = result.stderr.strip()
    assert line.startswith("error [deployment_mismatch]:"), line
    assert "deployment.json" in line
    assert not (home / "broker" / "deployment.json").exists()
    assert not (home / "own.key").exists()


def test_simultaneous_anchoring_sends_one_anchor_per_head_and_no_wasted_transaction(
    site: Site,
) -> None:
    chain = site.chain()
    first = chain.w3.eth.block_number + 1
    barrier = threading.Barrier(2)

    def anchor(replica: Replica) -> object:
        with site.client("operator", replica) as operator:
            barrier.wait(timeout=30)
            return operator.anchor()

    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(anchor, (site.a, site.b)))
    sizes = {r.tree_size for r in results}  # type: ignore[attr-defined]
    assert len(sizes) == 1
    head = chain.latest_head()
    assert head.tree_size == sizes.pop()
    sent = _broker_txs(site, first)
    assert all(status == 1 for _, status in sent), sent
    assert [name for name, _ in sent].count("anchor") == 1, sent
    assert [name for name, _ in sent].count("mintBatch") <= 1, sent
    anchored = [ev.args["treeSize"] for ev in chain.events("FlowLog", "TreeHeadAnchored")]
    assert len(anchored) == len(set(anchored))


def test_killing_the_leader_while_it_anchors_hands_over_without_loss_or_double_mint(
    site: Site, tmp_path: Path
) -> None:
    with site.client("coop", site.b) as consumer:  # two deliveries waiting for credits
        for i in range(2):
            consumer.fetch(site.dataset, tmp_path / f"again-{i}.csv")
    chain = site.chain()
    before = chain.latest_head().tree_size
    leader = site.leader()
    survivor = site.b if leader is site.a else site.a
    asked = threading.Thread(target=lambda: _anchor_quietly(site, leader), daemon=True)
    asked.start()
    deadline = time.monotonic() + 60
    while chain.latest_head().tree_size == before:  # the anchor transaction is mined ...
        assert time.monotonic() < deadline, "the leader never anchored"
        time.sleep(0.02)
    leader.kill()  # ... and the leader dies before it can note it or mint
    with site.client("operator", survivor) as operator:
        result = operator.anchor()  # a follower until the dead leader's lease lapses
        head = operator.log_head()
    assert result.tree_size == head.size == head.anchored_size
    minted = chain.events("SharingCredits", "CreditsMinted")
    receipt_ids = [bytes(ev.args["receiptId"]) for ev in minted]
    assert len(receipt_ids) == len(set(receipt_ids)) == 3  # every delivery once, none twice
    leader.start()
    assert site.leader() is survivor


def _anchor_quietly(site: Site, replica: Replica) -> None:
    try:
        with site.client("operator", replica) as operator:
            operator.anchor()
    except Exception:  # noqa: S110 - the replica is killed under this request on purpose
        pass


def test_an_unreachable_node_is_503_with_a_code_then_recovers_without_restart(
    site: Site,
) -> None:
    pids = {r.name: r.process.pid for r in (site.a, site.b) if r.process}
    site.cluster.proxy.down()
    started = time.monotonic()
    try:
        for replica in (site.a, site.b):
            health = replica.health()
            assert health.status_code == 503
            body = health.json()
            assert body["code"] == "chain_unavailable"
            assert body["chain"]["code"] == "chain_unavailable"
            assert body["database"]["ok"]
            assert body["blobs"]["ok"]
            with site.client("operator", replica) as operator:
                response = operator.http.send(operator.json_request("GET", "/v1/log/head", None))
            assert response.status_code == 503, response.text
            assert response.json()["code"] == "chain_unavailable"
            assert str(site.cluster.proxy.port) not in response.text
            assert "127.0.0.1" not in response.text
        time.sleep(max(0.0, NODE_DOWN_SECONDS - (time.monotonic() - started)))
    finally:
        site.cluster.proxy.up()
    for replica in (site.a, site.b):
        deadline = time.monotonic() + 30
        while replica.health().status_code != 200:
            assert time.monotonic() < deadline, "no recovery"
            time.sleep(0.2)
        assert replica.process is not None
        assert replica.process.pid == pids[replica.name]
        log = replica.log.read_text(errors="replace")
        assert f":{site.cluster.proxy.port}" not in log  # no log line names the node


def test_concurrent_fetches_over_both_replicas_never_fail_with_500(site: Site) -> None:
    with site.client("coop", site.b) as consumer:
        request = consumer.request_access(
            site.dataset, purpose="load test across replicas", days=1, uses=USES
        )
    with site.client("office", site.a) as owner:
        owner.approve(request.id)
    clients = [site.client("coop", r) for r in (site.a, site.b)]
    for c in clients:
        c.config()  # pin the deployment before the threads start
    requests = []  # signed one by one here; the threads only send
    for i in range(CONCURRENT_FETCHES):
        c = clients[i % 2]
        signed = c.sign("fetch", {"grantee": c.require_keys().address, "datasetId": site.dataset})
        body = c.signed_body(signed)
        requests.append((c, c.json_request("POST", f"/v1/datasets/{site.dataset}/fetch", body)))
    barrier = threading.Barrier(CONCURRENT_FETCHES)

    def fetch(i: int) -> httpx.Response:
        c, request = requests[i]
        barrier.wait(timeout=60)
        response = c.http.send(request)
        response.read()
        return response

    try:
        with ThreadPoolExecutor(CONCURRENT_FETCHES) as pool:
            answers = list(pool.map(fetch, range(CONCURRENT_FETCHES)))
    finally:
        for c in clients:
            c.close()
    statuses = [a.status_code for a in answers]
    assert 500 not in statuses
    ok = statuses.count(200)
    refused = [a.json()["code"] for a in answers if a.status_code != 200]
    assert ok == USES, (statuses, refused)
    assert set(refused) == {"access_ledger_uses_exhausted"}, refused
    coop = keystore.unlock(site.members, "coop", PASSPHRASE).address
    assert site.chain().grant_of(site.dataset, coop).uses == ok


def test_the_log_verifies_clean_through_each_replica(site: Site) -> None:
    for replica in (site.a, site.b):
        with site.client("operator", replica) as operator:
            operator.anchor()
        with site.client("dpa", replica) as regulator:
            assert regulator.self_check().ok
            report = regulator.audit()
            assert report.ok, report.problems

"""Request signatures are single use for good, and bound to one deployment.

Request nonces live in the broker's database with their expiry: a replay is refused by the
same process, after a restart, and (the database being shared) by any replica. Only members'
nonces are recorded, so keys nobody onboarded cannot fill the table. The signed string names the
deployment's FlowLog address, and each embedded chain has a chain id of its own, so a request
signed for one deployment is refused by another.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ledger.chain.home import EMBEDDED_CHAIN_IDS
from ledger.client.member import MemberKeys
from ledger.protocol import http as auth
from tests.support.broker import start_broker, stop_broker
from tests.support.http_kit import RunningBroker, env_for, new_member, running_broker
from tests.support.http_probe import Wire, error_code, signed, stranger


@dataclass
class World:
    broker: RunningBroker
    office: MemberKeys
    coop: MemberKeys
    dataset: int


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("nonces")
    with running_broker(root / "home") as broker:
        new_member(broker, "office", "department", "District Planning Office")
        new_member(broker, "coop", "enterprise", "Harbour Solar Cooperative")
        source = root / "rooftops.csv"
        source.write_text("ward,roofs\nharbour,41\n")
        with broker.client("office") as office, broker.client("coop") as coop:
            assert office.keys is not None
            assert coop.keys is not None
            dataset = office.register(source, title="Harbour rooftops").id
            yield World(broker, office.keys, coop.keys, dataset)


def nonce_rows(home: Path, signer: str | None = None) -> int:
    con = sqlite3.connect(f"file:{home / 'broker' / 'broker.db'}?mode=ro", uri=True)
    try:
        if signer is None:
            return int(con.execute("SELECT count(*) FROM request_nonces").fetchone()[0])
        query = "SELECT count(*) FROM request_nonces WHERE signer = ?"
        return int(con.execute(query, (signer,)).fetchone()[0])
    finally:
        con.close()


def test_a_replayed_request_is_refused_and_its_nonce_is_kept_with_its_expiry(world: World) -> None:
    wire = Wire(world.broker.url)
    try:
        headers = wire.headers(world.office, "GET", "/v1/datasets", auth.EMPTY_SHA256)
        first = wire.http.get("/v1/datasets", headers=headers)
        again = wire.http.get("/v1/datasets", headers=headers)
    finally:
        wire.close()
    assert first.status_code == 200
    assert (again.status_code, error_code(again)) == (401, "request_replayed")
    con = sqlite3.connect(f"file:{world.broker.home / 'broker' / 'broker.db'}?mode=ro", uri=True)
    try:
        row = con.execute(
            "SELECT expires_at FROM request_nonces WHERE signer = ? AND nonce = ?",
            (world.office.address, headers[auth.H_NONCE]),
        ).fetchone()
    finally:
        con.close()
    assert row == (int(headers[auth.H_TIMESTAMP]) + 300,)


def test_concurrent_copies_of_one_request_are_admitted_once(world: World) -> None:
    """Copies arriving together share an admission batch: the first wins, the rest are replays."""
    from concurrent.futures import ThreadPoolExecutor

    wire = Wire(world.broker.url)
    try:
        headers = wire.headers(world.office, "GET", "/v1/members", auth.EMPTY_SHA256)
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(lambda _: wire.http.get("/v1/members", headers=headers), range(8))
            )
    finally:
        wire.close()
    statuses = sorted(r.status_code for r in answers)
    assert statuses == [200] + [401] * 7
    assert {error_code(r) for r in answers if r.status_code == 401} == {"request_replayed"}


def test_keys_nobody_onboarded_record_no_nonce(world: World) -> None:
    wire = Wire(world.broker.url)
    nobody = stranger()
    try:
        for _ in range(5):
            refused = wire.send(nobody, "GET", "/v1/datasets")
            assert (refused.status_code, error_code(refused)) == (403, "not_a_member")
    finally:
        wire.close()
    assert nonce_rows(world.broker.home, nobody.address) == 0


def count(home: Path, table: str) -> int:
    con = sqlite3.connect(f"file:{home / 'broker' / 'broker.db'}?mode=ro", uri=True)
    try:
        return int(con.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
    finally:
        con.close()


def access_request(
    wire: Wire, world: World, keys: MemberKeys | None = None
) -> tuple[bytes, dict[str, str]]:
    """A signed access request by the cooperative (its action signed by ``keys``) and the
    headers of one signed HTTP request carrying it."""
    message = {
        "requester": (keys or world.coop).address,
        "datasetId": world.dataset,
        "purpose": "Planning of rooftop solar installations in the harbour ward",
        "days": 30,
        "maxUses": 1,
    }
    body = json.dumps(signed(keys or world.coop, "request", message, wire.domains)).encode()
    headers = wire.headers(world.coop, "POST", "/v1/requests", hashlib.sha256(body).hexdigest())
    return body, headers | {"content-type": "application/json"}


def test_an_access_request_uses_its_request_nonce_in_the_transaction_that_records_it(
    world: World,
) -> None:
    """The write and its request nonce commit together (one transaction, one durable commit)."""
    wire = Wire(world.broker.url)
    try:
        body, headers = access_request(wire, world)
        nonces, requests = (
            nonce_rows(world.broker.home),
            count(world.broker.home, "access_requests"),
        )
        first = wire.http.post("/v1/requests", content=body, headers=headers)
        assert first.status_code == 201, first.text
        assert nonce_rows(world.broker.home, world.coop.address) >= 1
        assert nonce_rows(world.broker.home) == nonces + 1
        again = wire.http.post("/v1/requests", content=body, headers=headers)
    finally:
        wire.close()
    assert (again.status_code, error_code(again)) == (401, "request_replayed")
    assert count(world.broker.home, "access_requests") == requests + 1


def test_concurrent_copies_of_one_access_request_are_recorded_once(world: World) -> None:
    """Copies arriving together share a batch: the first is recorded, the rest are replays."""
    from concurrent.futures import ThreadPoolExecutor

    wire = Wire(world.broker.url)
    try:
        body, headers = access_request(wire, world)
        before = count(world.broker.home, "access_requests")
        with ThreadPoolExecutor(8) as pool:
            answers = list(
                pool.map(
                    lambda _: wire.http.post("/v1/requests", content=body, headers=headers),
                    range(8),
                )
            )
    finally:
        wire.close()
    assert sorted(r.status_code for r in answers) == [201] + [401] * 7
    assert {error_code(r) for r in answers if r.status_code == 401} == {"request_replayed"}
    assert count(world.broker.home, "access_requests") == before + 1


def test_a_write_refused_before_its_transaction_still_uses_its_request_nonce(
    world: World,
) -> None:
    """A refused request can never be replayed into an accepted one: its nonce is used."""
    wire = Wire(world.broker.url)
    try:
        # The cooperative carries an action the office signed: not the caller's own action.
        body, headers = access_request(wire, world, keys=world.office)
        nonces = nonce_rows(world.broker.home)
        refused = wire.http.post("/v1/requests", content=body, headers=headers)
        assert (refused.status_code, error_code(refused)) == (403, "not_actor")
        assert nonce_rows(world.broker.home) == nonces + 1
        again = wire.http.post("/v1/requests", content=body, headers=headers)
    finally:
        wire.close()
    assert (again.status_code, error_code(again)) == (401, "request_replayed")


def test_an_access_request_body_refused_as_malformed_records_nothing(world: World) -> None:
    """Refused before the route runs (FastAPI validates the body after the caller's look-up):
    no nonce, no row, and a replay is refused the same way, the body being the same."""
    wire = Wire(world.broker.url)
    try:
        body = b'{"signed": "nothing"}'
        headers = wire.headers(world.coop, "POST", "/v1/requests", hashlib.sha256(body).hexdigest())
        headers["content-type"] = "application/json"
        nonces = nonce_rows(world.broker.home)
        answers = [wire.http.post("/v1/requests", content=body, headers=headers) for _ in range(2)]
    finally:
        wire.close()
    assert [r.status_code for r in answers] == [422, 422]
    assert nonce_rows(world.broker.home) == nonces


def test_a_request_signed_for_another_deployment_is_unauthenticated(world: World) -> None:
    wire = Wire(world.broker.url)
    try:
        headers = auth.sign_request(
            world.office.account,
            method="GET",
            target="/v1/datasets",
            body_sha256=auth.EMPTY_SHA256,
            chain_id=wire.chain_id,
            deployment="0x" + "11" * 20,  # another FlowLog on the same chain id
        )
        refused = wire.http.get("/v1/datasets", headers=headers)
    finally:
        wire.close()
    assert (refused.status_code, error_code(refused)) == (401, "unauthenticated")


def test_an_embedded_chain_gets_a_chain_id_of_its_own(world: World) -> None:
    wire = Wire(world.broker.url)
    try:
        chain_id = wire.chain_id
    finally:
        wire.close()
    assert chain_id != 1337
    assert chain_id in EMBEDDED_CHAIN_IDS


def test_a_request_replayed_after_a_restart_is_refused(world: World) -> None:
    """Last in the module: it restarts the module's broker on the same home and port."""
    broker = world.broker
    wire = Wire(broker.url)
    try:
        headers = wire.headers(world.office, "GET", "/v1/datasets", auth.EMPTY_SHA256)
        assert wire.http.get("/v1/datasets", headers=headers).status_code == 200
        write, write_headers = access_request(wire, world)
        recorded = wire.http.post("/v1/requests", content=write, headers=write_headers)
        assert recorded.status_code == 201, recorded.text
    finally:
        wire.close()
    stop_broker(broker.process)
    # A clean stop: the batching threads were drained and joined in the shutdown (no SIGKILL).
    assert broker.process.returncode == 0
    served = broker.home.parent / f"{broker.home.name}-serve.log"
    assert "still running at shutdown" not in served.read_text()
    port = int(broker.url.rsplit(":", 1)[1])
    log = broker.home.parent / "restarted-serve.log"
    broker.process = start_broker(env_for(broker.home, broker.url), port=port, log=log)
    try:
        wire = Wire(broker.url)
        try:
            replay = wire.http.get("/v1/datasets", headers=headers)
            write_replay = wire.http.post("/v1/requests", content=write, headers=write_headers)
            assert chain_id_unchanged(wire, headers)
        finally:
            wire.close()
    finally:
        stop_broker(broker.process)
    assert (replay.status_code, error_code(replay)) == (401, "request_replayed")
    assert (write_replay.status_code, error_code(write_replay)) == (401, "request_replayed")


def chain_id_unchanged(wire: Wire, headers: dict[str, str]) -> bool:
    """The reopened home kept its chain id (the signature above names it)."""
    message = auth.request_message(
        method="GET",
        target="/v1/datasets",
        body_sha256=auth.EMPTY_SHA256,
        timestamp=int(headers[auth.H_TIMESTAMP]),
        nonce=headers[auth.H_NONCE],
        chain_id=wire.chain_id,
        deployment=wire.config["flow_log"],
    )
    return auth.recover_request(message, headers[auth.H_SIGNATURE]) == headers[auth.H_ADDRESS]

"""Request authentication, edge by edge, against the app in process with the broker's clock held.

The broker's clock (``Ledger.clock``) is set to a fixed time, so the skew window, nonce expiry
and pruning are checked at exact seconds, written out here rather than derived from the
constants under test: 300 s either side is accepted, 301 s is not.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from api.auth import admission_queues, take_write
from api.main import create_app
from api.transfers import WriteRate
from ledger.broker import Broker, open_broker
from ledger.client.member import MemberKeys
from ledger.client.sdk import BrokerClient
from ledger.crypto import generate_keypair
from ledger.errors import Throttled
from ledger.keys import load_account
from ledger.protocol import http as auth
from ledger.protocol.actions import Domains
from ledger.protocol.eip712 import SECP256K1_N
from ledger.services.admission import REPLAYED, Admission, Claim
from ledger.services.policy import Standing
from ledger.settings import Settings
from tests.support.http_probe import signed
from tests.support.kit import new_keys

BASE_URL = "http://testserver"
PASSPHRASE = "request-auth-test-passphrase"
NOW = 1_900_000_000  # the broker's clock in every test below
DOMAIN_CONTRACTS = (
    "flow_log",
    "member_registry",
    "data_registry",
    "access_ledger",
    "sharing_credits",
)


@dataclass
class App:
    http: TestClient
    broker: Broker
    member: MemberKeys
    config: dict[str, Any]
    home: Path

    def at(self, now: int) -> None:
        self.broker.ledger.clock = lambda: float(now)

    def headers(
        self, *, target: str = "/v1/datasets", timestamp: int = NOW, **overrides: str
    ) -> dict[str, str]:
        signed = auth.sign_request(
            self.member.account,
            method="GET",
            target=target,
            body_sha256=auth.EMPTY_SHA256,
            chain_id=int(self.config["chain_id"]),
            deployment=str(self.config["flow_log"]),
            timestamp=timestamp,
        )
        return signed | overrides

    def get(self, headers: dict[str, str], target: str = "/v1/datasets") -> httpx.Response:
        return self.http.get(target, headers=headers)

    def signed_post(
        self, body: bytes, target: str = "/v1/requests"
    ) -> Callable[[], httpx.Response]:
        """A ``POST`` of ``body`` to ``target`` signed once: each call sends the same bytes."""
        headers = auth.sign_request(
            self.member.account,
            method="POST",
            target=target,
            body_sha256=auth.body_sha256(body),
            chain_id=int(self.config["chain_id"]),
            deployment=str(self.config["flow_log"]),
            timestamp=NOW,
        )
        headers["content-type"] = "application/json"
        return lambda: self.http.post(target, content=body, headers=headers)


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[App]:
    root = tmp_path_factory.mktemp("request-auth")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DRL_KDF_FAST", "1")
        settings = Settings(
            home=root / "home", chain_url=None, database_url=None, anchor_every_seconds=3600
        )
        broker = open_broker(settings, PASSPHRASE)
    try:
        admin = load_account(settings.admin_key_path, PASSPHRASE)
        operator = MemberKeys(account=admin, hpke=generate_keypair()[0])
        member = new_keys()
        with TestClient(create_app(broker), base_url=BASE_URL) as http:
            with BrokerClient(BASE_URL, operator, http=http) as op:
                op.onboard(
                    address=member.address,
                    kind="department",
                    name="District Planning Office",
                    key_suite=member.hpke.suite.id,
                    encryption_key=member.public_key.to_bytes(),
                )
            config = http.get("/v1/config").json()
            yield App(http, broker, member, config, root / "home")
    finally:
        broker.close()


def code(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, str(response.json().get("code"))


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (NOW - 300, 200),
        (NOW + 300, 200),
        (NOW - 301, 401),
        (NOW + 301, 401),
    ],
    ids=["300s-old", "300s-ahead", "301s-old", "301s-ahead"],
)
def test_the_clock_skew_window_is_300_seconds_either_side(
    app: App, timestamp: int, expected: int
) -> None:
    app.at(NOW)
    response = app.get(app.headers(timestamp=timestamp))
    assert response.status_code == expected, response.text
    if expected == 401:
        assert code(response) == (401, "unauthenticated")
        assert "clock skew" in response.json()["message"]


def nonce_rows(app: App) -> dict[str, int]:
    con = sqlite3.connect(f"file:{app.home / 'broker' / 'broker.db'}?mode=ro", uri=True)
    try:
        rows = con.execute(
            "SELECT nonce, expires_at FROM request_nonces WHERE signer = ?", (app.member.address,)
        )
        return {str(nonce): int(expires) for nonce, expires in rows}
    finally:
        con.close()


def test_a_nonce_is_remembered_until_its_request_can_no_longer_be_valid(app: App) -> None:
    app.at(NOW)
    headers = app.headers(timestamp=NOW - 250)
    assert app.get(headers).status_code == 200
    nonce = headers[auth.H_NONCE]
    assert nonce_rows(app)[nonce] == NOW + 50  # the request's timestamp + 300 s
    # 50 s later the request is still within the window: the replay is caught by its nonce.
    app.at(NOW + 50)
    assert code(app.get(headers)) == (401, "request_replayed")
    # One second more and the timestamp alone refuses it.
    app.at(NOW + 51)
    assert code(app.get(headers)) == (401, "unauthenticated")


def test_expired_nonces_are_pruned_once_past_the_clock_margin(app: App) -> None:
    """A nonce expiring at T is kept until T + 60 (replicas' clocks may differ), then pruned
    by the next admission at least 30 s after the last prune."""
    app.at(NOW + 639)
    early = app.headers(timestamp=NOW + 339)  # expires at NOW + 639
    assert app.get(early).status_code == 200  # (this admission prunes: its time is recorded)
    app.at(NOW + 640)
    late = app.headers(timestamp=NOW + 340)  # expires at NOW + 640
    assert app.get(late).status_code == 200
    assert nonce_rows(app)[early[auth.H_NONCE]] == NOW + 639
    assert nonce_rows(app)[late[auth.H_NONCE]] == NOW + 640
    app.at(NOW + 700)  # 61 s after the last prune; horizon NOW + 640
    assert app.get(app.headers(timestamp=NOW + 700)).status_code == 200
    rows = nonce_rows(app)
    assert early[auth.H_NONCE] not in rows
    assert rows[late[auth.H_NONCE]] == NOW + 640
    assert min(rows.values()) == NOW + 640  # the earlier tests' nonces went too


@pytest.mark.parametrize(
    "nonce", ["short7c", "x" * 65, "has space", "ünïcode8", "semi;colon"], ids=str
)
def test_a_malformed_nonce_is_unauthenticated(app: App, nonce: str) -> None:
    app.at(NOW)
    headers = app.headers()
    headers[auth.H_NONCE] = nonce
    response = app.http.get("/v1/datasets", headers={k: v.encode() for k, v in headers.items()})
    assert code(response) == (401, "unauthenticated")
    assert "nonce" in response.json()["message"]


def test_a_nonce_of_8_and_of_64_characters_is_accepted(app: App) -> None:
    app.at(NOW)
    for nonce in ("abcdEF_-", "n" * 64):
        headers = auth.sign_request(
            app.member.account,
            method="GET",
            target="/v1/datasets",
            body_sha256=auth.EMPTY_SHA256,
            chain_id=int(app.config["chain_id"]),
            deployment=str(app.config["flow_log"]),
            timestamp=NOW,
            nonce=nonce,
        )
        assert app.get(headers).status_code == 200


@pytest.mark.parametrize(
    "declared", ["e3b0" * 15 + "b85", "z" * 64, "", "0x" + "e3b0" * 15 + "b8"], ids=repr
)
def test_a_malformed_body_hash_header_is_unauthenticated(app: App, declared: str) -> None:
    app.at(NOW)
    headers = app.headers()
    headers[auth.H_BODY] = declared
    response = app.get(headers)
    assert code(response) == (401, "unauthenticated")
    assert "X-DRL-Content-SHA256" in response.json()["message"]


def test_a_body_hash_in_upper_case_is_accepted(app: App) -> None:
    app.at(NOW)
    headers = app.headers()
    headers[auth.H_BODY] = auth.EMPTY_SHA256.upper()
    assert app.get(headers).status_code == 200


def test_a_body_that_does_not_match_its_declared_hash_is_unauthenticated(app: App) -> None:
    app.at(NOW)
    body = b'{"signed": {}}'
    headers = auth.sign_request(
        app.member.account,
        method="POST",
        target="/v1/requests",
        body_sha256=auth.body_sha256(b"{}"),
        chain_id=int(app.config["chain_id"]),
        deployment=str(app.config["flow_log"]),
        timestamp=NOW,
    )
    response = app.http.post("/v1/requests", content=body, headers=headers)
    assert code(response) == (401, "unauthenticated")
    assert "does not match" in response.json()["message"]


def test_the_path_is_signed_exactly_as_sent_percent_encoding_included(app: App) -> None:
    app.at(NOW)
    address = app.member.address
    sent = f"/v1/members/{address[:6]}%{ord(address[6]):02X}{address[7:]}"
    ok = app.get(app.headers(target=sent), sent)
    assert ok.status_code == 200, ok.text
    decoded = app.get(app.headers(target=f"/v1/members/{address}"), sent)
    assert code(decoded) == (401, "unauthenticated")


def test_a_high_s_signature_is_unauthenticated(app: App) -> None:
    app.at(NOW)
    headers = app.headers()
    raw = bytes.fromhex(headers[auth.H_SIGNATURE][2:])
    s = int.from_bytes(raw[32:64], "big")
    flipped = raw[:32] + (SECP256K1_N - s).to_bytes(32, "big") + bytes((55 - raw[64],))
    headers[auth.H_SIGNATURE] = "0x" + flipped.hex()
    response = app.get(headers)
    assert code(response) == (401, "unauthenticated")


def test_a_signature_by_another_key_than_the_address_is_unauthenticated(app: App) -> None:
    app.at(NOW)
    headers = app.headers()
    headers[auth.H_ADDRESS] = new_keys().address
    response = app.get(headers)
    assert code(response) == (401, "unauthenticated")
    assert "does not match X-DRL-Address" in response.json()["message"]


@pytest.mark.parametrize(
    "mangle",
    [lambda sig: sig[2:], lambda sig: sig + "00", lambda sig: sig[:-2], lambda sig: "0X" + sig[2:]],
    ids=["no-0x", "66-bytes", "64-bytes", "upper-0X"],
)
def test_a_signature_not_written_as_0x_and_130_hex_digits_is_unauthenticated(
    app: App, mangle: Any
) -> None:
    app.at(NOW)
    headers = app.headers()
    headers[auth.H_SIGNATURE] = mangle(headers[auth.H_SIGNATURE])
    response = app.get(headers)
    assert code(response) == (401, "unauthenticated")
    assert response.json()["message"] == "request signature is malformed"


@contextmanager
def slow_write_rate(app: App) -> Iterator[dict[str, float]]:
    """The broker's write rate at a burst of 2 and one write per 10 s, on a clock the test
    moves (``clock["now"]``); the rate it had is restored afterwards."""
    clock = {"now": 1000.0}
    state = app.http.app.state  # type: ignore[attr-defined]
    saved = state.write_rate
    state.write_rate = WriteRate(per_second=0.1, burst=2, clock=lambda: clock["now"])
    try:
        yield clock
    finally:
        state.write_rate = saved


def test_a_member_writing_faster_than_its_rate_is_refused_and_reads_are_not_limited(
    app: App,
) -> None:
    """Two writes of burst, then 429 ``rate_limited`` until the bucket refills (1 per 10 s)."""
    app.at(NOW)
    with slow_write_rate(app) as clock:

        def post() -> httpx.Response:
            return app.signed_post(b"{}")()  # refused later as invalid: the rate is checked first

        assert [post().status_code for _ in range(2)] == [422, 422]
        limited = post()
        assert code(limited) == (429, "rate_limited")
        assert "retry in 10.00 s" in limited.json()["message"]
        assert app.get(app.headers()).status_code == 200  # reads are not counted
        clock["now"] += 9.9
        assert code(post()) == (429, "rate_limited")
        clock["now"] += 0.1  # one write's worth has refilled
        assert post().status_code == 422


def test_the_chain_relay_is_signed_but_spends_none_of_the_members_write_rate(app: App) -> None:
    """A member's verification sends the read-only chain relay hundreds of POSTs: none of them
    is a write, so none is throttled, and the member's writes are left whole."""
    app.at(NOW)
    call = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()

    def relay() -> httpx.Response:
        return app.signed_post(call, "/v1/chain/rpc")()  # signed anew: a fresh nonce each time

    with slow_write_rate(app):
        answers = [relay() for _ in range(5)]
        assert [a.status_code for a in answers] == [200] * 5
        assert int(answers[0].json()["result"], 16) == int(app.config["chain_id"])
        assert [app.signed_post(b"{}")().status_code for _ in range(2)] == [422, 422]
        assert code(app.signed_post(b"{}")()) == (429, "rate_limited")


def test_a_replayed_write_spends_none_of_the_members_write_rate(app: App) -> None:
    """A captured request replayed many times cannot throttle the member who sent it."""
    app.at(NOW)
    domains = Domains(
        chain_id=int(app.config["chain_id"]),
        **{name: str(app.config[name]) for name in DOMAIN_CONTRACTS},
    )

    post = app.signed_post

    with slow_write_rate(app):
        # An action someone else signed: refused (403), its request nonce used all the same.
        other = new_keys()
        message = {
            "requester": other.address,
            "datasetId": 1,
            "purpose": "x" * 40,
            "days": 1,
            "maxUses": 1,
        }
        captured = post(json.dumps(signed(other, "request", message, domains)).encode())
        assert code(captured()) == (403, "not_actor")
        for _ in range(5):
            assert code(captured()) == (401, "request_replayed")
        assert post(b"{}")().status_code == 422  # the member's second write of its burst of 2
        assert code(post(b"{}")()) == (429, "rate_limited")


def test_the_look_up_queue_reads_standings_and_used_nonces_and_records_nothing(app: App) -> None:
    """What a write that uses its nonce in its own transaction learns first, recording nothing."""
    app.at(NOW)
    ledger = app.broker.ledger
    admission = Admission(ledger)
    admit, look_up = admission_queues(admission, ledger)
    member = Claim(app.member.address, "look-up-before-its-write", NOW)
    nobody = Claim(new_keys().address, "look-up-of-a-stranger", NOW)

    async def scenario() -> list[Standing | None]:
        try:
            seen = [await look_up.submit(claim) for claim in (member, nobody, member)]
            seen.append(await admit.submit(member))  # the write's transaction uses it
            seen.append(await look_up.submit(member))
            return seen
        finally:
            admit.close()
            look_up.close()

    before = nonce_rows(app)
    first, stranger, again, admitted, after = asyncio.run(scenario())
    assert first == again == admitted == Standing(app.member.address, "department", True)
    assert stranger == Standing(nobody.signer)
    assert after is REPLAYED
    assert set(nonce_rows(app)) - set(before) == {member.nonce}


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_the_look_up_runs_in_the_event_loop_on_sqlite_and_on_a_thread_on_postgresql(
    app: App, dialect: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two reads of a local file cost less than a thread's hand-off; a server's round trips
    would stall the event loop. Either way the caller gets its standing.

    The queues choose by the database's dialect alone; the look-up itself reads this broker's
    SQLite file either way (a PostgreSQL server here would outlive the mutation runs that kill
    this test's process: the cluster tests run the queues on a real one).
    """
    app.at(NOW)
    threads: list[str] = []
    looked_up = Admission.look_up

    def spied(self: Admission, claims: Any) -> list[Standing | None]:
        threads.append(threading.current_thread().name)
        return looked_up(self, claims)

    monkeypatch.setattr(Admission, "look_up", spied)
    ledger = app.broker.ledger
    chooser = SimpleNamespace(
        db=SimpleNamespace(dialect=dialect, writer_turn=ledger.db.writer_turn)
    )
    admit, look_up = admission_queues(Admission(ledger), chooser)  # type: ignore[arg-type]

    async def scenario() -> Standing | None:
        try:
            return await look_up.submit(Claim(app.member.address, f"looked-up-{dialect}", NOW))
        finally:
            admit.close()
            look_up.close()

    assert asyncio.run(scenario()) == Standing(app.member.address, "department", True)
    assert threads == ["MainThread" if dialect == "sqlite" else "drl-standings"]


def test_each_member_spends_a_write_rate_of_its_own() -> None:
    """One member writing at its limit leaves every other member's writes alone."""
    rate = WriteRate(per_second=0.1, burst=1, clock=lambda: 1000.0)
    request = SimpleNamespace(app=SimpleNamespace(state=SimpleNamespace(write_rate=rate)))
    busy, other = new_keys().address, new_keys().address
    take_write(request, Standing(busy, "enterprise", True))  # type: ignore[arg-type]
    with pytest.raises(Throttled):
        take_write(request, Standing(busy, "enterprise", True))  # type: ignore[arg-type]
    take_write(request, Standing(other, "department", True))  # type: ignore[arg-type]
    for _ in range(3):  # a caller nobody onboarded spends nothing (and is refused elsewhere)
        take_write(request, Standing(new_keys().address))  # type: ignore[arg-type]

"""Hostile input a real `drl serve` must survive: deep JSON, huge numeric headers, address case.

A body nested 100,000 deep used to crash the broker (SIGSEGV: py_ecc and py-evm raise the
recursion limit to 100,000, and FastAPI parses the body before any dependency runs). It is now
refused by the body middleware before parsing (400 ``body_too_deep``), signed or not, and the
broker keeps serving. A 5,000-digit ``X-DRL-Timestamp`` is a 401, not a 500. A revocation that
names the grantee in lower case revokes the grant stored under the checksummed address.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.main import JSON_DEPTH_LIMIT, too_deep
from ledger.client.member import MemberKeys
from ledger.errors import Forbidden
from ledger.protocol import http as auth
from tests.support.http_kit import RunningBroker, new_member, running_broker
from tests.support.http_probe import Wire, error_code, revoke_body, snapshot

PURPOSE = "Planning of rooftop solar installations in the harbour ward"


@dataclass
class World:
    broker: RunningBroker
    wire: Wire
    office: MemberKeys
    coop: MemberKeys
    dataset_id: int


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("hostile")
    with running_broker(root / "home") as broker:
        new_member(broker, "office", "department", "District Planning Office")
        new_member(broker, "coop", "enterprise", "Harbour Solar Cooperative")
        source = root / "harbour.csv"
        source.write_text("ward,roofs\nharbour,412\nquay,97\n")
        with broker.client("office") as office, broker.client("coop") as coop:
            assert office.keys is not None
            assert coop.keys is not None
            dataset = office.register(source, title="Harbour ward rooftops")
            request = coop.request_access(dataset.id, purpose=PURPOSE, days=30, uses=3)
            office.approve(request.id)
            wire = Wire(broker.url)
            try:
                yield World(broker, wire, office.keys, coop.keys, dataset.id)
            finally:
                wire.close()


def nested(depth: int) -> bytes:
    """``{"signed":[[[...]]]}`` with ``depth`` levels in all (the object counts as one)."""
    return b'{"signed":' + b"[" * (depth - 1) + b"]" * (depth - 1) + b"}"


def post_raw(world: World, body: bytes, *, signed: bool) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if signed:
        digest = hashlib.sha256(body).hexdigest()
        headers |= world.wire.headers(world.coop, "POST", "/v1/requests", digest)
    return world.wire.http.post("/v1/requests", content=body, headers=headers)


def assert_still_serving(world: World) -> None:
    assert world.broker.process.poll() is None, "the broker process died"
    health = world.wire.http.get("/v1/health")
    assert health.status_code == 200, health.text
    # and a signed read still works
    catalog = world.wire.send(world.coop, "GET", "/v1/datasets")
    assert catalog.status_code == 200, catalog.text


# -- deep nesting -----------------------------------------------------------------------------


@pytest.mark.parametrize("signed", [False, True], ids=["unauthenticated", "signed"])
def test_a_body_nested_100000_deep_is_refused_and_the_broker_keeps_serving(
    world: World, signed: bool
) -> None:
    body = nested(100_000)
    assert len(body) > 200_000
    operator = operator_keys(world)
    before = snapshot(world.wire, operator, world.broker.home)
    response = post_raw(world, body, signed=signed)
    assert (response.status_code, error_code(response)) == (400, "body_too_deep"), response.text
    assert_still_serving(world)
    assert before.changes(snapshot(world.wire, operator, world.broker.home)) == []


@pytest.mark.parametrize("depth", [10_000, JSON_DEPTH_LIMIT + 1])
def test_bodies_nested_past_the_limit_are_refused(world: World, depth: int) -> None:
    for signed in (False, True):
        response = post_raw(world, nested(depth), signed=signed)
        assert (response.status_code, error_code(response)) == (400, "body_too_deep")
    assert_still_serving(world)


def test_a_body_of_normal_depth_reaches_the_routes_own_validation(world: World) -> None:
    response = post_raw(world, nested(20), signed=True)
    assert (response.status_code, error_code(response)) == (422, "invalid_request"), response.text
    # Brackets inside strings are text, not nesting.
    body = b'{"signed": "' + b"[" * 5000 + b'\\"{{{"}'
    response = post_raw(world, body, signed=True)
    assert (response.status_code, error_code(response)) == (422, "invalid_request"), response.text


def test_the_depth_scan() -> None:
    assert not too_deep(nested(JSON_DEPTH_LIMIT))
    assert too_deep(nested(JSON_DEPTH_LIMIT + 1))
    assert not too_deep(b"[" + b"[]," * 10_000 + b"[]]")  # many brackets, shallow
    assert not too_deep(b'["' + b"[" * 100 + b'", "\\\\", "' + b"{" * 100 + b'"]')
    assert not too_deep(b'["\\"' + b"[" * 100 + b'"]')  # an escaped quote inside
    assert too_deep(b'["abc' + b"[" * 100)  # an unterminated string: conservative
    assert too_deep(b"{" * 1000)


# -- numeric headers --------------------------------------------------------------------------


@pytest.mark.parametrize("stamp", ["9" * 5000, "1" * 13, "１２３", "-1", "1e9"])
def test_a_timestamp_that_is_not_1_to_12_digits_is_unauthenticated(
    world: World, stamp: str
) -> None:
    headers = world.wire.headers(world.coop, "GET", "/v1/datasets", auth.EMPTY_SHA256)
    headers[auth.H_TIMESTAMP] = stamp
    operator = operator_keys(world)
    before = snapshot(world.wire, operator, world.broker.home)
    response = world.wire.http.get(
        "/v1/datasets", headers={k: v.encode() for k, v in headers.items()}
    )
    assert (response.status_code, error_code(response)) == (401, "unauthenticated"), response.text
    assert_still_serving(world)
    assert before.changes(snapshot(world.wire, operator, world.broker.home)) == []


def test_content_length_is_parsed_with_bounds() -> None:
    assert auth.content_length(None) is None
    assert auth.content_length(b"0") == 0
    assert auth.content_length("1048576") == 1_048_576
    for bad in (b"", b"9" * 5000, b"9" * 17, b"-1", b"1e3", "²", "1²"):
        assert auth.content_length(bad) == -1
    assert auth.parse_timestamp("1" * 12) == 111_111_111_111
    for bad in ("", "1" * 13, "9" * 5000, "１", "1\n"):
        assert auth.parse_timestamp(bad) is None


# -- bounded values and frozen owners ---------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [
        {"note": "x" * 4097},  # a text value past MAX_MESSAGE_TEXT
        {"parents": list(range(65))},  # a list past MAX_MESSAGE_LIST
        {"k" * 33: 1},  # a key past 32 characters
        {"nested": {f"k{n}": n for n in range(17)}},  # an object of more than 16 keys
        {"nested": {"deeper": {"a": 1}}},  # an object inside an object
    ],
    ids=["long-text", "long-list", "long-key", "wide-object", "nested-object"],
)
def test_a_signed_action_with_an_unbounded_value_is_refused_before_any_check(
    world: World, extra: dict[str, Any]
) -> None:
    with world.broker.client("coop") as coop:
        signed = coop.sign(
            "request",
            {
                "requester": world.coop.address,
                "datasetId": world.dataset_id,
                "purpose": PURPOSE,
                "days": 30,
                "maxUses": 1,
            },
        ).to_json()
    signed["message"] |= extra
    operator = operator_keys(world)
    before = snapshot(world.wire, operator, world.broker.home)
    response = world.wire.send(world.coop, "POST", "/v1/requests", json_body={"signed": signed})
    assert (response.status_code, error_code(response)) == (422, "invalid_request"), response.text
    assert before.changes(snapshot(world.wire, operator, world.broker.home)) == []


def operator_keys(world: World) -> MemberKeys:
    with world.broker.client("operator") as op:
        assert op.keys is not None
        return op.keys


def test_a_suspended_owners_datasets_are_frozen_until_it_is_reinstated(
    world: World, tmp_path: Path
) -> None:
    """Suspension is the bureau's brake: nothing flows out of a suspended member's datasets.

    Fetches and new requests are refused (403 ``owner_suspended``) with no use recorded and
    nothing written but the refused fetch's record (the log keeps fetch attempts during a
    suspension); the grants stay on chain and work again once the owner is reinstated.
    """
    operator = operator_keys(world)
    with world.broker.client("operator") as op, world.broker.client("coop") as coop:
        op.suspend(world.office.address)
        try:
            before = snapshot(world.wire, operator, world.broker.home)
            with pytest.raises(Forbidden) as fetch:
                coop.fetch(world.dataset_id, tmp_path / "frozen.csv")
            assert fetch.value.code == "owner_suspended"
            logged = snapshot(world.wire, operator, world.broker.home)
            assert logged.log_size == before.log_size + 1
            assert (logged.block, logged.grants) == (before.block, before.grants)
            with pytest.raises(Forbidden) as request:
                coop.request_access(world.dataset_id, purpose=PURPOSE, days=5, uses=1)
            assert request.value.code == "owner_suspended"
            assert logged.changes(snapshot(world.wire, operator, world.broker.home)) == []
            assert not (tmp_path / "frozen.csv").exists()
        finally:
            op.reinstate(world.office.address)
        fetched = coop.fetch(world.dataset_id, tmp_path / "thawed.csv")
        assert Path(fetched.path).read_text().startswith("ward,roofs")


# -- addresses --------------------------------------------------------------------------------


def test_a_revoke_naming_the_grantee_in_lower_case_revokes_the_grant(world: World) -> None:
    def grant() -> dict[str, Any]:
        grants = world.wire.get(world.office, f"/v1/grants?dataset_id={world.dataset_id}")
        rows = grants["data"] if isinstance(grants, dict) else grants
        (only,) = [g for g in rows if g["grantee"] == world.coop.address]
        return dict(only)

    assert grant()["revoked"] is False
    lower = world.coop.address.lower()
    assert lower != world.coop.address
    office = world.office.address.lower()  # path addresses are normalised too
    nonce = int(world.wire.get(world.office, f"/v1/members/{office}/nonces")["access_ledger"])
    body = revoke_body(
        world.office,
        world.wire.domains,
        dataset_id=world.dataset_id,
        grantee=lower,
        chain_nonce=nonce,
    )
    response = world.wire.send(world.office, "POST", "/v1/grants/revoke", json_body=body)
    assert response.status_code == 200, response.text
    assert response.json()["grantee"] == world.coop.address
    assert grant()["revoked"] is True
    # The broker's own check still finds its rows and the signed records in agreement.
    with world.broker.client("operator") as op:
        deadline = time.monotonic() + 30
        report = op.self_check()
        while not report.ok and time.monotonic() < deadline:  # anchoring may lag a moment
            time.sleep(0.5)
            report = op.self_check()
        assert report.ok, report.problems

"""Bad input over HTTP: every refusal is a 4xx with its ``code``, and writes nothing.

One real broker (``drl serve`` in a subprocess) serves the whole module. Each case takes a
:func:`tests.support.http_probe.snapshot` before and after the refused request -- chain head block,
flow-log size and anchored head, every grant's uses, the rows of every database table and the
set of ciphertext blobs -- and requires them to be identical: no row, no log record, no blob,
no transaction, no used nonce, no use recorded on a grant. The one exception: a member's validly
signed fetch that its grant or a standing refuses is logged as refused (one record, its nonce
used), so the log shows attempts after a revocation, an expiry or a suspension.

Requests are built byte by byte (``tests.support.http_probe.Wire``) so they can be malformed,
mis-signed, stale or replayed; signed actions are built from the SDK's pieces so they can be
valid yet not allowed (a stranger's approval), or carry what the SDK would never sign (a grant
that expires in a few seconds, which is how "after expiry" is reached without moving the
chain's clock: the owner chooses ``expiresAt`` within the requested days).
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledger.client.member import MemberKeys, PreparedUpload, prepare_upload, sign
from ledger.protocol import http as auth
from ledger.types import kind_code
from tests.support.http_kit import RunningBroker, new_member, running_broker
from tests.support.http_probe import (
    Snapshot,
    Wire,
    action_json,
    error_code,
    grant_body,
    one_logged_refusal,
    owner_grant_body,
    revoke_body,
    signed,
    snapshot,
    stranger,
)

EXPIRING_GRANT_SECONDS = 8
MEMBERS = {
    "office": ("department", "District Planning Office"),
    "other": ("department", "Port Authority"),
    "coop": ("enterprise", "Harbour Solar Cooperative"),
    "plain": ("enterprise", "Plain Analytics Ltd"),
    "spender": ("enterprise", "One Use Consulting"),
    "revokee": ("enterprise", "Revoked Research"),
    "expiree": ("enterprise", "Short Lease Logistics"),
    "suspendee": ("enterprise", "Suspended Surveys"),
    "auditor": ("regulator", "Data Protection Authority"),
    "curator": ("department", "City Archive"),
}
PURPOSE = "Planning of rooftop solar installations in the harbour ward"
NOWHERE = 987_654


@dataclass
class World:
    broker: RunningBroker
    wire: Wire
    keys: dict[str, MemberKeys]
    dataset: dict[str, Any]
    pending: dict[str, Any]
    awaiting: dict[str, Any]  # plain's request on the curator's SENSITIVE data, awaiting approval
    grant_of: dict[str, int]
    expires_at: int
    work: Path

    @property
    def operator(self) -> MemberKeys:
        return self.keys["operator"]

    def snapshot(self) -> Snapshot:
        return snapshot(self.wire, self.operator, self.broker.home)

    def refused(self, call: Callable[[], httpx.Response], status: int, code: str) -> httpx.Response:
        """Run ``call``: it must answer ``status`` with ``code`` and change nothing."""
        before = self.snapshot()
        response = call()
        assert (response.status_code, error_code(response)) == (status, code), response.text
        assert before.changes(self.snapshot()) == []
        return response

    def refused_and_logged(
        self, call: Callable[[], httpx.Response], status: int, code: str
    ) -> httpx.Response:
        """Run a member's validly signed fetch that the grant or a standing refuses: it must
        answer ``status`` with ``code`` and write exactly one record, the refused Fetch with
        context ``{"refused": code}``, and consume its nonce (docs/protocol.md §11.12)."""
        before = self.snapshot()
        response = call()
        assert (response.status_code, error_code(response)) == (status, code), response.text
        after = self.snapshot()
        assert one_logged_refusal(before, after), before.changes(after)
        record = self.wire.get(self.operator, f"/v1/log/records/{before.log_size}")
        leaf = json.loads(record["leaf"])
        assert leaf["signed"]["action"] == "fetch"
        assert leaf["context"] == {"refused": code}
        return response

    def refused_with(self, call: Callable[[], httpx.Response], status: int) -> httpx.Response:
        """Run ``call``: it must answer ``status`` and change nothing."""
        before = self.snapshot()
        response = call()
        assert response.status_code == status, response.text
        assert before.changes(self.snapshot()) == []
        return response

    def post(self, who: str, target: str, body: Any) -> httpx.Response:
        return self.wire.send(self.keys[who], "POST", target, json_body=body)

    def nonce(self, who: str, contract: str = "access_ledger") -> int:
        address = self.keys[who].address
        return int(self.wire.get(self.operator, f"/v1/members/{address}/nonces")[contract])

    def fetch_body(self, who: str, dataset_id: int | None = None) -> dict[str, Any]:
        target = self.dataset["id"] if dataset_id is None else dataset_id
        keys = self.keys[who]
        return signed(
            keys, "fetch", {"grantee": keys.address, "datasetId": target}, self.wire.domains
        )

    def request_body(self, who: str, dataset_id: int, **overrides: Any) -> dict[str, Any]:
        keys = self.keys[who]
        message = {
            "requester": keys.address,
            "datasetId": dataset_id,
            "purpose": PURPOSE,
            "days": 30,
            "maxUses": 3,
        }
        return signed(keys, "request", message | overrides, self.wire.domains)

    def prepare(self, who: str, name: str, content: bytes) -> PreparedUpload:
        source = self.work / name
        source.write_bytes(content)
        out = self.work / f"{name}-enc"
        out.mkdir()
        return prepare_upload(
            self.keys[who],
            source,
            workdir=out,
            title=f"Upload {name}",
            domains=self.wire.domains,
            chain_nonce=self.nonce(who, "data_registry"),
        )

    def begin(self, who: str, prepared: PreparedUpload) -> str:
        response = self.post(who, "/v1/datasets/uploads", upload_body(prepared))
        assert response.status_code == 201, response.text
        return str(response.json()["upload_url"])

    def put(
        self, who: str, url: str, data: bytes, *, declared: str | None = None
    ) -> httpx.Response:
        return self.wire.send(
            self.keys[who],
            "PUT",
            url,
            body=data,
            content_type="application/octet-stream",
            body_sha256=declared,
        )


def upload_body(prepared: PreparedUpload) -> dict[str, Any]:
    return {
        "signed": prepared.signed.to_json(),
        "metadata": prepared.metadata,
        "owner_wrapped_key": "0x" + prepared.owner_wrapped_key.hex(),
    }


def _approve(world: World, request_id: int, **options: Any) -> dict[str, Any]:
    """The office approves: the grant it made."""
    body = owner_grant_body(world.wire, world.keys["office"], request_id, **options)
    response = world.post("office", f"/v1/requests/{request_id}/approve", body)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "granted", response.text
    return dict(response.json()["grant"])


def _request(world: World, who: str, *, uses: int = 3) -> dict[str, Any]:
    body = world.request_body(who, world.dataset["id"], days=1, maxUses=uses)
    response = world.post(who, "/v1/requests", body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def _awaiting_cosignature(world: World) -> dict[str, Any]:
    """The curator's SENSITIVE dataset requested by an enterprise: its grant awaits ADMIN."""
    source = world.work / "archive.csv"
    source.write_text("box,shelf\n1,A\n2,B\n")
    with world.broker.client("curator") as curator:
        sensitive = curator.register(source, title="Archive boxes", classification="sensitive")
    body = world.request_body("plain", sensitive.id, days=1)
    response = world.post("plain", "/v1/requests", body)
    assert response.status_code == 201, response.text
    request_id = int(response.json()["id"])
    grant = owner_grant_body(world.wire, world.keys["curator"], request_id)
    response = world.post("curator", f"/v1/requests/{request_id}/approve", grant)
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "awaiting_approval", response.text
    return dict(world.wire.get(world.operator, f"/v1/requests/{request_id}"))


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("bad-input")
    home = root / "home"
    with running_broker(home, extra_env={"DRL_ANCHOR_EVERY_RECORDS": "1000000"}) as broker:
        wire = Wire(broker.url)
        keys: dict[str, MemberKeys] = {}
        for handle, (kind, name) in MEMBERS.items():
            new_member(broker, handle, kind, name)
            with broker.client(handle) as client:
                assert client.keys is not None
                keys[handle] = client.keys
        with broker.client("operator") as op:
            assert op.keys is not None
            keys["operator"] = op.keys
        work = root / "work"
        work.mkdir()
        source = work / "harbour.csv"
        source.write_text("ward,roofs\nharbour,412\nquay,97\n")
        with broker.client("office") as office:
            dataset = office.register(source, title="Harbour ward rooftops").model_dump(mode="json")
        world = World(broker, wire, keys, dataset, {}, {}, {}, 0, work)
        # First, so its few seconds run out while the rest is set up.
        expiring = _approve(
            world, _request(world, "expiree")["id"], lifetime=EXPIRING_GRANT_SECONDS
        )
        world.expires_at = int(expiring["expires_at"])
        for who, uses in (("coop", 5), ("spender", 1), ("revokee", 3), ("suspendee", 3)):
            world.grant_of[who] = int(_approve(world, _request(world, who, uses=uses)["id"])["id"])
        with broker.client("spender") as spender:
            spender.fetch(dataset["id"], work / "spent.csv")
        with broker.client("office") as office:
            office.revoke(world.grant_of["revokee"])
        with broker.client("operator") as op:
            op.suspend(keys["suspendee"].address)
        world.pending = _request(world, "plain")
        world.awaiting = _awaiting_cosignature(world)
        try:
            yield world
        finally:
            wire.close()


# -- malformed requests -----------------------------------------------------------------------


def test_malformed_json_is_refused(world: World) -> None:
    world.refused(
        lambda: world.wire.send(
            world.keys["coop"],
            "POST",
            "/v1/requests",
            body=b'{"signed": {"action": "request",',
            content_type="application/json",
        ),
        422,
        "invalid_request",
    )


def test_json_that_is_not_an_object_is_refused(world: World) -> None:
    world.refused(lambda: world.post("coop", "/v1/requests", [1, 2, 3]), 422, "invalid_request")


def test_envelope_fields_of_the_wrong_type_are_refused(world: World) -> None:
    body = {"signed": {"action": "request", "actor": 42, "message": [], "signature": "0x12"}}
    world.refused(lambda: world.post("coop", "/v1/requests", body), 422, "invalid_request")


def test_unknown_action_and_extra_fields_are_refused(world: World) -> None:
    good = world.request_body("coop", world.dataset["id"])
    unknown = {"signed": {**good["signed"], "action": "steal"}}
    world.refused(lambda: world.post("coop", "/v1/requests", unknown), 422, "invalid_request")
    extra = {**good, "admin": True}
    world.refused(lambda: world.post("coop", "/v1/requests", extra), 422, "invalid_request")


def test_a_signed_field_of_the_wrong_type_is_refused(world: World) -> None:
    body = world.request_body("coop", world.dataset["id"])
    body["signed"]["message"]["days"] = "30"
    world.refused(lambda: world.post("coop", "/v1/requests", body), 400, "malformed_action")


@pytest.mark.parametrize("value", ["abc", [1], None, 1.5, True])
def test_an_id_of_the_wrong_type_in_a_signed_fetch_is_refused(world: World, value: Any) -> None:
    body = world.fetch_body("coop")
    body["signed"]["message"]["datasetId"] = value
    target = f"/v1/datasets/{world.dataset['id']}/fetch"
    world.refused(lambda: world.post("coop", target, body), 400, "malformed_action")


@pytest.mark.parametrize("value", ["x", [1], {"a": 1}])
def test_an_id_of_the_wrong_type_in_a_signed_deny_is_refused(world: World, value: Any) -> None:
    keys = world.keys["office"]
    body = signed(
        keys,
        "deny",
        {"owner": keys.address, "requestId": world.pending["id"], "reason": "no"},
        world.wire.domains,
    )
    body["signed"]["message"]["requestId"] = value
    target = f"/v1/requests/{world.pending['id']}/deny"
    world.refused(lambda: world.post("office", target, body), 400, "malformed_action")


def test_a_signed_action_of_another_kind_is_refused(world: World) -> None:
    body = world.fetch_body("coop")  # a signed fetch sent as an access request
    world.refused(lambda: world.post("coop", "/v1/requests", body), 422, "wrong_action")


@pytest.mark.parametrize(
    "target",
    ["/v1/datasets?limit=abc", "/v1/datasets?limit=0", "/v1/datasets/abc", "/v1/requests/1.5"],
)
def test_query_and_path_values_of_the_wrong_type_are_refused(world: World, target: str) -> None:
    world.refused(
        lambda: world.wire.send(world.keys["coop"], "GET", target), 422, "invalid_request"
    )


def test_a_body_over_one_mebibyte_is_refused(world: World) -> None:
    body = b'{"signed": "' + b"x" * (1024 * 1024) + b'"}'
    world.refused(
        lambda: world.wire.send(
            world.keys["coop"], "POST", "/v1/requests", body=body, content_type="application/json"
        ),
        413,
        "payload_too_large",
    )


def test_a_chunked_body_over_one_mebibyte_is_refused(world: World) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"signed": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    headers = world.wire.headers(world.keys["coop"], "POST", "/v1/requests", "0" * 64)
    headers["content-type"] = "application/json"
    world.refused(
        lambda: world.wire.http.post("/v1/requests", content=chunks(), headers=headers),
        413,
        "payload_too_large",
    )


# -- unknown ids ------------------------------------------------------------------------------


def _unknown_id_calls(world: World) -> dict[str, tuple[Callable[[], httpx.Response], int, str]]:
    coop, office, op = world.keys["coop"], world.keys["office"], world.operator
    nobody = "0x000000000000000000000000000000000000dEaD"
    req = {**world.pending, "id": NOWHERE}

    def get(keys: MemberKeys, target: str) -> Callable[[], httpx.Response]:
        return lambda: world.wire.send(keys, "GET", target)

    def post(who: str, target: str, body: Any) -> Callable[[], httpx.Response]:
        return lambda: world.post(who, target, body)

    deny = signed(
        office,
        "deny",
        {"owner": office.address, "requestId": NOWHERE, "reason": "-"},
        world.wire.domains,
    )
    return {
        "dataset": (get(coop, f"/v1/datasets/{NOWHERE}"), 404, "dataset_not_found"),
        "request": (get(op, f"/v1/requests/{NOWHERE}"), 404, "request_not_found"),
        "member": (get(coop, f"/v1/members/{nobody}"), 404, "member_not_found"),
        "trace": (get(op, f"/v1/trace/datasets/{NOWHERE}"), 404, "dataset_not_found"),
        "access request": (
            post("coop", "/v1/requests", world.request_body("coop", NOWHERE)),
            404,
            "dataset_not_found",
        ),
        "approve": (
            post(
                "office",
                f"/v1/requests/{NOWHERE}/approve",
                grant_body(office, world.wire.domains, request=req, chain_nonce=0),
            ),
            404,
            "request_not_found",
        ),
        "deny": (post("office", f"/v1/requests/{NOWHERE}/deny", deny), 404, "request_not_found"),
        "fetch": (
            post("coop", f"/v1/datasets/{NOWHERE}/fetch", world.fetch_body("coop", NOWHERE)),
            404,
            "dataset_not_found",
        ),
        "revoke": (
            post(
                "office",
                "/v1/grants/revoke",
                revoke_body(
                    office,
                    world.wire.domains,
                    dataset_id=NOWHERE,
                    grantee=coop.address,
                    chain_nonce=world.nonce("office"),
                ),
            ),
            404,
            "dataset_not_found",
        ),
        "upload": (
            lambda: world.put("office", f"/v1/datasets/uploads/{secrets.token_hex(16)}", b"x"),
            404,
            "upload_not_found",
        ),
    }


@pytest.mark.parametrize(
    "what",
    [
        "dataset",
        "request",
        "member",
        "trace",
        "access request",
        "approve",
        "deny",
        "fetch",
        "revoke",
        "upload",
    ],
)
def test_unknown_ids_are_not_found(world: World, what: str) -> None:
    call, status, code = _unknown_id_calls(world)[what]
    world.refused(call, status, code)


# -- request signatures -----------------------------------------------------------------------


def _request_call(world: World, **tamper: Any) -> Callable[[], httpx.Response]:
    """A valid access request by ``plain``, with its HTTP signature headers tampered with."""
    body = json.dumps(world.request_body("plain", world.dataset["id"])).encode()
    keys = world.keys["plain"]
    digest = hashlib.sha256(body).hexdigest()
    headers = world.wire.headers(
        tamper.pop("signer", keys),
        "POST",
        tamper.pop("sign_target", "/v1/requests"),
        digest,
        timestamp=tamper.pop("timestamp", None),
    )
    headers[auth.H_ADDRESS] = keys.address
    for name in tamper.pop("drop", ()):
        headers.pop(name)
    headers.update(tamper.pop("headers", {}))
    headers["content-type"] = "application/json"
    sent = tamper.pop("body", body)
    assert not tamper
    return lambda: world.wire.http.post("/v1/requests", content=sent, headers=headers)


def test_a_request_without_signature_headers_is_unauthenticated(world: World) -> None:
    body = world.request_body("plain", world.dataset["id"])
    world.refused(
        lambda: world.wire.send(None, "POST", "/v1/requests", json_body=body),
        401,
        "unauthenticated",
    )
    world.refused(lambda: world.wire.send(None, "GET", "/v1/datasets"), 401, "unauthenticated")


@pytest.mark.parametrize("header", [auth.H_SIGNATURE, auth.H_NONCE, auth.H_TIMESTAMP])
def test_a_request_missing_one_signature_header_is_unauthenticated(
    world: World, header: str
) -> None:
    world.refused(_request_call(world, drop=[header]), 401, "unauthenticated")


def test_a_signature_by_another_key_is_unauthenticated(world: World) -> None:
    world.refused(_request_call(world, signer=world.keys["coop"]), 401, "unauthenticated")


def test_a_malformed_signature_is_unauthenticated(world: World) -> None:
    for bad in ("0xzz", "0x" + "00" * 65, "not-hex"):
        world.refused(_request_call(world, headers={auth.H_SIGNATURE: bad}), 401, "unauthenticated")


def test_a_body_changed_after_signing_is_unauthenticated(world: World) -> None:
    other = json.dumps(world.request_body("plain", world.dataset["id"], days=3650)).encode()
    world.refused(_request_call(world, body=other), 401, "unauthenticated")


def test_a_signature_for_another_path_is_unauthenticated(world: World) -> None:
    world.refused(_request_call(world, sign_target="/v1/receipts"), 401, "unauthenticated")


@pytest.mark.parametrize("skew", [-auth.MAX_SKEW_SECONDS - 5, auth.MAX_SKEW_SECONDS + 5])
def test_a_stale_or_future_timestamp_is_unauthenticated(world: World, skew: int) -> None:
    stamp = int(time.time()) + skew
    world.refused(_request_call(world, timestamp=stamp), 401, "unauthenticated")


@pytest.mark.parametrize("stamp", ["9" * 5000, "1" * 13, "-1", "1e9"])
def test_a_timestamp_that_is_not_1_to_12_digits_is_unauthenticated(
    world: World, stamp: str
) -> None:
    call = _request_call(world, headers={auth.H_TIMESTAMP: stamp})
    world.refused(call, 401, "unauthenticated")


def test_a_deeply_nested_body_is_refused_before_parsing(world: World) -> None:
    deep = b'{"signed":' + b"[" * 99_999 + b"]" * 99_999 + b"}"
    world.refused(_request_call(world, body=deep), 400, "body_too_deep")

    def unsigned() -> httpx.Response:
        return world.wire.send(
            None, "POST", "/v1/requests", body=deep, content_type="application/json"
        )

    world.refused(unsigned, 400, "body_too_deep")
    assert world.wire.http.get("/v1/health").status_code == 200


def test_a_replayed_request_is_refused_as_replayed(world: World) -> None:
    call = _request_call(world)
    first = call()
    assert first.status_code == 201, first.text
    world.refused(call, 401, "request_replayed")


def test_a_replayed_signed_action_is_refused(world: World) -> None:
    body = world.request_body("plain", world.dataset["id"])
    first = world.post("plain", "/v1/requests", body)  # fresh request headers each time
    assert first.status_code == 201, first.text
    world.refused(lambda: world.post("plain", "/v1/requests", body), 409, "nonce_replayed")


def test_a_replayed_grant_is_refused(world: World) -> None:
    request = _request(world, "other")
    body = owner_grant_body(world.wire, world.keys["office"], int(request["id"]))
    target = f"/v1/requests/{request['id']}/approve"
    assert world.post("office", target, body).status_code == 201
    world.refused(lambda: world.post("office", target, body), 409, "request_decided")


def test_a_signed_action_past_its_deadline_is_refused(world: World) -> None:
    past = int(time.time()) - 5
    keys = world.keys["plain"]
    message = {
        "requester": keys.address,
        "datasetId": world.dataset["id"],
        "purpose": PURPOSE,
        "days": 30,
        "maxUses": 3,
    }
    late = signed(keys, "request", message, world.wire.domains, expires=past)
    world.refused(lambda: world.post("plain", "/v1/requests", late), 400, "deadline_expired")
    fetch = signed(
        world.keys["coop"],
        "fetch",
        {"grantee": world.keys["coop"].address, "datasetId": world.dataset["id"]},
        world.wire.domains,
        expires=past,
    )
    target = f"/v1/datasets/{world.dataset['id']}/fetch"
    world.refused(lambda: world.post("coop", target, fetch), 400, "deadline_expired")


def test_a_deadline_too_far_ahead_is_refused(world: World) -> None:
    keys = world.keys["plain"]
    body = world.request_body("plain", world.dataset["id"])
    far = signed(
        keys,
        "request",
        {k: v for k, v in body["signed"]["message"].items() if k not in ("nonce", "deadline")},
        world.wire.domains,
        expires=int(time.time()) + 3 * 86400,
    )
    world.refused(lambda: world.post("plain", "/v1/requests", far), 400, "deadline_too_far")


# -- requests and decisions -------------------------------------------------------------------


def test_a_request_for_ones_own_dataset_is_refused(world: World) -> None:
    body = world.request_body("office", world.dataset["id"])
    world.refused(lambda: world.post("office", "/v1/requests", body), 422, "own_dataset")


def test_a_request_by_an_unknown_key_is_refused(world: World) -> None:
    keys = stranger()
    message = {
        "requester": keys.address,
        "datasetId": world.dataset["id"],
        "purpose": PURPOSE,
        "days": 30,
        "maxUses": 3,
    }
    body = signed(keys, "request", message, world.wire.domains)
    world.refused(
        lambda: world.wire.send(keys, "POST", "/v1/requests", json_body=body),
        403,
        "not_a_member",
    )


def test_a_request_by_a_suspended_member_is_refused(world: World) -> None:
    body = world.request_body("suspendee", world.dataset["id"])
    world.refused(lambda: world.post("suspendee", "/v1/requests", body), 403, "member_suspended")


def test_approve_by_a_non_owner_is_refused(world: World) -> None:
    target = f"/v1/requests/{world.pending['id']}/approve"
    for who in ("other", "coop", "plain"):
        body = grant_body(
            world.keys[who], world.wire.domains, request=world.pending, chain_nonce=world.nonce(who)
        )
        world.refused(lambda body=body, who=who: world.post(who, target, body), 403, "not_owner")


def test_approve_with_terms_other_than_requested_is_refused(world: World) -> None:
    office = world.keys["office"]
    wider = {**world.pending, "max_uses": int(world.pending["max_uses"]) + 100}
    body = grant_body(office, world.wire.domains, request=wider, chain_nonce=world.nonce("office"))
    target = f"/v1/requests/{world.pending['id']}/approve"
    world.refused(lambda: world.post("office", target, body), 422, "grant_mismatch")


def test_deny_by_a_non_owner_is_refused(world: World) -> None:
    keys = world.keys["other"]
    body = signed(
        keys,
        "deny",
        {"owner": keys.address, "requestId": world.pending["id"], "reason": "mine now"},
        world.wire.domains,
    )
    target = f"/v1/requests/{world.pending['id']}/deny"
    world.refused(lambda: world.post("other", target, body), 403, "not_owner")


def test_revoke_by_a_non_owner_is_refused(world: World) -> None:
    body = revoke_body(
        world.keys["other"],
        world.wire.domains,
        dataset_id=world.dataset["id"],
        grantee=world.keys["coop"].address,
        chain_nonce=world.nonce("other"),
    )
    world.refused(lambda: world.post("other", "/v1/grants/revoke", body), 403, "not_owner")


def test_a_revoke_with_a_stale_chain_nonce_is_refused(world: World) -> None:
    body = revoke_body(
        world.keys["office"],
        world.wire.domains,
        dataset_id=world.dataset["id"],
        grantee=world.keys["coop"].address,
        chain_nonce=world.nonce("office") - 1,
    )
    world.refused(lambda: world.post("office", "/v1/grants/revoke", body), 409, "nonce_replayed")


# -- downloads --------------------------------------------------------------------------------


def _fetch(world: World, who: str) -> Callable[[], httpx.Response]:
    target = f"/v1/datasets/{world.dataset['id']}/fetch"
    return lambda: world.post(who, target, world.fetch_body(who))


def test_download_without_a_grant_is_refused_and_logged(world: World) -> None:
    world.refused_and_logged(_fetch(world, "plain"), 403, "no_grant")


def test_download_of_ones_own_dataset_is_refused(world: World) -> None:
    world.refused(_fetch(world, "office"), 422, "own_dataset")


def test_download_after_expiry_is_refused_and_logged(world: World) -> None:
    wait = world.expires_at + 1 - time.time()
    if wait > 0:
        time.sleep(wait)
    world.refused_and_logged(_fetch(world, "expiree"), 403, "access_ledger_grant_expired")


def test_download_after_revoke_is_refused_and_logged(world: World) -> None:
    world.refused_and_logged(_fetch(world, "revokee"), 403, "access_ledger_grant_revoked")


def test_download_after_the_uses_are_spent_is_refused_and_logged(world: World) -> None:
    world.refused_and_logged(_fetch(world, "spender"), 403, "access_ledger_uses_exhausted")


def test_a_refused_fetch_sent_again_is_refused_the_same_and_logged_once(world: World) -> None:
    body = world.fetch_body("plain")
    target = f"/v1/datasets/{world.dataset['id']}/fetch"
    world.refused_and_logged(lambda: world.post("plain", target, body), 403, "no_grant")
    world.refused(lambda: world.post("plain", target, body), 403, "no_grant")


def test_download_by_a_suspended_member_is_refused_and_logged(world: World) -> None:
    world.refused_and_logged(_fetch(world, "suspendee"), 403, "member_suspended")


def test_a_fetch_signed_by_another_member_is_refused(world: World) -> None:
    target = f"/v1/datasets/{world.dataset['id']}/fetch"
    body = world.fetch_body("coop")
    world.refused(lambda: world.post("plain", target, body), 422, "fetch_mismatch")


def test_the_grantee_can_still_download(world: World) -> None:
    """The refusals above are the grant's state, not a broken fetch: the valid one works."""
    response = _fetch(world, "coop")()
    assert response.status_code == 200, response.text
    assert int(response.headers["x-drl-uses-left"]) == 4


def test_a_receipt_without_a_grant_is_refused(world: World) -> None:
    keys = world.keys["plain"]
    body = signed(
        keys,
        "receipt",
        {
            "consumer": keys.address,
            "datasetId": world.dataset["id"],
            "contentHash": world.dataset["content_hash"],
            "grantGeneration": 1,
            "fetchNonce": 2**200,
        },
        world.wire.domains,
    )
    world.refused(lambda: world.post("plain", "/v1/receipts", body), 403, "no_grant")


def test_a_rating_without_a_delivery_is_refused(world: World) -> None:
    keys = world.keys["revokee"]
    body = signed(
        keys,
        "rate",
        {"rater": keys.address, "datasetId": world.dataset["id"], "score": 5, "comment": ""},
        world.wire.domains,
    )
    world.refused(lambda: world.post("revokee", "/v1/ratings", body), 403, "not_a_recipient")


# -- regulators write nothing -----------------------------------------------------------------


def _regulator_writes(world: World) -> dict[tuple[str, str], Callable[[], httpx.Response]]:
    """One valid, regulator-signed call for every route that is not a GET."""
    auditor = world.keys["auditor"]
    domains = world.wire.domains
    d = world.dataset["id"]
    victim = world.keys["plain"].address
    suspendee = world.keys["suspendee"].address
    upload = world.prepare("auditor", "auditor.csv", b"a,b\n1,2\n")

    def post(target: str, body: Any = None) -> Callable[[], httpx.Response]:
        return lambda: world.wire.send(auditor, "POST", target, json_body=body)

    return {
        ("POST", "/v1/members"): post(
            "/v1/members",
            signed(
                auditor,
                "onboard",
                {
                    "member": stranger().address,
                    "kind": kind_code("enterprise"),
                    "name": "Shadow Co",
                    "keySuite": 1,
                    "encryptionKey": "0x" + "11" * 32,
                },
                domains,
            ),
        ),
        ("POST", "/v1/members/{address}/suspend"): post(
            f"/v1/members/{victim}/suspend", signed(auditor, "suspend", {"member": victim}, domains)
        ),
        ("POST", "/v1/members/{address}/reinstate"): post(
            f"/v1/members/{suspendee}/reinstate",
            signed(auditor, "reinstate", {"member": suspendee}, domains),
        ),
        ("POST", "/v1/members/{address}/key"): post(
            f"/v1/members/{auditor.address}/key",
            signed(
                auditor,
                "rotate_key",
                {
                    "member": auditor.address,
                    "keySuite": auditor.hpke.suite.id,
                    "encryptionKey": auditor.public_key.to_bytes(),
                },
                domains,
            ),
        ),
        ("POST", "/v1/datasets/{dataset_id}/reassign"): post(
            f"/v1/datasets/{d}/reassign", reassign_body(auditor, world, d, to=auditor.address)
        ),
        ("POST", "/v1/requests/{request_id}/cosign"): post(
            f"/v1/requests/{world.awaiting['id']}/cosign", approval_body(auditor, world)
        ),
        ("POST", "/v1/datasets/uploads"): post("/v1/datasets/uploads", upload_body(upload)),
        ("PUT", "/v1/datasets/uploads/{upload_id}"): lambda: world.put(
            "auditor",
            f"/v1/datasets/uploads/{secrets.token_hex(16)}",
            upload.ciphertext_path.read_bytes(),
        ),
        ("POST", "/v1/datasets/{dataset_id}/fetch"): post(
            f"/v1/datasets/{d}/fetch",
            signed(auditor, "fetch", {"grantee": auditor.address, "datasetId": d}, domains),
        ),
        ("POST", "/v1/requests"): post(
            "/v1/requests",
            signed(
                auditor,
                "request",
                {
                    "requester": auditor.address,
                    "datasetId": d,
                    "purpose": PURPOSE,
                    "days": 30,
                    "maxUses": 1,
                },
                domains,
            ),
        ),
        ("POST", "/v1/requests/{request_id}/approve"): post(
            f"/v1/requests/{world.pending['id']}/approve",
            grant_body(auditor, domains, request=world.pending, chain_nonce=0),
        ),
        ("POST", "/v1/requests/{request_id}/deny"): post(
            f"/v1/requests/{world.pending['id']}/deny",
            signed(
                auditor,
                "deny",
                {"owner": auditor.address, "requestId": world.pending["id"], "reason": "-"},
                domains,
            ),
        ),
        ("POST", "/v1/grants/revoke"): post(
            "/v1/grants/revoke",
            revoke_body(
                auditor, domains, dataset_id=d, grantee=world.keys["coop"].address, chain_nonce=0
            ),
        ),
        ("POST", "/v1/grants/{grant_id}/carry"): post(
            "/v1/grants/1/carry",
            grant_body(auditor, domains, request=world.pending, chain_nonce=0),
        ),
        ("POST", "/v1/receipts"): post(
            "/v1/receipts",
            signed(
                auditor,
                "receipt",
                {
                    "consumer": auditor.address,
                    "datasetId": d,
                    "contentHash": world.dataset["content_hash"],
                    "grantGeneration": 1,
                    "fetchNonce": 2**200,
                },
                domains,
            ),
        ),
        ("POST", "/v1/ratings"): post(
            "/v1/ratings",
            signed(
                auditor,
                "rate",
                {"rater": auditor.address, "datasetId": d, "score": 1, "comment": "bad"},
                domains,
            ),
        ),
        ("POST", "/v1/issues"): post(
            "/v1/issues",
            signed(
                auditor,
                "issue",
                {
                    "reporter": auditor.address,
                    "datasetId": d,
                    "fields": "roofs",
                    "rows": "",
                    "problem": "a regulator may not file issues",
                },
                domains,
            ),
        ),
        ("POST", "/v1/issues/{issue_id}/answer"): post(
            "/v1/issues/1/answer",
            signed(
                auditor,
                "answer",
                {
                    "owner": auditor.address,
                    "issueId": 1,
                    "verdict": "acknowledged",
                    "fixedIn": 0,
                    "reason": "",
                },
                domains,
            ),
        ),
        ("POST", "/v1/log/anchor"): post("/v1/log/anchor"),
    }


#: POST routes that read: the read-only chain relay (a JSON-RPC call is a POST).
READS_BY_POST = {("POST", "/v1/chain/rpc")}


def test_every_write_by_a_regulator_is_refused(world: World) -> None:
    spec = world.wire.http.get("/openapi.json").json()
    writes = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
        if method != "get"
    } - READS_BY_POST
    calls = _regulator_writes(world)
    assert set(calls) == writes, "a write route has no regulator case here"
    operator_only = {
        ("POST", "/v1/members"),
        ("POST", "/v1/members/{address}/suspend"),
        ("POST", "/v1/members/{address}/reinstate"),
        ("POST", "/v1/datasets/{dataset_id}/reassign"),
        ("POST", "/v1/requests/{request_id}/cosign"),
        ("POST", "/v1/log/anchor"),
    }
    for route, call in sorted(calls.items()):
        code = "wrong_role" if route in operator_only else "regulator_read_only"
        world.refused(call, 403, code)


# -- uploads ----------------------------------------------------------------------------------


def test_an_upload_whose_bytes_differ_from_the_signed_digest_is_refused(world: World) -> None:
    prepared = world.prepare("office", "tampered.csv", b"ward,roofs\nnorth,12\nsouth,34\n")
    url = world.begin("office", prepared)
    good = prepared.ciphertext_path.read_bytes()
    bad = good[:-1] + bytes([good[-1] ^ 1])
    digest = prepared.ciphertext_sha256.hex()
    world.refused(
        lambda: world.put("office", url, bad, declared=digest), 422, "blob_digest_mismatch"
    )
    world.refused(
        lambda: world.put("office", url, good + b"!", declared=digest), 413, "blob_too_large"
    )
    world.refused(
        lambda: world.put("office", url, good[:-5], declared=digest), 422, "blob_digest_mismatch"
    )
    # Authenticated over the bytes it sends, but they are not what the owner signed.
    world.refused(lambda: world.put("office", url, bad), 422, "upload_digest_mismatch")
    # The intent survives the refusals: the signed bytes still register.
    response = world.put("office", url, good, declared=digest)
    assert response.status_code == 201, response.text
    assert response.json()["ciphertext_sha256"] == "0x" + digest
    # ... once: the same signed registration cannot be replayed.
    world.refused(
        lambda: world.post("office", "/v1/datasets/uploads", upload_body(prepared)),
        409,
        "already_registered",
    )


def test_an_upload_by_another_member_is_refused(world: World) -> None:
    prepared = world.prepare("office", "large.bin", os.urandom(3 * 1024 * 1024))
    url = world.begin("office", prepared)
    data = prepared.ciphertext_path.read_bytes()
    digest = prepared.ciphertext_sha256.hex()
    world.refused(lambda: world.put("coop", url, data, declared=digest), 403, "not_owner")


def test_an_upload_intent_whose_metadata_was_changed_is_refused(world: World) -> None:
    prepared = world.prepare("office", "meta.csv", b"ward,roofs\neast,5\n")
    body = upload_body(prepared)
    body["metadata"] = {**body["metadata"], "title": "Something else"}
    world.refused(
        lambda: world.post("office", "/v1/datasets/uploads", body), 422, "metadata_mismatch"
    )


def test_an_upload_intent_signed_by_someone_else_is_refused(world: World) -> None:
    prepared = world.prepare("coop", "theirs.csv", b"ward,roofs\nwest,8\n")
    body = upload_body(prepared)
    world.refused(lambda: world.post("plain", "/v1/datasets/uploads", body), 403, "not_owner")


def test_a_member_key_is_needed_for_every_action(world: World) -> None:
    """A well-formed action sent by a key nobody onboarded changes nothing."""
    keys = stranger()
    message = {"grantee": keys.address, "datasetId": world.dataset["id"]}
    action = sign(keys, "fetch", message, world.wire.domains)
    world.refused(
        lambda: world.wire.send(
            keys, "POST", f"/v1/datasets/{world.dataset['id']}/fetch", json_body=action_json(action)
        ),
        403,
        "not_a_member",
    )


# -- the operator's actions: reinstatement, co-signature, reassignment -------------------------

REASON = "The City Archive showed the survey it commissioned in 2019."
TERM_FIELDS = ("datasetId", "grantee", "purposeHash", "expiresAt", "maxUses", "termsHash")


def reassign_body(
    keys: MemberKeys, world: World, dataset_id: int, *, to: str, reason: str = REASON
) -> dict[str, Any]:
    """A Reassign of ``dataset_id`` to ``to`` signed by ``keys``, with the reason it hashes."""
    message = {
        "datasetId": dataset_id,
        "to": to,
        "reasonHash": hashlib.sha256(REASON.encode()).digest(),
    }
    return {**signed(keys, "reassign", message, world.wire.domains), "reason": reason}


def approval_body(keys: MemberKeys, world: World, **overrides: Any) -> dict[str, Any]:
    """A GrantApproval signed by ``keys`` for the terms of the grant awaiting co-signature."""
    grant = world.awaiting["pending_grant"]["message"]
    message = {k: grant[k] for k in TERM_FIELDS} | {"generation": 1} | overrides
    return signed(keys, "approval", message, world.wire.domains)


def test_a_reinstatement_by_a_member_is_refused(world: World) -> None:
    target = world.keys["suspendee"].address
    for who in ("office", "coop", "suspendee"):
        body = signed(world.keys[who], "reinstate", {"member": target}, world.wire.domains)
        code = "member_suspended" if who == "suspendee" else "wrong_role"
        world.refused(
            lambda body=body, who=who: world.post(who, f"/v1/members/{target}/reinstate", body),
            403,
            code,
        )


def test_a_reinstatement_signed_by_another_key_is_refused(world: World) -> None:
    """Sent by the operator, but signed by a member: MemberRegistry would refuse it anyway."""
    target = world.keys["suspendee"].address
    body = signed(world.keys["office"], "reinstate", {"member": target}, world.wire.domains)
    world.refused(
        lambda: world.post("operator", f"/v1/members/{target}/reinstate", body),
        403,
        "operator_only",
    )


def test_a_reinstatement_of_an_active_member_is_refused(world: World) -> None:
    target = world.keys["coop"].address
    body = signed(world.operator, "reinstate", {"member": target}, world.wire.domains)
    world.refused(
        lambda: world.post("operator", f"/v1/members/{target}/reinstate", body),
        409,
        "not_suspended",
    )


def test_a_reinstatement_naming_another_member_is_refused(world: World) -> None:
    body = signed(
        world.operator, "reinstate", {"member": world.keys["suspendee"].address}, world.wire.domains
    )
    target = f"/v1/members/{world.keys['coop'].address}/reinstate"
    world.refused(lambda: world.post("operator", target, body), 422, "address_mismatch")


def test_a_cosignature_by_a_non_operator_is_refused(world: World) -> None:
    target = f"/v1/requests/{world.awaiting['id']}/cosign"
    for who in ("curator", "plain", "office", "suspendee"):
        body = approval_body(world.keys[who], world)
        code = "member_suspended" if who == "suspendee" else "wrong_role"
        world.refused(lambda body=body, who=who: world.post(who, target, body), 403, code)
    keys = stranger()
    body = approval_body(keys, world)
    world.refused(
        lambda: world.wire.send(keys, "POST", target, json_body=body), 403, "not_a_member"
    )


def test_a_cosignature_signed_by_another_key_is_refused(world: World) -> None:
    """The operator relays an approval the owner signed itself: only ADMIN's counts."""
    body = approval_body(world.keys["curator"], world)
    target = f"/v1/requests/{world.awaiting['id']}/cosign"
    world.refused(lambda: world.post("operator", target, body), 403, "operator_only")


def test_a_cosignature_of_other_terms_is_refused(world: World) -> None:
    body = approval_body(world.operator, world, maxUses=1000)
    target = f"/v1/requests/{world.awaiting['id']}/cosign"
    world.refused(lambda: world.post("operator", target, body), 422, "grant_mismatch")


def test_a_cosignature_of_a_request_not_awaiting_it_is_refused(world: World) -> None:
    body = approval_body(world.operator, world)
    target = f"/v1/requests/{world.pending['id']}/cosign"
    world.refused(lambda: world.post("operator", target, body), 409, "request_decided")
    unknown = f"/v1/requests/{NOWHERE}/cosign"
    world.refused(lambda: world.post("operator", unknown, body), 404, "request_not_found")


def _sensitive_request(world: World, who: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh pending request by ``who`` on the curator's SENSITIVE data, and the curator's
    approve body for it (without a co-signature)."""
    body = world.request_body(who, int(world.awaiting["dataset_id"]), days=1)
    response = world.post(who, "/v1/requests", body)
    assert response.status_code == 201, response.text
    request = dict(response.json())
    return request, owner_grant_body(world.wire, world.keys["curator"], int(request["id"]))


def test_an_approval_sent_with_the_grant_must_be_the_operators(world: World) -> None:
    """The owner attaches a GrantApproval it signed itself: nothing is relayed or written."""
    request, body = _sensitive_request(world, "coop")
    terms = {k: body["signed"]["message"][k] for k in TERM_FIELDS}
    own = signed(world.keys["curator"], "approval", {**terms, "generation": 1}, world.wire.domains)
    body["admin_approval"] = own["signed"]
    target = f"/v1/requests/{request['id']}/approve"
    world.refused(lambda: world.post("curator", target, body), 403, "operator_only")


def test_an_approval_of_another_kind_sent_with_the_grant_is_refused(world: World) -> None:
    request, body = _sensitive_request(world, "plain")
    curator = world.keys["curator"]
    deny = {"owner": curator.address, "requestId": request["id"], "reason": "-"}
    body["admin_approval"] = signed(curator, "deny", deny, world.wire.domains)["signed"]
    target = f"/v1/requests/{request['id']}/approve"
    world.refused(lambda: world.post("curator", target, body), 422, "wrong_action")


def test_a_reassignment_by_a_member_is_refused(world: World) -> None:
    d = world.dataset["id"]
    for who in ("office", "other", "coop"):
        body = reassign_body(world.keys[who], world, d, to=world.keys[who].address)
        world.refused(
            lambda body=body, who=who: world.post(who, f"/v1/datasets/{d}/reassign", body),
            403,
            "wrong_role",
        )


def test_a_reassignment_signed_by_another_key_is_refused(world: World) -> None:
    d = world.dataset["id"]
    body = reassign_body(world.keys["other"], world, d, to=world.keys["other"].address)
    world.refused(
        lambda: world.post("operator", f"/v1/datasets/{d}/reassign", body), 403, "operator_only"
    )


def test_a_reassignment_with_another_reason_is_refused(world: World) -> None:
    d = world.dataset["id"]
    body = reassign_body(world.operator, world, d, to=world.keys["other"].address, reason="-")
    world.refused(
        lambda: world.post("operator", f"/v1/datasets/{d}/reassign", body), 422, "invalid_field"
    )


def test_a_reassignment_naming_another_dataset_is_refused(world: World) -> None:
    body = reassign_body(world.operator, world, NOWHERE, to=world.keys["other"].address)
    target = f"/v1/datasets/{world.dataset['id']}/reassign"
    world.refused(lambda: world.post("operator", target, body), 422, "address_mismatch")
    target = f"/v1/datasets/{NOWHERE}/reassign"
    world.refused(lambda: world.post("operator", target, body), 404, "dataset_not_found")


@pytest.mark.parametrize(
    ("to", "status", "code"),
    [
        ("auditor", 403, "regulator_read_only"),
        ("suspendee", 403, "member_suspended"),
        ("stranger", 403, "not_a_member"),
    ],
)
def test_a_reassignment_to_no_active_producer_is_refused(
    world: World, to: str, status: int, code: str
) -> None:
    d = world.dataset["id"]
    address = stranger().address if to == "stranger" else world.keys[to].address
    body = reassign_body(world.operator, world, d, to=address)
    world.refused(lambda: world.post("operator", f"/v1/datasets/{d}/reassign", body), status, code)


# -- key rotation: only the member itself -----------------------------------------------------


def _rotation(keys: MemberKeys, world: World, member: str | None = None) -> dict[str, Any]:
    message = {
        "member": member or keys.address,
        "keySuite": keys.hpke.suite.id,
        "encryptionKey": keys.public_key.to_bytes(),
    }
    return signed(keys, "rotate_key", message, world.wire.domains)


def test_the_operator_cannot_rotate_a_members_key(world: World) -> None:
    coop = world.keys["coop"].address
    body = _rotation(world.operator, world, member=coop)
    world.refused(
        lambda: world.post("operator", f"/v1/members/{coop}/key", body), 403, "wrong_role"
    )


def test_a_key_rotation_sent_by_another_member_is_refused(world: World) -> None:
    coop = world.keys["coop"].address
    body = _rotation(world.keys["coop"], world)  # coop's own, valid signature ...
    world.refused(  # ... relayed by plain
        lambda: world.post("plain", f"/v1/members/{coop}/key", body), 403, "not_actor"
    )


def test_a_key_rotation_for_another_address_is_refused(world: World) -> None:
    body = _rotation(world.keys["coop"], world)
    target = f"/v1/members/{world.keys['plain'].address}/key"
    world.refused(lambda: world.post("coop", target, body), 422, "address_mismatch")


def test_a_key_rotation_naming_another_member_is_refused(world: World) -> None:
    """Signed by coop but naming plain as the member: the signer must be the member."""
    coop = world.keys["coop"]
    body = _rotation(coop, world, member=world.keys["plain"].address)
    target = f"/v1/members/{coop.address}/key"
    world.refused(lambda: world.post("coop", target, body), 400, "invalid_signature")


def test_a_key_rotation_to_a_malformed_key_is_refused(world: World) -> None:
    coop = world.keys["coop"]
    message = {"member": coop.address, "keySuite": coop.hpke.suite.id, "encryptionKey": b"\x01"}
    body = signed(coop, "rotate_key", message, world.wire.domains)
    target = f"/v1/members/{coop.address}/key"
    world.refused(lambda: world.post("coop", target, body), 422, "invalid_input")


def test_a_key_rotation_by_a_suspended_member_is_refused(world: World) -> None:
    keys = world.keys["suspendee"]
    body = _rotation(keys, world)
    target = f"/v1/members/{keys.address}/key"
    world.refused(lambda: world.post("suspendee", target, body), 403, "member_suspended")


# -- raw log records: one's own, or any for overseers -----------------------------------------


def test_a_member_reads_its_own_log_records_only(world: World) -> None:
    seq = int(world.dataset["log_seq"])  # the office's registration
    assert world.wire.get(world.keys["office"], f"/v1/log/records/{seq}")["seq"] == seq
    assert world.wire.get(world.keys["auditor"], f"/v1/log/records/{seq}")["seq"] == seq
    assert world.wire.get(world.operator, f"/v1/log/records/{seq}")["seq"] == seq
    for who in ("coop", "other", "plain"):
        world.refused(
            lambda who=who: world.wire.send(world.keys[who], "GET", f"/v1/log/records/{seq}"),
            403,
            "not_visible",
        )
    world.refused(
        lambda: world.wire.send(world.keys["suspendee"], "GET", f"/v1/log/records/{seq}"),
        403,
        "member_suspended",
    )


def test_nobody_finds_another_members_record_by_its_signature(world: World) -> None:
    """``/v1/log/records/mine`` searches the caller's own records only, overseers included."""
    seq = int(world.dataset["log_seq"])
    leaf = world.wire.get(world.operator, f"/v1/log/records/{seq}")["leaf"]
    signature = json.loads(leaf)["signed"]["signature"]
    target = f"/v1/log/records/mine?action=register&signature={signature}"
    assert world.wire.get(world.keys["office"], target)["seq"] == seq
    for who in ("coop", "other", "auditor", "operator"):
        world.refused(
            lambda who=who: world.wire.send(world.keys[who], "GET", target), 404, "not_found"
        )
    for bad in (
        "/v1/log/records/mine?action=register&signature=0x1234",
        f"/v1/log/records/mine?action=&signature={signature}",
        f"/v1/log/records/mine?action={'x' * 33}&signature={signature}",
        "/v1/log/records/mine?action=register",
    ):
        world.refused(
            lambda bad=bad: world.wire.send(world.keys["office"], "GET", bad),
            422,
            "invalid_request",
        )


@pytest.mark.parametrize(
    ("seq", "status", "code"),
    [
        (str(NOWHERE), 404, "not_found"),
        ("-1", 422, "invalid_request"),
        ("x", 422, "invalid_request"),
    ],
)
def test_a_log_record_that_does_not_exist_is_refused(
    world: World, seq: str, status: int, code: str
) -> None:
    world.refused(
        lambda: world.wire.send(world.keys["auditor"], "GET", f"/v1/log/records/{seq}"),
        status,
        code,
    )


# -- the chain relay: read-only JSON-RPC, members only ----------------------------------------


def _rpc(method: str, params: list[Any] | None = None, **extra: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": 7, "method": method, "params": params or [], **extra}


def test_the_relay_answers_a_read_only_call(world: World) -> None:
    response = world.post("coop", "/v1/chain/rpc", _rpc("eth_chainId"))
    assert response.status_code == 200, response.text
    answer = response.json()
    assert (answer["jsonrpc"], answer["id"]) == ("2.0", 7)
    result = answer["result"]  # a node answers a hex quantity; the embedded chain an integer
    assert (int(result, 16) if isinstance(result, str) else result) == world.wire.chain_id


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("eth_getLogs", [1]),
        ("eth_getLogs", [{"topics": 7}]),
        ("eth_call", ["x"]),
        ("eth_getCode", [1, 2, 3, 4]),
        ("eth_getBlockByNumber", [None, None]),
        ("eth_getTransactionReceipt", [{"hash": []}]),
    ],
)
def test_the_relay_answers_malformed_params_as_a_node_would(
    world: World, method: str, params: list[Any]
) -> None:
    """A JSON-RPC error in a 200 answer, never a server error; nothing is written."""
    response = world.refused_with(
        lambda: world.post("coop", "/v1/chain/rpc", _rpc(method, params)), 200
    )
    answer = response.json()
    assert "result" not in answer, answer
    assert isinstance(answer["error"]["code"], int), answer


@pytest.mark.parametrize(
    ("method", "params"),
    [
        ("eth_sendRawTransaction", ["0x" + "f8" * 60]),
        ("eth_sendTransaction", [{"from": "0x" + "11" * 20, "to": "0x" + "22" * 20}]),
        ("eth_sign", ["0x" + "11" * 20, "0x00"]),
        ("eth_signTransaction", [{"from": "0x" + "11" * 20}]),
        ("eth_accounts", []),
        ("personal_unlockAccount", ["0x" + "11" * 20, "", 60]),
        ("evm_mine", []),
        ("evm_increaseTime", [86400]),
        ("evm_revert", [1]),
        ("debug_traceTransaction", ["0x" + "00" * 32]),
        ("eth_estimateGas", [{"to": "0x" + "22" * 20}]),
        ("ETH_CHAINID", []),
    ],
)
def test_the_relay_refuses_every_method_that_is_not_read_only(
    world: World, method: str, params: list[Any]
) -> None:
    world.refused(
        lambda: world.post("coop", "/v1/chain/rpc", _rpc(method, params)), 422, "invalid_field"
    )


def test_the_relay_refuses_malformed_calls_and_outsiders(world: World) -> None:
    for body in (
        _rpc("eth_chainId", admin=True),
        {**_rpc("eth_chainId"), "jsonrpc": "1.0"},
        _rpc("eth_getLogs", [{}] * 9),
        _rpc("x" * 65),
        [_rpc("eth_chainId"), _rpc("eth_blockNumber")],  # no batches
    ):
        world.refused(
            lambda body=body: world.post("coop", "/v1/chain/rpc", body), 422, "invalid_request"
        )
    keys = stranger()
    world.refused(
        lambda: world.wire.send(keys, "POST", "/v1/chain/rpc", json_body=_rpc("eth_chainId")),
        403,
        "not_a_member",
    )
    world.refused(
        lambda: world.wire.send(None, "POST", "/v1/chain/rpc", json_body=_rpc("eth_chainId")),
        401,
        "unauthenticated",
    )
    world.refused(
        lambda: world.post("suspendee", "/v1/chain/rpc", _rpc("eth_chainId")),
        403,
        "member_suspended",
    )


# -- evidence: the signed records behind a member's key and a dataset's content hash ----------


def test_evidence_is_the_signed_records_that_set_it(world: World) -> None:
    coop = world.keys["coop"].address
    members = world.wire.get(world.keys["plain"], f"/v1/log/evidence/members/{coop}")["data"]
    assert [(r["action"], r["actor"]) for r in members] == [("onboard", world.operator.address)]
    d = world.dataset["id"]
    datasets = world.wire.get(world.keys["plain"], f"/v1/log/evidence/datasets/{d}")["data"]
    assert [(r["action"], r["seq"]) for r in datasets] == [("register", world.dataset["log_seq"])]
    assert world.wire.get(world.keys["plain"], f"/v1/log/evidence/datasets/{NOWHERE}") == {
        "data": [],
        "count": 0,
        "next_after": None,
    }


@pytest.mark.parametrize(
    ("target", "status", "code"),
    [
        ("/v1/log/evidence/members/0x1234", 422, "bad_address"),
        ("/v1/log/evidence/members/not-an-address", 422, "bad_address"),
        ("/v1/log/evidence/datasets/abc", 422, "invalid_request"),
        ("/v1/log/evidence/datasets/-1", 422, "invalid_request"),
    ],
)
def test_evidence_of_malformed_ids_is_refused(
    world: World, target: str, status: int, code: str
) -> None:
    world.refused(lambda: world.wire.send(world.keys["coop"], "GET", target), status, code)


def test_evidence_is_for_members_only(world: World) -> None:
    target = f"/v1/log/evidence/datasets/{world.dataset['id']}"
    keys = stranger()
    world.refused(lambda: world.wire.send(keys, "GET", target), 403, "not_a_member")
    world.refused(lambda: world.wire.send(None, "GET", target), 401, "unauthenticated")
    world.refused(
        lambda: world.wire.send(world.keys["suspendee"], "GET", target), 403, "member_suspended"
    )

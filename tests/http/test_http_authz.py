"""The authorization matrix: every route times every role, against a running broker.

The expected answers live in one table, ``tests.support.authz_matrix.MATRIX`` (which also renders
``docs/authorization.md``); this module holds the served API to it:

- the routes come from the broker's own ``/openapi.json``, so a new route without a matrix
  row (or without a probe here) fails ``test_every_served_route_has_a_row_and_a_probe``;
- every cell is probed over HTTP with a request that is valid for that role -- a correct
  body, signed actions signed by the caller's own key, ids that exist -- so a refusal can only
  come from the caller's role or standing;
- an allowed cell must answer its exact success status: every allowed probe is a real action
  (the owner really approves, the grantee really fetches, the operator really anchors), so no
  harmless stand-in is needed; a refused cell must answer its status and error ``code``;
- a refused write must be refused before any effect: the chain head, the flow log, every
  database table and the blob store are snapshotted around it and must not change -- except a
  member's fetch without a grant, which is logged as refused (``LOGGED_REFUSALS``).

Within a route, refused roles are probed before allowed ones, so a write that succeeds (the
owner's approval) cannot change what the refused probes see; the objects the writes act on are
set up once per module so route order does not matter either.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ledger.client.member import MemberKeys, prepare_upload
from ledger.crypto import generate_keypair
from ledger.keys import load_account
from ledger.protocol.wire import GrantPublic
from ledger.types import kind_code
from tests.support.authz_matrix import MATRIX, ROLES, Role, Route, in_readme, markdown
from tests.support.http_kit import PASSPHRASE, RunningBroker, new_member, running_broker
from tests.support.http_probe import (
    Wire,
    grant_body,
    one_logged_refusal,
    owner_grant_body,
    revoke_body,
    signed,
    snapshot,
    stranger,
)

ROOT = Path(__file__).resolve().parents[2]
PURPOSE = "Planning of rooftop solar installations in the harbour ward"
#: Refusals that are logged by design (docs/protocol.md §11.12): a member's signed fetch without
#: a grant, or by a suspended member, is one refused-fetch record (and its nonce spent).
LOGGED_REFUSALS: frozenset[tuple[tuple[str, str], str]] = frozenset(
    {
        (("POST", "/v1/datasets/{dataset_id}/fetch"), "no_grant"),
        (("POST", "/v1/datasets/{dataset_id}/fetch"), "member_suspended"),
    }
)
MEMBER_ROLES: dict[str, tuple[str, str]] = {
    "owner": ("department", "District Planning Office"),
    "department": ("department", "Port Authority"),
    "grantee": ("enterprise", "Harbour Solar Cooperative"),
    "enterprise": ("enterprise", "Plain Analytics Ltd"),
    "regulator": ("regulator", "Data Protection Authority"),
    "suspended": ("enterprise", "Suspended Surveys"),
    "victim": ("enterprise", "To Be Suspended Ltd"),
    "paroled": ("enterprise", "To Be Reinstated Ltd"),
}


@dataclass(frozen=True)
class Call:
    """One probe request: where, and the exact body."""

    method: str
    target: str
    json_body: Any = None
    body: bytes = b""
    content_type: str | None = None
    body_sha256: str | None = None


@dataclass
class Ctx:
    """The broker and the objects the probes aim at."""

    broker: RunningBroker
    wire: Wire
    keys: dict[str, MemberKeys]
    dataset: dict[str, Any]  # the owner's dataset D; the grantee holds a grant on it
    second: dict[str, Any]  # the owner's dataset D2, for approve, deny and revoke
    disputed: dict[str, Any]  # the owner's dataset D3, reassigned by the operator's probe
    grantee_request: dict[str, Any]  # the grantee's approved request on D
    to_approve: dict[str, Any]  # the enterprise's pending request on D2
    to_deny: dict[str, Any]  # the grantee's pending request on D2
    to_cosign: dict[str, Any]  # the enterprise's request on SENSITIVE S, awaiting approval
    fetch_nonce: int  # the grantee's fetch of D that has no receipt yet
    work: Path
    issue: dict[str, Any] = field(default_factory=dict)  # the grantee's open issue about D
    next_version: int = 0  # the owner's next version of D, where the grantee's grant carries
    grantee_grant: dict[str, Any] = field(default_factory=dict)  # the grantee's grant on D

    def signer(self, role: Role) -> MemberKeys:
        """The key that signs the role's actions (a stranger's for ``unsigned``)."""
        return self.keys[role]

    def address(self, name: str) -> str:
        return self.keys[name].address

    def chain_nonce(self, role: Role, contract: str) -> int:
        if role in ("broker", "unknown", "unsigned"):
            return 0
        nonces = self.wire.get(self.keys["operator"], f"/v1/members/{self.address(role)}/nonces")
        return int(nonces[contract])

    def send(self, role: Role, call: Call) -> Any:
        keys = None if role == "unsigned" else self.keys[role]
        return self.wire.send(
            keys,
            call.method,
            call.target,
            body=call.body,
            json_body=call.json_body,
            content_type=call.content_type,
            body_sha256=call.body_sha256,
        )


def _request(ctx: Ctx, who: str, dataset_id: int, *, uses: int = 20) -> dict[str, Any]:
    keys = ctx.keys[who]
    message = {
        "requester": keys.address,
        "datasetId": dataset_id,
        "purpose": PURPOSE,
        "days": 30,
        "maxUses": uses,
    }
    response = ctx.wire.send(
        keys, "POST", "/v1/requests", json_body=signed(keys, "request", message, ctx.wire.domains)
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _approve(ctx: Ctx, request_id: int, *, owner: str = "owner", status: str = "granted") -> None:
    body = owner_grant_body(ctx.wire, ctx.keys[owner], request_id)
    response = ctx.wire.send(
        ctx.keys[owner], "POST", f"/v1/requests/{request_id}/approve", json_body=body
    )
    assert response.status_code == 201, response.text
    assert response.json()["status"] == status, response.text


def _upload_body(ctx: Ctx, role: Role) -> dict[str, Any]:
    """A fresh registration signed by the role's own key."""
    keys = ctx.signer(role)
    source = ctx.work / f"{role}-{secrets.token_hex(4)}.csv"
    source.write_text(f"who,token\n{role},{secrets.token_hex(16)}\n")
    out = ctx.work / f"{source.stem}-enc"
    out.mkdir()
    prepared = prepare_upload(
        keys,
        source,
        workdir=out,
        title=f"Probe upload by {role}",
        domains=ctx.wire.domains,
        chain_nonce=ctx.chain_nonce(role, "data_registry"),
    )
    return {
        "signed": prepared.signed.to_json(),
        "metadata": prepared.metadata,
        "owner_wrapped_key": "0x" + prepared.owner_wrapped_key.hex(),
    }


@pytest.fixture(scope="module")
def ctx(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctx]:
    root = tmp_path_factory.mktemp("authz")
    home = root / "home"
    with running_broker(home, extra_env={"DRL_ANCHOR_EVERY_RECORDS": "1000000"}) as broker:
        wire = Wire(broker.url)
        keys: dict[str, MemberKeys] = {}
        for handle, (kind, name) in MEMBER_ROLES.items():
            new_member(broker, handle, kind, name)
            with broker.client(handle) as client:
                assert client.keys is not None
                keys[handle] = client.keys
        with broker.client("operator") as op:
            assert op.keys is not None
            keys["operator"] = op.keys
        # The broker's own key: it relays and signs checkpoints, and has no standing at the API.
        broker_key = load_account(home / "broker" / "broker.key.json", PASSPHRASE)
        assert broker_key.address != keys["operator"].address
        keys["broker"] = MemberKeys(account=broker_key, hpke=generate_keypair()[0])
        keys["unknown"] = keys["unsigned"] = stranger()
        work = root / "work"
        work.mkdir()
        with broker.client("owner") as owner:
            sources = []
            for name, rows in (
                ("harbour", "harbour,412"),
                ("quay", "quay,97"),
                ("pier", "pier,31"),
            ):
                source = work / f"{name}.csv"
                source.write_text(f"ward,roofs\n{rows}\n")
                registered = owner.register(source, title=f"{name.title()} rooftops")
                sources.append(registered.model_dump(mode="json"))  # raw JSON, as the probes send
        dataset, second, disputed = sources
        # SENSITIVE data of the other department (whose grant nonce no allowed probe moves: an
        # owner's Grant waiting for the co-signature holds the owner's next AccessLedger nonce).
        source = work / "ferry.csv"
        source.write_text("ward,roofs\nferry,8\n")
        with broker.client("department") as department:
            sensitive = department.register(
                source, title="Ferry rooftops", classification="sensitive"
            ).model_dump(mode="json")
        ctx = Ctx(broker, wire, keys, dataset, second, disputed, {}, {}, {}, {}, 0, work)
        ctx.grantee_request = _request(ctx, "grantee", dataset["id"])
        _approve(ctx, ctx.grantee_request["id"])
        with broker.client("grantee") as grantee:
            grantee.fetch(dataset["id"], work / "delivered.csv")  # a delivery: it may rate
            ctx.issue = grantee.report_issue(
                dataset["id"], problem="The roofs column counts buildings, not roofs"
            ).model_dump(mode="json")  # the owner's answer probe answers it
            with grantee.open_fetch(dataset["id"]) as (fetch, response):  # may sign a receipt
                response.read()
                ctx.fetch_nonce = int(fetch.message["nonce"])
        with broker.client("owner") as owner:
            source = work / "harbour-v2.csv"
            source.write_text("ward,roofs\nharbour,415\n")
            ctx.next_version = owner.register(
                source, title="Harbour rooftops", previous_version=dataset["id"]
            ).id
            (grant,) = [
                g for g in owner.grants(dataset["id"]) if g.grantee == keys["grantee"].address
            ]
            ctx.grantee_grant = grant.model_dump(mode="json")
        _approve(ctx, _request(ctx, "suspended", dataset["id"])["id"])
        ctx.to_cosign = _request(ctx, "enterprise", sensitive["id"])
        _approve(ctx, ctx.to_cosign["id"], owner="department", status="awaiting_approval")
        ctx.to_cosign = ctx.wire.get(keys["operator"], f"/v1/requests/{ctx.to_cosign['id']}")
        with broker.client("operator") as op:
            op.suspend(keys["suspended"].address)
            op.suspend(keys["paroled"].address)
        _approve(ctx, _request(ctx, "department", second["id"])["id"])  # revoked by the probe
        ctx.to_approve = _request(ctx, "enterprise", second["id"])
        ctx.to_deny = _request(ctx, "grantee", second["id"])
        try:
            yield ctx
        finally:
            wire.close()


# -- one probe per route: a request valid for the calling role --------------------------------

Probe = Callable[[Ctx, Role], Call]


def _get(target: Callable[[Ctx], str]) -> Probe:
    return lambda ctx, role: Call("GET", target(ctx))


def _post(target: Callable[[Ctx], str], body: Callable[[Ctx, Role], Any] | None = None) -> Probe:
    return lambda ctx, role: Call("POST", target(ctx), None if body is None else body(ctx, role))


def _onboard(ctx: Ctx, role: Role) -> Any:
    return signed(
        ctx.signer(role),
        "onboard",
        {
            "member": stranger().address,
            "kind": kind_code("enterprise"),
            "name": f"Probe Co of {role}",
            "keySuite": 1,
            "encryptionKey": generate_keypair()[1].to_bytes(),
        },
        ctx.wire.domains,
    )


def _fetch(ctx: Ctx, role: Role) -> Any:
    keys = ctx.signer(role)
    message = {"grantee": keys.address, "datasetId": ctx.dataset["id"]}
    return signed(keys, "fetch", message, ctx.wire.domains)


def _access_request(ctx: Ctx, role: Role) -> Any:
    keys = ctx.signer(role)
    message = {
        "requester": keys.address,
        "datasetId": ctx.dataset["id"],
        "purpose": PURPOSE,
        "days": 30,
        "maxUses": 1,
    }
    return signed(keys, "request", message, ctx.wire.domains)


def _approve_body(ctx: Ctx, role: Role) -> Any:
    if role == "owner":
        return owner_grant_body(ctx.wire, ctx.keys["owner"], int(ctx.to_approve["id"]))
    return grant_body(
        ctx.signer(role),
        ctx.wire.domains,
        request=ctx.to_approve,
        chain_nonce=ctx.chain_nonce(role, "access_ledger"),
    )


def _deny_body(ctx: Ctx, role: Role) -> Any:
    keys = ctx.signer(role)
    message = {"owner": keys.address, "requestId": ctx.to_deny["id"], "reason": "not now"}
    return signed(keys, "deny", message, ctx.wire.domains)


def _revoke_body(ctx: Ctx, role: Role) -> Any:
    return revoke_body(
        ctx.signer(role),
        ctx.wire.domains,
        dataset_id=ctx.second["id"],
        grantee=ctx.address("department"),
        chain_nonce=ctx.chain_nonce(role, "access_ledger"),
    )


def _carry_body(ctx: Ctx, role: Role) -> Any:
    if role == "owner":
        with ctx.broker.client("owner") as owner:
            grant = GrantPublic.model_validate(ctx.grantee_grant)
            return owner.carry_body(grant, ctx.next_version).model_dump(mode="json")
    request = dict(ctx.grantee_request) | {"dataset_id": ctx.next_version}
    return grant_body(
        ctx.signer(role),
        ctx.wire.domains,
        request=request,
        chain_nonce=ctx.chain_nonce(role, "access_ledger"),
    )


def _receipt(ctx: Ctx, role: Role) -> Any:
    keys = ctx.signer(role)
    message = {
        "consumer": keys.address,
        "datasetId": ctx.dataset["id"],
        "contentHash": ctx.dataset["content_hash"],
        "grantGeneration": 1,
        "fetchNonce": ctx.fetch_nonce,
    }
    return signed(keys, "receipt", message, ctx.wire.domains)


def _rating(ctx: Ctx, role: Role) -> Any:
    keys = ctx.signer(role)
    message = {"rater": keys.address, "datasetId": ctx.dataset["id"], "score": 4, "comment": "ok"}
    return signed(keys, "rate", message, ctx.wire.domains)


def _issue(ctx: Ctx, role: Role) -> Any:
    keys = ctx.signer(role)
    message = {
        "reporter": keys.address,
        "datasetId": ctx.dataset["id"],
        "fields": "roofs",
        "rows": "1",
        "problem": f"Probe issue filed by {role}",
    }
    return signed(keys, "issue", message, ctx.wire.domains)


def _answer(ctx: Ctx, role: Role) -> Any:
    keys = ctx.signer(role)
    message = {
        "owner": keys.address,
        "issueId": ctx.issue["id"],
        "verdict": "acknowledged",
        "fixedIn": 0,
        "reason": "",
    }
    return signed(keys, "answer", message, ctx.wire.domains)


def _rotate_key(ctx: Ctx, role: Role) -> Call:
    """The role's own key rotated to its current one: allowed or not, nothing else changes."""
    keys = ctx.signer(role)
    message = {
        "member": keys.address,
        "keySuite": keys.hpke.suite.id,
        "encryptionKey": keys.public_key.to_bytes(),
    }
    return Call(
        "POST",
        f"/v1/members/{keys.address}/key",
        signed(keys, "rotate_key", message, ctx.wire.domains),
    )


def _reassign(ctx: Ctx, role: Role) -> Any:
    reason = "The Port Authority showed the survey it commissioned in 2019."
    message = {
        "datasetId": ctx.disputed["id"],
        "to": ctx.address("department"),
        "reasonHash": hashlib.sha256(reason.encode()).digest(),
    }
    return {**signed(ctx.signer(role), "reassign", message, ctx.wire.domains), "reason": reason}


def _cosign(ctx: Ctx, role: Role) -> Any:
    """A GrantApproval for the exact terms the owner signed, for the generation it creates."""
    grant = ctx.to_cosign["pending_grant"]["message"]
    terms = {
        k: grant[k]
        for k in ("datasetId", "grantee", "purposeHash", "expiresAt", "maxUses", "termsHash")
    }
    return signed(ctx.signer(role), "approval", {**terms, "generation": 1}, ctx.wire.domains)


def _mine(ctx: Ctx) -> str:
    """The owner's registration looked up by its signature (as the SDK confirms an action)."""
    record = ctx.wire.get(ctx.keys["operator"], f"/v1/log/records/{ctx.dataset['log_seq']}")
    signature = json.loads(record["leaf"])["signed"]["signature"]
    return f"/v1/log/records/mine?action=register&signature={signature}"


def _put_upload(ctx: Ctx, role: Role) -> Call:
    """The owner's pending upload, made just now: a newer registration with the owner's nonce
    (the POST probe's) replaces the one before it (one intent per owner and nonce)."""
    upload = _upload_body(ctx, "owner")
    response = ctx.wire.send(ctx.signer("owner"), "POST", "/v1/datasets/uploads", json_body=upload)
    assert response.status_code == 201, response.text
    digest = str(upload["metadata"]["ciphertext_sha256"])[2:]
    ciphertext = next(p for p in ctx.work.glob("owner-*-enc/*.drl") if _sha256(p) == digest)
    return Call(
        "PUT",
        str(response.json()["upload_url"]),
        body=ciphertext.read_bytes(),
        content_type="application/octet-stream",
        body_sha256=digest,
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _owner(ctx: Ctx) -> str:
    return ctx.address("owner")


def _d(ctx: Ctx) -> int:
    return int(ctx.dataset["id"])


PROBES: dict[Route, Probe] = {
    ("GET", "/v1/health"): _get(lambda c: "/v1/health"),
    ("GET", "/v1/config"): _get(lambda c: "/v1/config"),
    ("POST", "/v1/members"): _post(lambda c: "/v1/members", _onboard),
    ("GET", "/v1/members"): _get(lambda c: "/v1/members"),
    ("GET", "/v1/members/{address}"): _get(lambda c: f"/v1/members/{_owner(c)}"),
    ("POST", "/v1/members/{address}/suspend"): _post(
        lambda c: f"/v1/members/{c.address('victim')}/suspend",
        lambda c, r: signed(
            c.signer(r), "suspend", {"member": c.address("victim")}, c.wire.domains
        ),
    ),
    ("POST", "/v1/members/{address}/reinstate"): _post(
        lambda c: f"/v1/members/{c.address('paroled')}/reinstate",
        lambda c, r: signed(
            c.signer(r), "reinstate", {"member": c.address("paroled")}, c.wire.domains
        ),
    ),
    ("POST", "/v1/members/{address}/key"): _rotate_key,
    ("GET", "/v1/members/{address}/nonces"): _get(lambda c: f"/v1/members/{_owner(c)}/nonces"),
    ("GET", "/v1/members/{address}/credits"): _get(lambda c: f"/v1/members/{_owner(c)}/credits"),
    ("GET", "/v1/datasets"): _get(lambda c: "/v1/datasets"),
    ("GET", "/v1/datasets/{dataset_id}"): _get(lambda c: f"/v1/datasets/{_d(c)}"),
    ("GET", "/v1/catalog.jsonld"): _get(lambda c: "/v1/catalog.jsonld"),
    ("POST", "/v1/datasets/uploads"): _post(lambda c: "/v1/datasets/uploads", _upload_body),
    ("PUT", "/v1/datasets/uploads/{upload_id}"): _put_upload,
    ("GET", "/v1/datasets/{dataset_id}/owner-key"): _get(
        lambda c: f"/v1/datasets/{_d(c)}/owner-key"
    ),
    ("POST", "/v1/datasets/{dataset_id}/reassign"): _post(
        lambda c: f"/v1/datasets/{c.disputed['id']}/reassign", _reassign
    ),
    ("POST", "/v1/datasets/{dataset_id}/fetch"): _post(
        lambda c: f"/v1/datasets/{_d(c)}/fetch", _fetch
    ),
    ("POST", "/v1/requests"): _post(lambda c: "/v1/requests", _access_request),
    ("GET", "/v1/requests"): _get(lambda c: "/v1/requests"),
    ("GET", "/v1/requests/{request_id}"): _get(lambda c: f"/v1/requests/{c.grantee_request['id']}"),
    ("POST", "/v1/requests/{request_id}/approve"): _post(
        lambda c: f"/v1/requests/{c.to_approve['id']}/approve", _approve_body
    ),
    ("POST", "/v1/requests/{request_id}/cosign"): _post(
        lambda c: f"/v1/requests/{c.to_cosign['id']}/cosign", _cosign
    ),
    ("POST", "/v1/requests/{request_id}/deny"): _post(
        lambda c: f"/v1/requests/{c.to_deny['id']}/deny", _deny_body
    ),
    ("GET", "/v1/grants"): _get(lambda c: "/v1/grants"),
    ("POST", "/v1/grants/revoke"): _post(lambda c: "/v1/grants/revoke", _revoke_body),
    ("POST", "/v1/grants/{grant_id}/carry"): _post(
        lambda c: f"/v1/grants/{c.grantee_grant['id']}/carry", _carry_body
    ),
    ("POST", "/v1/receipts"): _post(lambda c: "/v1/receipts", _receipt),
    ("POST", "/v1/ratings"): _post(lambda c: "/v1/ratings", _rating),
    ("POST", "/v1/issues"): _post(lambda c: "/v1/issues", _issue),
    ("GET", "/v1/issues"): _get(lambda c: "/v1/issues"),
    ("POST", "/v1/issues/{issue_id}/answer"): _post(
        lambda c: f"/v1/issues/{c.issue['id']}/answer", _answer
    ),
    ("GET", "/v1/datasets/{dataset_id}/quality"): _get(lambda c: f"/v1/datasets/{_d(c)}/quality"),
    ("GET", "/v1/trace/datasets/{dataset_id}"): _get(lambda c: f"/v1/trace/datasets/{_d(c)}"),
    ("GET", "/v1/trace/members/{address}"): _get(lambda c: f"/v1/trace/members/{_owner(c)}"),
    ("GET", "/v1/verify"): _get(lambda c: "/v1/verify"),
    ("GET", "/v1/log/head"): _get(lambda c: "/v1/log/head"),
    ("GET", "/v1/log/checkpoint"): _get(lambda c: "/v1/log/checkpoint"),
    ("GET", "/v1/log/records"): _get(lambda c: "/v1/log/records"),
    ("GET", "/v1/log/evidence/members/{address}"): _get(
        lambda c: f"/v1/log/evidence/members/{c.address('grantee')}"
    ),
    ("GET", "/v1/log/evidence/datasets/{dataset_id}"): _get(
        lambda c: f"/v1/log/evidence/datasets/{_d(c)}"
    ),
    ("GET", "/v1/log/records/mine"): _get(_mine),
    ("GET", "/v1/log/records/{seq}"): _get(lambda c: f"/v1/log/records/{c.dataset['log_seq']}"),
    ("GET", "/v1/log/proofs/inclusion"): _get(lambda c: "/v1/log/proofs/inclusion?seq=0"),
    ("GET", "/v1/log/proofs/consistency"): _get(lambda c: "/v1/log/proofs/consistency?old_size=1"),
    ("POST", "/v1/log/anchor"): _post(lambda c: "/v1/log/anchor"),
    ("POST", "/v1/chain/rpc"): _post(
        lambda c: "/v1/chain/rpc",
        lambda c, r: {"jsonrpc": "2.0", "id": 1, "method": "eth_blockNumber", "params": []},
    ),
}


# -- the tests --------------------------------------------------------------------------------


def test_every_served_route_has_a_row_and_a_probe(ctx: Ctx) -> None:
    spec = ctx.wire.http.get("/openapi.json").json()
    served = {
        (method.upper(), path)
        for path, operations in spec["paths"].items()
        for method in operations
    }
    assert served - set(MATRIX) == set(), "routes without a row in tests/support/authz_matrix.py"
    assert set(MATRIX) - served == set(), "matrix rows for routes the broker does not serve"
    assert set(PROBES) == set(MATRIX), "matrix rows without a probe here"
    for route, cells in MATRIX.items():
        assert set(cells) == set(ROLES), f"{route} does not cover every role"


@pytest.mark.parametrize("route", list(MATRIX), ids=lambda r: f"{r[0]} {r[1]}")
def test_each_role_gets_what_the_matrix_says(ctx: Ctx, route: Route) -> None:
    cells = MATRIX[route]
    method = route[0]
    wrong: list[str] = []
    # Refusals first: an allowed write (an approval, a suspension) must not change their ground.
    for role in sorted(ROLES, key=lambda r: cells[r].allowed):
        cell = cells[role]
        call = PROBES[route](ctx, role)
        audit = method != "GET" and not cell.allowed
        before = snapshot(ctx.wire, ctx.keys["operator"], ctx.broker.home) if audit else None
        response = ctx.send(role, call)
        code = None
        if response.status_code >= 400:
            code = response.json().get("code")
        expected = (cell.status, cell.code)
        if (response.status_code, code) != expected:
            wrong.append(f"{role}: expected {expected}, got {response.status_code} {response.text}")
        if before is not None:
            after = snapshot(ctx.wire, ctx.keys["operator"], ctx.broker.home)
            changes = before.changes(after)
            if changes and not (
                (route, code) in LOGGED_REFUSALS and one_logged_refusal(before, after)
            ):
                wrong.append(f"{role}: refused, yet wrote {changes}")
    assert not wrong, "\n".join(wrong)


def test_the_published_table_is_the_tested_one() -> None:
    page = ROOT / "docs" / "authorization.md"
    assert page.read_text(encoding="utf-8") == markdown(), (
        "docs/authorization.md is stale: run .venv/bin/python scripts/authz_table.py"
    )
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert readme == in_readme(readme), (
        "the README's authorization table is stale: run .venv/bin/python scripts/authz_table.py"
    )

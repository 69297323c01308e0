"""Schemathesis against the broker's served OpenAPI: no 5xx, every answer as documented.

One real broker (`drl serve` in a subprocess) with an owner, two consumers, a regulator, a
dataset, a granted and a pending request and an open upload intent, so generated ids can hit
real rows. Schemathesis loads ``/openapi.json`` from it and generates cases for every operation
(its examples, coverage and fuzzing phases, positive and negative). Two hooks steer part of the
cases deeper than validation:

- path parameters are swapped, half of the time, for ids and addresses that exist;
- a signed action in a body is replaced, two times in three, by a genuinely signed one (a member's
  key, the route's action type, well-typed but fuzzed field values), so cases reach the services,
  the database and the chain instead of stopping at the signature check.

Each request is signed (``protocol.http``) over the exact bytes sent: by the signed action's actor
when the body carries one of ours, otherwise by the operator or a member in turn. Every response
must pass ``not_a_server_error``, ``response_schema_conformance`` and ``status_code_conformance``.

The module fixture's teardown checks the volume: every operation was exercised and at least
``MIN_REQUESTS`` requests were sent (about 2,300 by default, in about half a minute). It prints the
count and the statuses seen (``-s`` shows them).

``DRL_FUZZ_EXAMPLES`` (fuzzing examples per operation, default 8) and ``DRL_FUZZ_RANDOM=1``
(a fresh random seed instead of the reproducible one) widen the search; ``DRL_FUZZ_DEBUG=1``
prints every response.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
import requests
import schemathesis
from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from api.routes.chain import READ_ONLY
from ledger.client.member import prepare_upload
from ledger.protocol import http as auth
from ledger.protocol.actions import ACTIONS, Domains, sign_action
from ledger.protocol.eip712 import struct_fields
from tests.support.http_kit import RunningBroker, new_member, running_broker

EXAMPLES = int(os.environ.get("DRL_FUZZ_EXAMPLES", "8"))
MIN_REQUESTS = 1000
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]

#: The signed action each write route expects, and who usually signs it.
ROUTE_ACTION = {
    "POST /v1/members": ("onboard", "operator"),
    "POST /v1/members/{address}/suspend": ("suspend", "operator"),
    "POST /v1/members/{address}/reinstate": ("reinstate", "operator"),
    "POST /v1/members/{address}/key": ("rotate_key", "fz-user"),
    "POST /v1/datasets/{dataset_id}/reassign": ("reassign", "operator"),
    "POST /v1/datasets/uploads": ("register", "fz-owner"),
    "POST /v1/datasets/{dataset_id}/fetch": ("fetch", "fz-user"),
    "POST /v1/requests": ("request", "fz-user"),
    "POST /v1/requests/{request_id}/approve": ("grant", "fz-owner"),
    "POST /v1/requests/{request_id}/cosign": ("approval", "operator"),
    "POST /v1/requests/{request_id}/deny": ("deny", "fz-owner"),
    "POST /v1/grants/revoke": ("revoke", "fz-owner"),
    "POST /v1/grants/{grant_id}/carry": ("grant", "fz-owner"),
    "POST /v1/receipts": ("receipt", "fz-user"),
    "POST /v1/ratings": ("rate", "fz-user"),
    "POST /v1/issues": ("issue", "fz-user"),
    "POST /v1/issues/{issue_id}/answer": ("answer", "fz-owner"),
}
SIGNERS = ("operator", "fz-owner", "fz-user", "fz-reg")


@dataclass
class Fuzz:
    """The broker under test, the ids that exist, the identities, and what was sent."""

    broker: RunningBroker
    session: requests.Session
    known: dict[str, list[Any]]
    accounts: dict[str, LocalAccount]  # by handle
    domains: Domains
    sent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    unauthenticated: Counter[str] = field(default_factory=Counter)


class SignEveryRequest(requests.auth.AuthBase):
    """Signs each prepared request (final URL and body bytes).

    As the actor of the body's signed action when that is one of ours, otherwise as the next
    identity in turn.
    """

    def __init__(self, accounts: dict[str, LocalAccount], chain_id: int, deployment: str) -> None:
        self._accounts = accounts
        self._next = itertools.cycle(list(accounts.values()))
        self._lock = threading.Lock()
        self._chain_id = chain_id
        self._deployment = deployment

    def _signer(self, body: bytes) -> LocalAccount:
        try:
            actor = json.loads(body)["signed"]["actor"]
            return self._accounts[to_checksum_address(actor)]
        except Exception:  # not JSON, no signed action, not an address, not ours
            with self._lock:
                return next(self._next)

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        if not isinstance(body, bytes):  # a stream: never generated for this API
            raise TypeError(f"cannot sign a {type(body).__name__} body")
        request.headers.update(
            auth.sign_request(
                self._signer(body),
                method=str(request.method),
                target=request.path_url,
                body_sha256=hashlib.sha256(body).hexdigest(),
                chain_id=self._chain_id,
                deployment=self._deployment,
            )
        )
        return request


def _seed(broker: RunningBroker, work: Path) -> dict[str, list[Any]]:
    """An owner, a consumer, a regulator; a dataset granted once and requested again; a
    SENSITIVE one whose grant awaits the operator; a suspended member."""
    owner = new_member(broker, "fz-owner", "department", "Fuzz Department")
    consumer = new_member(broker, "fz-user", "enterprise", "Fuzz Enterprise")
    regulator = new_member(broker, "fz-reg", "regulator", "Fuzz Regulator")
    other = new_member(broker, "fz-other", "enterprise", "Fuzz Other")
    gone = new_member(broker, "fz-gone", "enterprise", "Fuzz Suspended")
    source = work / "rows.csv"
    source.write_text("id,value\n" + "".join(f"{i},{i * i}\n" for i in range(200)))
    secret = work / "secret.csv"
    secret.write_text("id\n7\n")
    with (
        broker.client("fz-owner") as own,
        broker.client("fz-user") as use,
        broker.client("fz-other") as oth,
    ):
        dataset = own.register(source, title="Fuzz rows")
        sensitive = own.register(secret, title="Fuzz secret", classification="sensitive")
        granted = use.request_access(dataset.id, purpose="fuzzing the broker", days=30, uses=3)
        own.approve(granted.id)
        pending = oth.request_access(dataset.id, purpose="fuzzing the broker again", days=7, uses=1)
        awaiting = oth.request_access(
            sensitive.id, purpose="fuzzing the co-signature", days=7, uses=1
        )
        assert own.approve(awaiting.id).status == "awaiting_approval"
        # An upload intent that stays open, so PUT /datasets/uploads/{id} finds a row.
        second = work / "more.csv"
        second.write_text("id\n1\n2\n")
        prepared = prepare_upload(
            own.require_keys(),
            second,
            workdir=work,
            title="Fuzz intent",
            domains=own.domains,
            chain_nonce=own.nonces().data_registry,
        )
        intent = own.begin_upload(prepared)
        head = own.log_head()
        grant_ids = [g.id for g in own.grants()]
    with broker.client("operator") as op:
        operator = op.require_keys().address
        op.suspend(gone.address)
    return {
        "dataset_id": [dataset.id, sensitive.id],
        "request_id": [granted.id, pending.id, awaiting.id],
        "address": [
            operator,
            owner.address,
            consumer.address,
            regulator.address,
            other.address,
            gone.address,
        ],
        "upload_id": [intent.upload_id],
        "grant_id": grant_ids,
        "content_hash": [dataset.content_hash, sensitive.content_hash],
        "seq": list(range(head.size)),
    }


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    base = tmp_path_factory.mktemp("openapi-fuzz")
    with running_broker(base / "home") as broker, tempfile.TemporaryDirectory() as work:
        known = _seed(broker, Path(work))
        accounts: dict[str, LocalAccount] = {}
        for handle in SIGNERS:
            with broker.client(handle) as client:
                accounts[handle] = client.require_keys().account
                domains = client.domains
        session = requests.Session()
        session.auth = SignEveryRequest(
            {a.address: a for a in accounts.values()}, domains.chain_id, domains.flow_log
        )
        state = Fuzz(broker, session, known, accounts, domains)
        try:
            yield state
            if state.sent:  # the operations ran in this process (also under pytest-xdist)
                _check_volume(state)
        finally:
            session.close()


def _check_volume(fuzz: Fuzz) -> None:
    """Every operation got requests, and at least MIN_REQUESTS were sent in total."""
    spec = requests.get(f"{fuzz.broker.url}/openapi.json", timeout=10).json()
    operations = {f"{m.upper()} {p}" for p, ops in spec["paths"].items() for m in ops}
    summary = json.dumps(
        {
            "sent": sum(fuzz.sent.values()),
            "statuses": dict(sorted(fuzz.statuses.items())),
            "unauthenticated": dict(fuzz.unauthenticated),
        }
    )
    print(f"\nopenapi fuzz: {summary}")
    assert not operations - set(fuzz.sent), f"never exercised: {operations - set(fuzz.sent)}"
    assert sum(fuzz.sent.values()) >= MIN_REQUESTS, summary


# -- genuinely signed actions with fuzzed, well-typed values --------------------------------


def _uint(bits: int, known: list[int]) -> st.SearchStrategy[int]:
    edges = [0, 1, 2**31, 2**63 - 1, 2**63, 2**bits - 1]
    return st.one_of(
        st.sampled_from(known or [1]),
        st.sampled_from([e for e in edges if e < 2**bits]),
        st.integers(0, 2**bits - 1),
    )


def _value(kind: str, name: str, signer: str, fuzz: Fuzz) -> st.SearchStrategy[Any]:
    known = fuzz.known
    if name == "deadline":
        soon = st.builds(lambda: int(time.time()) + 600)
        return st.one_of(soon, soon, soon, _uint(256, []))
    if name == "nonce":
        return st.one_of(st.integers(0, 3), _uint(256, []))
    if kind.endswith("[]"):
        return st.lists(_value(kind[:-2], name, signer, fuzz), max_size=3)
    if kind.startswith("uint"):
        ids = known["request_id"] if name == "requestId" else known["dataset_id"]
        return _uint(int(kind[4:]), ids)
    if kind == "address":
        if name in ("requester", "owner", "grantee", "consumer", "rater", "reporter"):
            return st.one_of(st.just(signer), st.just(signer), st.sampled_from(known["address"]))
        random = st.binary(min_size=20, max_size=20).map(lambda b: to_checksum_address(b))
        return st.one_of(st.sampled_from(known["address"]), random)
    if kind == "bytes32":
        hashes = [bytes.fromhex(h[2:]) for h in known["content_hash"]]
        return st.one_of(st.sampled_from(hashes), st.binary(min_size=32, max_size=32))
    if kind == "bytes":
        return st.binary(max_size=1200)
    if kind == "string":
        words = ["department", "enterprise", "regulator", "fuzzing the broker with care"]
        return st.one_of(st.sampled_from(words), st.text(max_size=40))
    raise AssertionError(f"no strategy for {kind}")


def _signed_action(fuzz: Fuzz, action: str, usual: str) -> st.SearchStrategy[dict[str, Any]]:
    primary = ACTIONS[action].primary
    fields = struct_fields(primary)

    def for_signer(account: LocalAccount) -> st.SearchStrategy[dict[str, Any]]:
        message = st.fixed_dictionaries(
            {f["name"]: _value(f["type"], f["name"], account.address, fuzz) for f in fields}
        )
        return message.map(lambda m: sign_action(account, action, m, fuzz.domains).to_json())  # type: ignore[arg-type]

    signers = [fuzz.accounts[usual]] * 3 + [fuzz.accounts[h] for h in SIGNERS if h != usual]
    return st.sampled_from(signers).flatmap(for_signer)


def _rpc_params(fuzz: Fuzz) -> st.SearchStrategy[list[Any]]:
    """Parameters for a relayed read-only call: real ones, plausible ones and junk."""
    addresses = [a.lower() for a in fuzz.known["address"]]
    tags = st.sampled_from(["latest", "earliest", "pending", "safe", "finalized", "0x0", "0x1"])
    scalar = st.one_of(
        tags,
        st.sampled_from(addresses),
        st.integers(-(2**70), 2**70),
        st.booleans(),
        st.none(),
        st.text(max_size=20),
        st.binary(max_size=40).map(lambda b: "0x" + b.hex()),
    )
    call = st.fixed_dictionaries(
        {},
        optional={
            "to": st.one_of(st.sampled_from(addresses), scalar),
            "from": scalar,
            "data": st.binary(max_size=68).map(lambda b: "0x" + b.hex()),
            "fromBlock": st.one_of(tags, scalar),
            "toBlock": st.one_of(tags, scalar),
            "address": st.one_of(st.sampled_from(addresses), scalar),
            "topics": st.lists(st.one_of(scalar, st.lists(scalar, max_size=2)), max_size=4),
            "blockHash": scalar,
        },
    )
    value = st.one_of(scalar, call, st.lists(scalar, max_size=3))
    return st.lists(value, max_size=4)


@pytest.fixture(scope="module")
def broker_openapi(fuzz: Fuzz) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{fuzz.broker.url}/openapi.json")

    @schema.hook
    def flatmap_path_parameters(
        context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
    ) -> st.SearchStrategy[dict[str, Any] | None]:
        if not path_parameters:
            return st.just(path_parameters)
        real = {k: st.sampled_from(v) for k, v in fuzz.known.items() if k in path_parameters}
        if not real:
            return st.just(path_parameters)
        return st.one_of(
            st.just(path_parameters), st.fixed_dictionaries(real).map(path_parameters.__or__)
        )

    @schema.hook
    def flatmap_body(context: schemathesis.HookContext, body: Any) -> st.SearchStrategy[Any]:
        label = context.operation.label if context.operation else None
        if label == "POST /v1/chain/rpc" and isinstance(body, dict) and "method" in body:
            relayed = st.fixed_dictionaries(
                {
                    "jsonrpc": st.just("2.0"),
                    "id": st.integers(0, 2**31),
                    "method": st.sampled_from(sorted(READ_ONLY)),
                    "params": _rpc_params(fuzz),
                }
            )
            return st.one_of(st.just(body), relayed, relayed)
        route = ROUTE_ACTION.get(label) if label else None
        if route is None or not isinstance(body, dict) or "signed" not in body:
            return st.just(body)
        signed = _signed_action(fuzz, *route).map(lambda s: {**body, "signed": s})
        return st.one_of(st.just(body), signed, signed)

    return schema


schema = schemathesis.pytest.from_fixture("broker_openapi")


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32 renames subtests through ``node._nodeid``, gone in pytest 9.2.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=os.environ.get("DRL_FUZZ_RANDOM") != "1",
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_openapi_operation(case: schemathesis.Case, fuzz: Fuzz) -> None:
    response = case.call(session=fuzz.session, timeout=60)
    fuzz.sent[case.operation.label] += 1
    fuzz.statuses[response.status_code] += 1
    if os.environ.get("DRL_FUZZ_DEBUG"):
        print(case.operation.label, response.status_code, response.content[:100])
    if response.status_code == 401:
        fuzz.unauthenticated[str(response.json().get("message"))] += 1
    case.validate_response(response, checks=CHECKS)

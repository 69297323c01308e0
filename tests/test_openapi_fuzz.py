"""Schemathesis against the broker's served OpenAPI: no 5xx, every answer as documented.

One real broker (`drl serve` in a subprocess) with an owner, a consumer, a regulator, a dataset,
a granted and a pending request and an open upload intent, so generated ids can hit real rows.
Schemathesis loads ``/openapi.json`` from it and generates cases for every operation (its
examples, coverage and fuzzing phases); each request is signed (``ledger.auth``) over the exact
bytes sent, by the operator or a member in turn, so most cases get past authentication and reach
validation, the services and the chain. Every response must pass ``not_a_server_error``,
``response_schema_conformance`` and ``status_code_conformance``.

``DRL_FUZZ_EXAMPLES`` (fuzzing examples per operation, default 25) and ``DRL_FUZZ_RANDOM=1``
(a fresh random seed instead of the reproducible one) widen the search.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import tempfile
import threading
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
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from ledger import auth
from ledger.client.member import prepare_upload
from tests.http_kit import RunningBroker, new_member, running_broker

EXAMPLES = int(os.environ.get("DRL_FUZZ_EXAMPLES", "25"))
MIN_REQUESTS = 1000
CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]


class SignEveryRequest(requests.auth.AuthBase):
    """Signs each prepared request (final URL and body bytes) as the next identity in turn."""

    def __init__(self, identities: list[LocalAccount], chain_id: int) -> None:
        self._next = itertools.cycle(identities)
        self._lock = threading.Lock()
        self._chain_id = chain_id

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        if not isinstance(body, bytes):  # a stream: never generated for this API
            raise TypeError(f"cannot sign a {type(body).__name__} body")
        with self._lock:
            account = next(self._next)
        request.headers.update(
            auth.sign_request(
                account,
                method=str(request.method),
                target=request.path_url,
                body_sha256=hashlib.sha256(body).hexdigest(),
                chain_id=self._chain_id,
            )
        )
        return request


@dataclass
class Fuzz:
    """The broker under test, the ids that exist, and what was sent."""

    broker: RunningBroker
    session: requests.Session
    known: dict[str, list[Any]]
    sent: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)


def _seed(broker: RunningBroker, work: Path) -> dict[str, list[Any]]:
    """An owner, a consumer, a regulator; a dataset granted once and requested again."""
    owner = new_member(broker, "fz-owner", "department", "Fuzz Department")
    consumer = new_member(broker, "fz-user", "enterprise", "Fuzz Enterprise")
    regulator = new_member(broker, "fz-reg", "regulator", "Fuzz Regulator")
    other = new_member(broker, "fz-other", "enterprise", "Fuzz Other")
    source = work / "rows.csv"
    source.write_text("id,value\n" + "".join(f"{i},{i * i}\n" for i in range(200)))
    with (
        broker.client("fz-owner") as own,
        broker.client("fz-user") as use,
        broker.client("fz-other") as oth,
    ):
        dataset = own.register(source, title="Fuzz rows")
        granted = use.request_access(dataset["id"], purpose="fuzzing the broker", days=30, uses=3)
        own.approve(granted["id"])
        pending = oth.request_access(
            dataset["id"], purpose="fuzzing the broker again", days=7, uses=1
        )
        # An upload intent that stays open, so PUT /datasets/uploads/{id} finds a row.
        second = work / "more.csv"
        second.write_text("id\n1\n2\n")
        prepared = prepare_upload(
            own._keys(),
            second,
            workdir=work,
            title="Fuzz intent",
            domains=own.domains,
            chain_nonce=int(own.nonces()["data_registry"]),
        )
        intent = own._call(
            "POST",
            "/datasets/uploads",
            json_body={
                "signed": prepared.signed.to_json(),
                "metadata": prepared.metadata,
                "owner_wrapped_key": "0x" + prepared.owner_wrapped_key.hex(),
            },
        )
    with broker.client("operator") as op:
        operator = op._keys().address
    return {
        "dataset_id": [dataset["id"]],
        "request_id": [granted["id"], pending["id"]],
        "address": [operator, owner.address, consumer.address, regulator.address, other.address],
        "upload_id": [intent["upload_id"]],
    }


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fuzz]:
    base = tmp_path_factory.mktemp("openapi-fuzz")
    with running_broker(base / "home") as broker, tempfile.TemporaryDirectory() as work:
        known = _seed(broker, Path(work))
        with broker.client("operator") as op:
            chain_id = int(op.config()["chain_id"])
            identities = [op._keys().account]
        for handle in ("fz-owner", "fz-user", "fz-reg"):
            with broker.client(handle) as member:
                identities.append(member._keys().account)
        session = requests.Session()
        session.auth = SignEveryRequest(identities, chain_id)
        state = Fuzz(broker=broker, session=session, known=known)
        try:
            yield state
        finally:
            session.close()


@pytest.fixture(scope="module")
def broker_openapi(fuzz: Fuzz) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{fuzz.broker.url}/openapi.json")

    @schema.hook
    def flatmap_path_parameters(
        context: schemathesis.HookContext, path_parameters: dict[str, Any] | None
    ) -> st.SearchStrategy[dict[str, Any] | None]:
        # Half of the time, point at rows that exist so cases get past "not found".
        if not path_parameters:
            return st.just(path_parameters)
        real = {k: st.sampled_from(v) for k, v in fuzz.known.items() if k in path_parameters}
        if not real:
            return st.just(path_parameters)
        return st.one_of(
            st.just(path_parameters), st.fixed_dictionaries(real).map(path_parameters.__or__)
        )

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
    case.validate_response(response, checks=CHECKS)


def test_openapi_fuzz_volume(fuzz: Fuzz) -> None:
    """Every operation got requests, and at least MIN_REQUESTS were sent in total."""
    state = fuzz
    spec = requests.get(f"{state.broker.url}/openapi.json", timeout=10).json()
    operations = {f"{m.upper()} {p}" for p, ops in spec["paths"].items() for m in ops}
    summary = json.dumps(
        {"sent": sum(state.sent.values()), "statuses": dict(sorted(state.statuses.items()))}
    )
    print(summary)
    assert not operations - set(state.sent), f"never exercised: {operations - set(state.sent)}"
    assert sum(state.sent.values()) >= MIN_REQUESTS, summary

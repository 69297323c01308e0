"""Concurrent fetches never exceed a grant's uses, on SQLite and on PostgreSQL.

Fifty grantee-signed fetches of one dataset race on real threads (released together by a
barrier) against a grant of ten uses. The chain's ``recordUse`` is the referee; the index, the
flow log and ``verify`` must agree with it afterwards, whatever order the fetches' database
transactions commit in.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlmodel import select

from ledger.chain.models import TxResult
from ledger.errors import Forbidden
from ledger.protocol.actions import SignedAction
from ledger.services import exchange
from ledger.services.anchoring import Anchorer
from ledger.services.verify import verify
from ledger.store.models import Grant, LogRecord
from tests.support import kit
from tests.support.pg import fresh_schema, pg_cluster, pg_url  # noqa: F401  (fixtures)

USES = 10
FETCHES = 50
HOLD_SECONDS_PER_USE = 0.1
EXHAUSTED = "access_ledger_uses_exhausted"  # ContractRevert code of AccessLedgerUsesExhausted

Outcome = exchange.Fetched | Exception


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def race(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, object]]:
    """A dataset, a grant of ten uses, and the outcomes of fifty simultaneous fetches."""
    tmp_path = tmp_path_factory.mktemp(f"race-{request.param}")
    url = None
    if request.param == "postgresql":
        url = fresh_schema(request.getfixturevalue("pg_url"))
    broker = kit.make_broker(tmp_path / "broker", db_url=url)
    patch = pytest.MonkeyPatch()
    try:
        office = kit.onboard(broker, "department", "District Planning Office")
        coop = kit.onboard(broker, "enterprise", "Harbour Solar Cooperative")
        data = kit.register(
            broker, office, kit.small_csv(tmp_path / "harbour.csv"), workdir=tmp_path
        )
        grant = kit.approve(broker, office, kit.request(broker, coop, data.id, uses=USES))
        ledger = broker.ledger
        actions = [kit.sign_fetch(broker, coop, data.id) for _ in range(FETCHES)]
        start = threading.Barrier(FETCHES)
        # Hold each fetch between its on-chain use and its database commit, the earlier uses
        # longest, so that on PostgreSQL the commits come in the reverse of the chain's order
        # (a busy broker reorders them at random). SQLite's write lock, taken at BEGIN
        # IMMEDIATE before the chain transaction, already keeps the two orders equal.
        step = HOLD_SECONDS_PER_USE if request.param == "postgresql" else 0.0
        record_use = ledger.chain.record_use

        def held_use(*args: Any, **kwargs: Any) -> TxResult:
            result = record_use(*args, **kwargs)
            time.sleep(step * (USES - int(result.event("AccessUsed").args["uses"])))
            return result

        patch.setattr(ledger.chain, "record_use", held_use)

        def attempt(signed: SignedAction) -> Outcome:
            start.wait(timeout=60)
            try:
                return exchange.fetch(ledger, signed)
            except Exception as exc:  # every outcome is inspected by the tests
                return exc

        with ThreadPoolExecutor(max_workers=FETCHES) as pool:
            outcomes = list(pool.map(attempt, actions))
        yield {
            "broker": broker,
            "coop": coop,
            "dataset": data.id,
            "grant": grant,
            "outcomes": outcomes,
        }
    finally:
        patch.undo()
        broker.close()


def _successes(race: dict[str, object]) -> list[exchange.Fetched]:
    outcomes = race["outcomes"]
    assert isinstance(outcomes, list)
    return [o for o in outcomes if isinstance(o, exchange.Fetched)]


def _failures(race: dict[str, object]) -> list[Exception]:
    outcomes = race["outcomes"]
    assert isinstance(outcomes, list)
    return [o for o in outcomes if not isinstance(o, exchange.Fetched)]


def test_exactly_max_uses_fetches_succeed_and_the_rest_are_refused_as_exhausted(
    race: dict[str, object],
) -> None:
    successes, failures = _successes(race), _failures(race)
    assert len(successes) == USES, [repr(f) for f in failures[:3]]
    assert len(failures) == FETCHES - USES
    for failure in failures:
        assert isinstance(failure, Forbidden), repr(failure)
        assert failure.code == EXHAUSTED, failure.message
    assert sorted(s.uses_left for s in successes) == list(range(USES))
    assert len({s.log_seq for s in successes}) == USES


def test_chain_and_index_both_count_exactly_max_uses(race: dict[str, object]) -> None:
    broker, coop, dataset_id = race["broker"], race["coop"], race["dataset"]
    assert isinstance(broker, kit.Broker)
    assert isinstance(dataset_id, int)
    address = str(getattr(coop, "address", ""))
    on_chain = broker.ledger.chain.grant_of(dataset_id, address)
    assert on_chain.uses == USES
    assert not broker.ledger.chain.is_usable(dataset_id, address)
    with broker.ledger.db.session() as session:
        rows = list(session.exec(select(Grant).where(Grant.dataset_id == dataset_id)))
    assert [row.uses for row in rows] == [USES]


def test_flow_log_holds_one_fetch_record_per_use_one_per_refusal_and_verify_passes(
    race: dict[str, object],
) -> None:
    broker = race["broker"]
    assert isinstance(broker, kit.Broker)
    with broker.ledger.db.session() as session:
        records = list(session.exec(select(LogRecord).where(LogRecord.action == "fetch")))
    # Each refused fetch is logged as refused (it shows an attempt; its nonce is spent).
    contexts = [(r, json.loads(r.leaf)["context"]) for r in records]
    refusals = [context for _, context in contexts if "refused" in context]
    assert refusals == [{"refused": EXHAUSTED}] * (FETCHES - USES)
    fetches = [r for r, context in contexts if "refused" not in context]
    assert len(fetches) == USES
    counted = sorted(json.loads(r.leaf)["context"]["uses"] for r in fetches)
    assert counted == list(range(1, USES + 1))
    assert {r.seq for r in fetches} == {s.log_seq for s in _successes(race)}
    # Every use on chain carries the grantee's signed Fetch that the log holds, and no other.
    used = broker.ledger.chain.events("AccessLedger", "AccessUsed")
    logged = {json.loads(r.leaf)["signed"]["message"]["nonce"] for r in fetches}
    assert sorted(int(ev.args["nonce"]) for ev in used) == sorted(logged)
    Anchorer(broker.ledger.db, broker.ledger.chain).run_once()
    report = verify(broker.ledger)
    assert report.ok, report.problems
    assert report.checked["anchors"] == 1

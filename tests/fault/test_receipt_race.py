"""One receipt per fetch, under a race, on SQLite and on PostgreSQL (issue 8, item 7).

A consumer fetches a dataset once (a grant of one use) and then eight delivery receipts for
that one fetch -- each validly signed, each with its own random nonce -- race on real threads,
released together by a barrier. Each receipt is held inside its transaction between the
"already has a receipt?" check and its insert (the on-chain ``fetchRecorded`` read is slowed
down), which is where a check under READ COMMITTED let several through before.

Exactly one is accepted, the seven others are refused as ``receipt_exists``; the index holds
one delivery and the log one receipt record; the anchoring pass mints the first-delivery credit
once (6, not 48) and ``verify`` passes. Two set-ups:

- ``as-shipped``: ``exchange.acknowledge`` as it is (the log lock is taken first, so receipts
  queue, and the unique ``(consumer, fetch_nonce)`` constraint stands behind it);
- ``constraint-only``: the early log lock is taken out, so on PostgreSQL all eight pass the
  check concurrently and only the database constraint is left to refuse the seven (the flow log
  records they appended are rolled back with them).

Finally the seven refused receipts are handed to ``SharingCredits.mintBatch`` directly with
the broker key: the chain credits a fetch once too, so they are all withheld.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from eth_utils.address import to_checksum_address
from sqlmodel import select

from ledger.chain.models import CreditRules, SignedReceipt, TxResult
from ledger.client.member import MemberKeys
from ledger.errors import Conflict
from ledger.protocol.actions import SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.services import exchange, flowlog
from ledger.services.anchoring import Anchorer, AnchorPass
from ledger.services.verify import VerifyReport, verify
from ledger.store.models import Delivery, LogRecord
from tests.support import kit
from tests.support.pg import fresh_schema, pg_cluster, pg_url  # noqa: F401  (fixtures)

RECEIPTS = 8
HOLD_SECONDS = 0.05  # inside each receipt's transaction, after the duplicate check
FIRST_CREDIT = CreditRules().first_credit
ALREADY_CREDITED = 1  # ISharingCredits.Withheld.ALREADY_CREDITED

Outcome = Delivery | Exception


@dataclass
class Race:
    broker: kit.Broker
    office: MemberKeys
    coop: MemberKeys
    dataset_id: int
    fetch_nonce: int
    receipts: list[SignedAction]
    outcomes: list[Outcome]
    log_size_before: int
    anchored: AnchorPass
    report: VerifyReport
    replayed: TxResult  # mintBatch of the refused receipts, sent straight to the chain

    @property
    def accepted(self) -> list[tuple[SignedAction, Delivery]]:
        return [
            (r, o)
            for r, o in zip(self.receipts, self.outcomes, strict=True)
            if isinstance(o, Delivery)
        ]

    @property
    def refused(self) -> list[tuple[SignedAction, Exception]]:
        return [
            (r, o)
            for r, o in zip(self.receipts, self.outcomes, strict=True)
            if not isinstance(o, Delivery)
        ]


def _as_receipt(signed: SignedAction) -> SignedReceipt:
    msg = signed.message
    return SignedReceipt(
        dataset_id=int(msg["datasetId"]),
        consumer=to_checksum_address(str(msg["consumer"])),
        content_hash=bytes.fromhex(str(msg["contentHash"])[2:]),
        grant_generation=int(msg["grantGeneration"]),
        fetch_nonce=int(msg["fetchNonce"]),
        nonce=int(msg["nonce"]),
        deadline=int(msg["deadline"]),
        signature=signed.signature,
    )


@pytest.fixture(
    scope="module",
    params=[
        ("sqlite", "as-shipped"),
        ("sqlite", "constraint-only"),
        ("postgresql", "as-shipped"),
        ("postgresql", "constraint-only"),
    ],
    ids=lambda p: "-".join(p),
)
def race(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Race]:
    engine, mode = request.param
    tmp_path = tmp_path_factory.mktemp(f"receipts-{engine}-{mode}")
    url = fresh_schema(request.getfixturevalue("pg_url")) if engine == "postgresql" else None
    broker = kit.make_broker(tmp_path / "broker", db_url=url)
    patch = pytest.MonkeyPatch()
    try:
        office = kit.onboard(broker, "department", "District Planning Office")
        coop = kit.onboard(broker, "enterprise", "Harbour Solar Cooperative")
        data = kit.register(
            broker, office, kit.small_csv(tmp_path / "harbour.csv"), workdir=tmp_path
        )
        kit.approve(broker, office, kit.request(broker, coop, data.id, uses=1))
        opened = kit.fetch_and_open(broker, coop, data.id, tmp_path / "received.csv")
        receipts = [kit.sign_receipt(broker, coop, opened) for _ in range(RECEIPTS)]
        assert len({r.message["nonce"] for r in receipts}) == RECEIPTS
        ledger = broker.ledger
        with ledger.db.session() as session:
            log_size_before = flowlog.size(session)

        fetch_recorded = ledger.chain.fetch_recorded

        def slow_fetch_recorded(*args: Any, **kwargs: Any) -> int:
            answer = fetch_recorded(*args, **kwargs)
            time.sleep(HOLD_SECONDS)  # widen the window between the check and the insert
            return answer

        patch.setattr(ledger.chain, "fetch_recorded", slow_fetch_recorded)
        if mode == "constraint-only":
            patch.setattr(exchange, "locked_log_size", lambda session: 0)

        start = threading.Barrier(RECEIPTS)

        def attempt(signed: SignedAction) -> Outcome:
            start.wait(timeout=60)
            try:
                return exchange.acknowledge(ledger, signed)
            except Exception as exc:  # every outcome is inspected by the tests
                return exc

        with ThreadPoolExecutor(max_workers=RECEIPTS) as pool:
            outcomes = list(pool.map(attempt, receipts))
        patch.undo()

        anchored = Anchorer(ledger.db, ledger.chain).run_once()
        report = verify(ledger)
        refused = [
            _as_receipt(r)
            for r, o in zip(receipts, outcomes, strict=True)
            if isinstance(o, Exception)
        ]
        replayed = ledger.chain.mint_batch(refused)
        yield Race(
            broker=broker,
            office=office,
            coop=coop,
            dataset_id=data.id,
            fetch_nonce=opened.fetch_nonce,
            receipts=receipts,
            outcomes=outcomes,
            log_size_before=log_size_before,
            anchored=anchored,
            report=report,
            replayed=replayed,
        )
    finally:
        patch.undo()
        broker.close()


def test_exactly_one_receipt_is_accepted_and_the_rest_are_refused_as_existing(
    race: Race,
) -> None:
    assert len(race.accepted) == 1, [repr(o) for _, o in race.refused[:3]]
    assert len(race.refused) == RECEIPTS - 1
    for _, failure in race.refused:
        assert isinstance(failure, Conflict), repr(failure)
        assert failure.code == ErrorCode.RECEIPT_EXISTS, failure.message
    ((signed, delivery),) = race.accepted
    assert delivery.fetch_nonce == str(race.fetch_nonce)
    assert delivery.receipt_id == signed.digest(race.broker.ledger.domains)


def test_the_index_and_the_log_hold_one_receipt(race: Race) -> None:
    ledger = race.broker.ledger
    with ledger.db.session() as session:
        deliveries = list(session.exec(select(Delivery)))
        receipts = list(session.exec(select(LogRecord).where(LogRecord.action == "receipt")))
        size = flowlog.size(session)
    assert len(deliveries) == 1
    assert len(receipts) == 1
    assert receipts[0].seq == deliveries[0].log_seq
    assert size == race.log_size_before + 1  # the refused ones left no record behind


def test_the_owner_is_credited_once_and_verify_passes(race: Race) -> None:
    chain = race.broker.ledger.chain
    assert race.anchored.credited == 1
    assert race.anchored.minted == FIRST_CREDIT
    assert chain.credits_of(race.office.address) == FIRST_CREDIT
    assert chain.is_fetch_credited(race.coop.address, race.fetch_nonce)
    assert race.report.ok, race.report.problems
    assert race.report.checked["deliveries"] == 1


def test_the_chain_withholds_the_refused_receipts_of_the_credited_fetch(race: Race) -> None:
    chain = race.broker.ledger.chain
    names = [ev.name for ev in race.replayed.events]
    assert "CreditsMinted" not in names
    withheld = [ev for ev in race.replayed.events if ev.name == "CreditWithheld"]
    assert len(withheld) == RECEIPTS - 1
    assert {int(ev.args["reason"]) for ev in withheld} == {ALREADY_CREDITED}
    assert chain.credits_of(race.office.address) == FIRST_CREDIT

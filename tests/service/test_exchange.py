"""The whole exchange in process: register, request, approve, fetch, receipt, anchor, credits,
trace and verify, with a department owner, an enterprise and a regulator on the embedded chain.

Since issue 8 the amount a delivery earns is set on chain by SharingCredits' rules (the first
delivery of an owner to a consumer in an epoch earns ``first_credit``), not by the rating.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from ledger.chain.models import CreditRules
from ledger.client.member import MemberKeys, sign
from ledger.errors import Conflict, ContractRevert, Forbidden
from ledger.protocol.actions import SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.services import members
from ledger.services.anchoring import Anchorer
from ledger.services.trace import trace_dataset, trace_member
from ledger.services.verify import verify
from ledger.types import kind_code
from tests.support import kit

#: What the walk's one receipt earns: the first delivery of the pair in this epoch.
FIRST_CREDIT = CreditRules().first_credit


@pytest.fixture(scope="module")
def walk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    root = tmp_path_factory.mktemp("exchange")
    broker = kit.make_broker(root / "broker")
    office = kit.onboard(broker, "department", "District Planning Office")
    coop = kit.onboard(broker, "enterprise", "Harbour Solar Cooperative")
    auditor = kit.onboard(broker, "regulator", "Data Protection Authority")
    work = root / "work"
    work.mkdir()
    base = kit.register(broker, office, kit.SAMPLE, workdir=work)
    extract = kit.register(
        broker,
        office,
        kit.small_csv(work / "harbour.csv"),
        workdir=work,
        title="Harbour ward extract",
        parents=(base.id,),
    )
    req = kit.request(broker, coop, extract.id)
    grant = kit.approve(broker, office, req)
    out = root / "received.csv"
    opened = kit.fetch_and_open(broker, coop, extract.id, out)
    delivery = kit.receipt(broker, coop, opened)
    kit.rate(broker, coop, extract.id, 4)
    anchored = Anchorer(broker.ledger.db, broker.ledger.chain).run_once()
    yield {
        "broker": broker,
        "office": office,
        "coop": coop,
        "auditor": auditor,
        "base": base,
        "extract": extract,
        "grant": grant,
        "fetched": opened.fetched,
        "digest": opened.digest,
        "fetch_nonce": opened.fetch_nonce,
        "fetch": opened.fetch,
        "out": out,
        "delivery": delivery,
        "anchored": anchored,
        "work": work,
    }
    broker.close()


def test_grantee_receives_exactly_the_registered_plaintext(walk: dict) -> None:
    assert walk["out"].read_bytes() == (walk["work"] / "harbour.csv").read_bytes()
    assert walk["digest"] == walk["extract"].content_hash
    assert walk["fetched"].uses_left == 4


def test_registration_is_the_on_chain_certificate(walk: dict) -> None:
    chain = walk["broker"].ledger.chain
    info = chain.dataset(walk["extract"].id)
    assert info.owner == walk["office"].address
    assert info.content_hash == walk["extract"].content_hash
    assert info.parents == (walk["base"].id,)


def test_the_receipt_names_its_fetch_and_its_id_is_the_eip712_digest(walk: dict) -> None:
    delivery = walk["delivery"]
    ledger = walk["broker"].ledger
    assert delivery.fetch_nonce == str(walk["fetch_nonce"])
    assert ledger.chain.fetch_recorded(walk["coop"].address, walk["fetch_nonce"]) == (
        walk["extract"].id
    )
    signed = SignedAction.from_json(json.loads(delivery.signed_json))
    assert delivery.receipt_id == signed.digest(ledger.domains)


def test_anchor_covers_the_receipt_and_mints_the_rules_amount(walk: dict) -> None:
    anchored = walk["anchored"]
    chain = walk["broker"].ledger.chain
    assert anchored.anchored
    assert chain.latest_head().tree_size == anchored.tree_size
    assert anchored.credited == 1
    # The rating (4) does not set the amount: the chain's rules do.
    assert anchored.minted == FIRST_CREDIT == chain.credit_rules().first_credit
    assert chain.credits_of(walk["office"].address) == FIRST_CREDIT
    assert chain.is_credited(walk["delivery"].receipt_id)


def test_second_pass_anchors_nothing_and_credits_nothing(walk: dict) -> None:
    again = Anchorer(walk["broker"].ledger.db, walk["broker"].ledger.chain).run_once()
    assert not again.anchored
    assert again.credited == 0
    assert walk["broker"].ledger.chain.credits_of(walk["office"].address) == FIRST_CREDIT


def test_trace_shows_flow_and_lineage(walk: dict) -> None:
    ledger = walk["broker"].ledger
    t = trace_dataset(ledger, walk["extract"].id)
    assert t.ancestors == [walk["base"].id]
    assert [f.action for f in t.flows] == [
        "register",
        "request",
        "grant",
        "fetch",
        "receipt",
        "rate",
    ]
    assert {f.actor for f in t.flows} == {walk["office"].address, walk["coop"].address}
    base = trace_dataset(ledger, walk["base"].id)
    assert base.descendants == [walk["extract"].id]
    coop = trace_member(ledger, walk["coop"].address)
    assert coop.received == [walk["extract"].id]
    office = trace_member(ledger, walk["office"].address)
    assert office.credits == FIRST_CREDIT


def test_verify_passes_on_the_untouched_store(walk: dict) -> None:
    report = verify(walk["broker"].ledger)
    assert report.ok, report.problems
    assert report.checked["records"] >= 9
    assert report.checked["anchors"] == 1
    assert report.checked["blobs"] == 2


def test_regulator_cannot_request_data(walk: dict) -> None:
    with pytest.raises(Forbidden) as exc:
        kit.request(walk["broker"], walk["auditor"], walk["base"].id)
    assert exc.value.code == "regulator_read_only"


def test_a_second_receipt_for_the_same_fetch_is_refused(walk: dict) -> None:
    broker, coop = walk["broker"], walk["coop"]
    opened = kit.Opened(fetched=walk["fetched"], digest=walk["digest"], fetch=walk["fetch"])
    with pytest.raises(Conflict) as exc:
        kit.receipt(broker, coop, opened)
    assert exc.value.code == ErrorCode.RECEIPT_EXISTS


def test_a_receipt_for_a_fetch_the_chain_never_recorded_is_refused(walk: dict) -> None:
    broker, coop = walk["broker"], walk["coop"]
    never_sent = kit.sign_fetch(broker, coop, walk["extract"].id)
    opened = kit.Opened(fetched=walk["fetched"], digest=walk["digest"], fetch=never_sent)
    with pytest.raises(Conflict) as exc:
        kit.receipt(broker, coop, opened)
    assert exc.value.code == ErrorCode.FETCH_NOT_RECORDED


def test_the_broker_key_cannot_onboard(walk: dict) -> None:
    """Onboarding is ADMIN-signed since issue 8: the broker's own key is refused by the broker
    (operator_only) and, relayed anyway, by MemberRegistry."""
    broker = walk["broker"]
    ledger = broker.ledger
    assert ledger.operator == broker.operator.address != broker.broker_key.address
    newcomer = kit.new_keys()
    as_broker = MemberKeys(account=broker.broker_key, hpke=kit.new_keys().hpke)
    signed = sign(
        as_broker,
        "onboard",
        {
            "member": newcomer.address,
            "kind": kind_code("enterprise"),
            "name": "Shadow Analytics",
            "keySuite": newcomer.hpke.suite.id,
            "encryptionKey": newcomer.public_key.to_bytes(),
        },
        ledger.domains,
    )
    with pytest.raises(Forbidden) as exc:
        members.onboard(ledger, signed)
    assert exc.value.code == ErrorCode.OPERATOR_ONLY
    with pytest.raises(ContractRevert):
        ledger.chain.onboard_for(
            newcomer.address,
            kind="enterprise",
            name="Shadow Analytics",
            key_suite=newcomer.hpke.suite.id,
            encryption_key=newcomer.public_key.to_bytes(),
            nonce=int(signed.message["nonce"]),
            deadline=int(signed.message["deadline"]),
            signature=signed.signature,
        )
    assert ledger.chain.member(newcomer.address).kind is None

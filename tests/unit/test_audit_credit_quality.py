"""Quality-weighted credits, checked by member-side verify (ledger.audit.credits).

``SharingCredits`` weighs a credit by the quality score the broker passes with the receipt and
shows it in ``CreditsMinted``. The score is a function of signed, logged records, so verify
recomputes it from the records before the receipt and flags a credit minted with another one.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_account.signers.local import LocalAccount

from ledger.protocol.actions import SignedAction, new_nonce, sign_action
from ledger.protocol.codes import ErrorCode
from ledger.protocol.documents import metadata_hash
from tests.unit.test_audit_verifier import ALICE, BOB, DEADLINE, DOMAINS, World, wheres

#: A dataset whose owner attested 200 valid rows: validation 1, so the score starts at 100.
METADATA: dict[str, Any] = {"title": "permits", "quality": {"rows": 200, "errors": 0}}


def register_with_summary(world: World, dataset_id: int = 1) -> None:
    message = {
        "owner": ALICE.address,
        "contentHash": bytes([dataset_id]) * 32,
        "metadataHash": metadata_hash(METADATA),
        "classification": 1,
        "parents": [],
        "previousVersion": 0,
        "nonce": dataset_id,
        "deadline": DEADLINE,
    }
    signed = sign_action(ALICE, "register", message, DOMAINS)
    tx = world.chain.emit(
        "DataRegistry",
        "DatasetRegistered",
        datasetId=dataset_id,
        owner=ALICE.address,
        contentHash=message["contentHash"],
        metadataHash=message["metadataHash"],
        classification=1,
        parents=(),
        previousVersion=0,
    )
    world.log.append(signed, {"tx": tx.tx_hash, "dataset_id": dataset_id, "metadata": METADATA})


def issue_upheld(world: World, issue_id: int, dataset_id: int = 1) -> None:
    """A consumer's quality issue and the owner's ``acknowledged`` answer (costs 0.15)."""
    filed = _signed(
        BOB,
        "issue",
        {
            "reporter": BOB.address,
            "datasetId": dataset_id,
            "fields": "permit_id",
            "rows": "3",
            "problem": "duplicate ids",
        },
    )
    world.log.append(filed, {"issue_id": issue_id})
    answer = _signed(
        ALICE,
        "answer",
        {
            "owner": ALICE.address,
            "issueId": issue_id,
            "verdict": "acknowledged",
            "fixedIn": 0,
            "reason": "",
        },
    )
    world.log.append(answer, {"dataset_id": dataset_id})


def _signed(who: LocalAccount, action: str, message: dict[str, Any]) -> SignedAction:
    return sign_action(
        who, action, {**message, "nonce": new_nonce(), "deadline": DEADLINE}, DOMAINS
    )


def delivered(world: World) -> SignedAction:
    return world.receipt(world.fetch(BOB, 1))


def test_a_credit_minted_with_the_score_the_records_give_verifies(world: World) -> None:
    register_with_summary(world)
    receipt = delivered(world)
    world.anchor()
    world.mint(receipt, quality=100)

    report = world.verify()

    assert report.ok, report.problems
    assert report.counts["matched"] == 3  # register, fetch, receipt


def test_an_inflated_or_deflated_quality_is_flagged_at_the_mint_transaction(world: World) -> None:
    register_with_summary(world)
    first, second = delivered(world), delivered(world)
    world.anchor()
    inflated = world.mint(first, quality=101)
    deflated = world.mint(second, quality=99)

    report = world.verify()

    assert wheres(report, ErrorCode.CREDIT_QUALITY_MISMATCH) == [
        f"tx {inflated.tx_hash}",
        f"tx {deflated.tx_hash}",
    ]
    problem = next(p for p in report.problems if p.code == ErrorCode.CREDIT_QUALITY_MISMATCH)
    assert "quality 101" in problem.what
    assert "give 100" in problem.what
    # The log itself is sound: the checkpoint still advances; the chain's credits are wrong.
    assert report.advanced


def test_an_upheld_issue_before_the_receipt_lowers_the_quality_the_credit_must_carry(
    world: World,
) -> None:
    register_with_summary(world)
    issue_upheld(world, issue_id=1)
    receipt = delivered(world)
    world.anchor()
    world.mint(receipt, quality=100)  # the broker ignores the upheld issue

    report = world.verify()

    (problem,) = [p for p in report.problems if p.code == ErrorCode.CREDIT_QUALITY_MISMATCH]
    assert "give 85" in problem.what


def test_records_after_the_receipt_do_not_change_its_quality(world: World) -> None:
    register_with_summary(world)
    receipt = delivered(world)
    issue_upheld(world, issue_id=1)  # filed after the delivery: later credits pay for it
    later = delivered(world)
    world.anchor()
    world.mint(receipt, quality=100)
    world.mint(later, quality=85)

    report = world.verify()

    assert report.ok, report.problems


def test_a_credit_without_a_quality_is_flagged(world: World) -> None:
    register_with_summary(world)
    receipt = delivered(world)
    world.anchor()
    event = world.mint(receipt, quality=100)
    del event.args["quality"]

    report = world.verify()

    assert wheres(report, ErrorCode.CREDIT_QUALITY_MISMATCH) == [f"tx {event.tx_hash}"]


def test_a_dataset_with_no_registration_record_weighs_half(world: World) -> None:
    """Registered straight on chain, never logged: nothing to score, so 50 (UNSCORED)."""
    world.chain.emit(
        "DataRegistry",
        "DatasetRegistered",
        datasetId=1,
        owner=ALICE.address,
        contentHash=b"\x01" * 32,
        metadataHash=b"\x11" * 32,
        classification=1,
        parents=(),
        previousVersion=0,
    )
    receipt = delivered(world)
    world.anchor()
    world.mint(receipt, quality=100)

    report = world.verify()

    (problem,) = [p for p in report.problems if p.code == ErrorCode.CREDIT_QUALITY_MISMATCH]
    assert "give 50" in problem.what


@pytest.fixture
def world() -> World:
    return World()

"""SharingCredits: non-transferable credits minted to owners for others' use of their data."""

from __future__ import annotations

import pytest

from ledger.chain.client import ADMIN_ROLE, BROKER_ROLE
from ledger.chain.models import Credit

CAP = 50
EPOCH = 24 * 3600
ZERO_ADDRESS = "0x" + "00" * 20
WITHHELD = {"SELF_CONSUMPTION": 0, "ALREADY_CREDITED": 1, "CAP_REACHED": 2, "ZERO_AMOUNT": 3}


@pytest.fixture(scope="module")
def deploy_options():
    return {"credit_cap": CAP, "epoch_seconds": EPOCH}


def _minted_args(owner, dataset_id, consumer, receipt, amount, epoch):
    return {
        "owner": owner,
        "datasetId": dataset_id,
        "consumer": consumer,
        "receiptId": receipt,
        "amount": amount,
        "epoch": epoch,
    }


def test_credits_show_erc20_metadata_and_start_empty(env):
    fresh, _ = env.redeploy(credit_cap=CAP, epoch_seconds=EPOCH)
    token = fresh.contract("SharingCredits").functions
    assert token.name().call() == "Data Sharing Credit"
    assert token.symbol().call() == "DSC"
    assert token.decimals().call() == 0
    assert fresh.credits_total() == 0
    assert fresh.credits_of(env.dept_a.address) == 0
    assert fresh.credit_rules() == (CAP, EPOCH)
    assert fresh.current_epoch() == env.now() // EPOCH
    assert env.view("SharingCredits", "allowance", env.dept_a.address, env.broker.address) == 0


def test_broker_mints_credits_to_the_dataset_owner(env, unique_hash):
    dataset_id = env.register(env.dept_a)
    receipt = unique_hash()
    balance, total = env.chain.credits_of(env.dept_a.address), env.chain.credits_total()
    epoch = env.chain.current_epoch()

    result = env.broker_chain.mint(dataset_id, env.enterprise.address, 7, receipt)

    assert result.event("Transfer").args == {
        "from": ZERO_ADDRESS,
        "to": env.dept_a.address,
        "value": 7,
    }
    assert result.event("CreditsMinted").args == _minted_args(
        env.dept_a.address, dataset_id, env.enterprise.address, receipt, 7, epoch
    )
    assert env.chain.credits_of(env.dept_a.address) == balance + 7
    assert env.chain.credits_total() == total + 7
    assert env.chain.is_credited(receipt)
    assert env.chain.minted_in_epoch(dataset_id, env.enterprise.address, epoch) == 7
    assert env.chain.credits_of(env.enterprise.address) == 0


def test_credits_cannot_be_transferred_or_approved(env, reverts, unique_hash):
    dataset_id = env.register(env.dept_b)
    env.broker_chain.mint(dataset_id, env.enterprise.address, 5, unique_hash())
    holder = env.dept_b
    for function, args in (
        ("transfer", (env.dept_a.address, 1)),
        ("approve", (env.dept_a.address, 1)),
        ("transferFrom", (holder.address, env.dept_a.address, 1)),
    ):
        with reverts("SharingCreditsNonTransferable"):
            env.send(holder, "SharingCredits", function, *args)
    assert env.view("SharingCredits", "allowance", holder.address, env.dept_a.address) == 0
    assert env.chain.credits_of(env.dept_a.address) < env.chain.credits_total()


def test_only_the_broker_mints(env, reverts, unique_hash):
    dataset_id = env.register(env.dept_a)
    receipt = unique_hash()
    for caller in (env.operator, env.dept_a, env.enterprise):
        with reverts(
            "AccessControlUnauthorizedAccount", account=caller.address, neededRole=BROKER_ROLE
        ):
            env.as_(caller).mint(dataset_id, env.enterprise.address, 1, receipt)
        with reverts("AccessControlUnauthorizedAccount", account=caller.address):
            env.as_(caller).mint_batch([Credit(dataset_id, env.enterprise.address, 1, receipt)])
    assert not env.chain.is_credited(receipt)


def test_owner_consuming_its_own_dataset_earns_nothing(env, reverts, unique_hash):
    dataset_id = env.register(env.dept_a)
    with reverts(
        "SharingCreditsSelfConsumption", datasetId=dataset_id, consumer=env.dept_a.address
    ):
        env.broker_chain.mint(dataset_id, env.dept_a.address, 5, unique_hash())


def test_zero_amount_is_refused(env, reverts, unique_hash):
    dataset_id = env.register(env.dept_a)
    with reverts("SharingCreditsZeroAmount"):
        env.broker_chain.mint(dataset_id, env.enterprise.address, 0, unique_hash())


def test_minting_for_an_unknown_dataset_is_refused(env, reverts, unique_hash):
    missing = env.chain.dataset_count() + 100
    with reverts("ERC721NonexistentToken", tokenId=missing):
        env.broker_chain.mint(missing, env.enterprise.address, 5, unique_hash())
    with reverts("ERC721NonexistentToken", tokenId=missing):
        env.broker_chain.mint_batch([Credit(missing, env.enterprise.address, 5, unique_hash())])


def test_a_receipt_is_credited_once(env, reverts, unique_hash):
    first, second = env.register(env.dept_a), env.register(env.dept_b)
    receipt = unique_hash()
    env.broker_chain.mint(first, env.enterprise.address, 3, receipt)
    balance = env.chain.credits_of(env.dept_b.address)
    for dataset_id in (first, second):
        with reverts("SharingCreditsReceiptAlreadyCredited", receiptId=receipt):
            env.broker_chain.mint(dataset_id, env.enterprise.address, 3, receipt)
    assert env.chain.credits_of(env.dept_b.address) == balance


def test_cap_per_dataset_consumer_and_epoch_clips_then_refuses(env, reverts, unique_hash):
    dataset_id = env.register(env.dept_a)
    consumer = env.enterprise.address
    epoch = env.chain.current_epoch()
    env.broker_chain.mint(dataset_id, consumer, CAP - 10, unique_hash())

    clipped = env.broker_chain.mint(dataset_id, consumer, 25, unique_hash())

    assert clipped.event("CreditsMinted").args["amount"] == 10
    assert clipped.event("Transfer").args["value"] == 10
    assert env.chain.minted_in_epoch(dataset_id, consumer, epoch) == CAP
    with reverts("SharingCreditsCapReached", datasetId=dataset_id, consumer=consumer, epoch=epoch):
        env.broker_chain.mint(dataset_id, consumer, 1, unique_hash())
    # The cap is per consumer and per dataset: others still earn.
    other = env.broker_chain.mint(dataset_id, env.dept_b.address, 4, unique_hash())
    assert other.event("CreditsMinted").args["amount"] == 4
    second = env.register(env.dept_a)
    fresh = env.broker_chain.mint(second, consumer, CAP, unique_hash())
    assert fresh.event("CreditsMinted").args["amount"] == CAP


def test_a_new_epoch_resets_the_cap(env, reverts, unique_hash, time_travel):
    dataset_id = env.register(env.dept_b)
    consumer = env.enterprise.address
    epoch = env.chain.current_epoch()
    env.broker_chain.mint(dataset_id, consumer, CAP, unique_hash())
    with reverts("SharingCreditsCapReached", epoch=epoch):
        env.broker_chain.mint(dataset_id, consumer, 1, unique_hash())

    time_travel(EPOCH)

    assert env.chain.current_epoch() == epoch + 1
    result = env.broker_chain.mint(dataset_id, consumer, CAP, unique_hash())
    assert result.event("CreditsMinted").args["epoch"] == epoch + 1
    assert result.event("CreditsMinted").args["amount"] == CAP
    assert env.chain.minted_in_epoch(dataset_id, consumer, epoch) == CAP
    assert env.chain.minted_in_epoch(dataset_id, consumer, epoch + 1) == CAP


def test_batch_mints_the_eligible_and_withholds_the_rest_with_reasons(env, unique_hash):
    dataset_id = env.register(env.dept_a)
    ent, dept_b = env.enterprise.address, env.dept_b.address
    old_receipt = unique_hash()
    env.broker_chain.mint(dataset_id, dept_b, CAP - 5, old_receipt)
    r = [unique_hash() for _ in range(7)]
    batch = [
        Credit(dataset_id, ent, 8, r[0]),  # minted 8
        Credit(dataset_id, env.dept_a.address, 8, r[1]),  # self consumption
        Credit(dataset_id, ent, 0, r[2]),  # zero amount
        Credit(dataset_id, ent, 4, old_receipt),  # credited before
        Credit(dataset_id, ent, 4, r[0]),  # credited earlier in this batch
        Credit(dataset_id, dept_b, 9, r[3]),  # clipped to the 5 left
        Credit(dataset_id, dept_b, 1, r[4]),  # cap reached
    ]
    balance = env.chain.credits_of(env.dept_a.address)
    epoch = env.chain.current_epoch()
    assert env.simulate(env.broker, "SharingCredits", "mintBatch", _rows(batch)) == 13

    result = env.broker_chain.mint_batch(batch)

    minted = [ev.args for ev in result.events if ev.name == "CreditsMinted"]
    assert minted == [
        _minted_args(env.dept_a.address, dataset_id, ent, r[0], 8, epoch),
        _minted_args(env.dept_a.address, dataset_id, dept_b, r[3], 5, epoch),
    ]
    withheld = [ev.args for ev in result.events if ev.name == "CreditWithheld"]
    assert withheld == [
        {"receiptId": r[1], "datasetId": dataset_id, "reason": WITHHELD["SELF_CONSUMPTION"]},
        {"receiptId": r[2], "datasetId": dataset_id, "reason": WITHHELD["ZERO_AMOUNT"]},
        {"receiptId": old_receipt, "datasetId": dataset_id, "reason": WITHHELD["ALREADY_CREDITED"]},
        {"receiptId": r[0], "datasetId": dataset_id, "reason": WITHHELD["ALREADY_CREDITED"]},
        {"receiptId": r[4], "datasetId": dataset_id, "reason": WITHHELD["CAP_REACHED"]},
    ]
    assert env.chain.credits_of(env.dept_a.address) == balance + 13
    assert [env.chain.is_credited(x) for x in r[:5]] == [True, False, False, True, False]


def _rows(batch):
    return [(c.dataset_id, c.consumer, c.amount, c.receipt_id) for c in batch]


def test_credits_follow_the_current_owner_after_a_transfer(env, unique_hash):
    dataset_id = env.register(env.dept_a)
    env.chain.approve_transfer(dataset_id, env.dept_b.address)
    env.as_(env.dept_a).transfer_dataset(dataset_id, env.dept_b.address)
    result = env.broker_chain.mint(dataset_id, env.enterprise.address, 2, unique_hash())
    assert result.event("CreditsMinted").args["owner"] == env.dept_b.address


def test_admin_sets_credit_rules_and_zeros_are_refused(env, reverts):
    try:
        changed = env.chain.set_credit_rules(cap_per_epoch=7, epoch_seconds=3600)
        assert changed.event("CreditRulesChanged").args == {"capPerEpoch": 7, "epochLength": 3600}
        assert env.chain.credit_rules() == (7, 3600)
        assert env.chain.current_epoch() == env.now() // 3600
        for cap, epoch in ((0, 3600), (7, 0), (0, 0)):
            with reverts("SharingCreditsInvalidRules", capPerEpoch=cap, epochLength=epoch):
                env.chain.set_credit_rules(cap_per_epoch=cap, epoch_seconds=epoch)
        assert env.chain.credit_rules() == (7, 3600)
    finally:
        env.chain.set_credit_rules(cap_per_epoch=CAP, epoch_seconds=EPOCH)
    assert env.chain.credit_rules() == (CAP, EPOCH)


def test_only_admin_sets_credit_rules(env, reverts):
    for caller in (env.broker, env.dept_a):
        with reverts(
            "AccessControlUnauthorizedAccount", account=caller.address, neededRole=ADMIN_ROLE
        ):
            env.as_(caller).set_credit_rules(cap_per_epoch=1_000_000, epoch_seconds=1)
    assert env.chain.credit_rules() == (CAP, EPOCH)


def test_credit_rules_are_announced_at_deployment(env):
    fresh, _ = env.redeploy(credit_cap=3, epoch_seconds=60)
    events = fresh.events("SharingCredits", "CreditRulesChanged")
    assert [ev.args for ev in events] == [{"capPerEpoch": 3, "epochLength": 60}]

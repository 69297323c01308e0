"""SharingCredits: credits only for consumer-signed receipts of recorded fetches, capped.

Owners and consumers here are fresh, unfunded members whose registrations, grants and fetches
the broker relays with their signatures: every test has its own (owner, consumer) pairs, so the
per-pair and per-owner caps of one test do not leak into another.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from ledger.chain.client import ADMIN_ROLE, BROKER_ROLE
from ledger.chain.models import CreditRules
from ledger.protocol import eip712
from ledger.protocol.actions import to_json_value
from ledger.protocol.messages import typed_grant, typed_register

EPOCH = 24 * 3600
RULES = CreditRules(epoch_seconds=EPOCH, first_credit=6, repeat_credit=2, pair_cap=12, owner_cap=20)
ZERO_ADDRESS = "0x" + "00" * 20
WITHHELD = {
    "SELF_CONSUMPTION": 0,
    "ALREADY_CREDITED": 1,
    "CAP_REACHED": 2,
    "ZERO_AMOUNT": 3,
    "INVALID_SIGNATURE": 4,
    "FETCH_NOT_RECORDED": 5,
    "FETCH_OF_OTHER_DATASET": 6,
    "CONTENT_MISMATCH": 7,
    "LOW_QUALITY": 8,
    "QUALITY_OUT_OF_RANGE": 9,
}


@pytest.fixture(scope="module")
def deploy_options():
    return {"rules": RULES}


# -- helpers -------------------------------------------------------------------------------


def _dataset(env, owner):
    """A fresh dataset of ``owner``, registered through the broker with its signature."""
    registration = env.registration()
    nonce, deadline = env.chain.nonce("DataRegistry", owner.address), env.deadline()
    signature = env.sign(
        owner,
        typed_register(
            env.chain.deployment.domains,
            owner.address,
            registration,
            nonce=nonce,
            deadline=deadline,
        ),
    )
    dataset_id, _ = env.broker_chain.register_for(
        owner.address, registration, nonce=nonce, deadline=deadline, signature=signature
    )
    return dataset_id


def _grant(env, owner, dataset_id, grantee, max_uses=50):
    terms = env.terms(dataset_id, grantee, max_uses=max_uses)
    nonce, deadline = env.chain.nonce("AccessLedger", owner.address), env.deadline()
    signature = env.sign(
        owner, typed_grant(env.chain.deployment.domains, terms, nonce=nonce, deadline=deadline)
    )
    env.broker_chain.grant_for(terms, nonce=nonce, deadline=deadline, signature=signature)


def _members(env, count):
    return [env.new_member(funded=False) for _ in range(count)]


def _delivered(env, owner, consumer, fetches=1, dataset_id=None):
    """``consumer``'s signed receipts for ``fetches`` recorded fetches of a dataset of ``owner``."""
    if dataset_id is None:
        dataset_id = _dataset(env, owner)
        _grant(env, owner, dataset_id, consumer)
    receipts = []
    for _ in range(fetches):
        nonce, _ = env.use(dataset_id, consumer)
        receipts.append(env.receipt(consumer, dataset_id, nonce))
    return dataset_id, receipts


def _fresh_epoch(env, time_travel):
    """Move to the first seconds of the next epoch, so a test's mints share one epoch."""
    now = env.now()
    time_travel(EPOCH - now % EPOCH + 1)
    return env.chain.current_epoch()


def _receipt_id(env, receipt):
    message = {
        "consumer": receipt.consumer,
        "datasetId": receipt.dataset_id,
        "contentHash": receipt.content_hash,
        "grantGeneration": receipt.grant_generation,
        "fetchNonce": receipt.fetch_nonce,
        "nonce": receipt.nonce,
        "deadline": receipt.deadline,
    }
    return eip712.eip712_digest(
        "DeliveryReceipt",
        {k: to_json_value(v) for k, v in message.items()},
        env.chain.deployment.domains.separator("receipt"),
    )


def _minted(result):
    return [ev.args for ev in result.events if ev.name == "CreditsMinted"]


def _withheld(result):
    return [
        (ev.args["receiptId"], ev.args["reason"])
        for ev in result.events
        if ev.name == "CreditWithheld"
    ]


# -- minting -------------------------------------------------------------------------------


def test_credits_show_erc20_metadata_and_start_empty(env):
    fresh, _ = env.redeploy(rules=RULES)
    token = fresh.contract("SharingCredits").functions
    assert token.name().call() == "Data Sharing Credit"
    assert token.symbol().call() == "DSC"
    assert token.decimals().call() == 0
    assert fresh.credits_total() == 0
    assert fresh.credits_of(env.dept_a.address) == 0
    assert fresh.credit_rules() == RULES
    assert fresh.current_epoch() == env.now() // EPOCH
    assert env.view("SharingCredits", "allowance", env.dept_a.address, env.broker.address) == 0


def test_default_credit_rules(env):
    fresh, _ = env.redeploy()
    assert fresh.credit_rules() == CreditRules(
        epoch_seconds=7 * 24 * 3600, first_credit=6, repeat_credit=2, pair_cap=12, owner_cap=600
    )


def test_broker_mints_for_a_consumer_signed_receipt_of_a_recorded_fetch(env):
    owner, consumer = _members(env, 2)
    dataset_id, (receipt,) = _delivered(env, owner, consumer)
    receipt_id = _receipt_id(env, receipt)
    assert env.chain.receipt_id(receipt) == receipt_id
    total, epoch = env.chain.credits_total(), env.chain.current_epoch()
    assert env.simulate(env.broker, "SharingCredits", "mintBatch", [receipt.as_tuple()]) == 6

    result = env.broker_chain.mint_batch([receipt])

    assert result.event("Transfer").args == {"from": ZERO_ADDRESS, "to": owner.address, "value": 6}
    assert result.event("CreditsMinted").args == {
        "owner": owner.address,
        "datasetId": dataset_id,
        "consumer": consumer.address,
        "receiptId": receipt_id,
        "amount": 6,
        "epoch": epoch,
        "quality": 100,
    }
    assert env.chain.credits_of(owner.address) == 6
    assert env.chain.credits_total() == total + 6
    assert env.chain.is_credited(receipt_id)
    assert env.chain.is_fetch_credited(consumer.address, receipt.fetch_nonce)
    assert env.chain.minted_for_pair(owner.address, consumer.address, epoch) == 6
    assert env.chain.minted_for_owner(owner.address, epoch) == 6
    assert env.chain.credits_of(consumer.address) == 0


def test_credits_are_weighted_by_the_quality_score_rounded_half_up(env, time_travel):
    """First credit 6 and repeat 2, each scaled by quality/100: the event shows the score used."""
    _fresh_epoch(env, time_travel)
    weights = [(100, 6), (75, 5), (50, 3), (9, 1)]
    owners = _members(env, len(weights))
    for owner, (quality, amount) in zip(owners, weights, strict=True):
        consumer = env.new_member(funded=False)
        _, (first, repeat) = _delivered(env, owner, consumer, fetches=2)
        result = env.broker_chain.mint_batch(
            [replace(first, quality=quality), replace(repeat, quality=quality)]
        )
        minted = _minted(result)
        # A repeat at quality 9 rounds to nothing: withheld, not minted as zero.
        expected = [(a, quality) for a in (amount, (2 * quality + 50) // 100) if a]
        assert [(m["amount"], m["quality"]) for m in minted] == expected
        assert len(_withheld(result)) == 2 - len(expected)
        assert env.chain.credits_of(owner.address) == sum(m["amount"] for m in minted)


def test_a_receipt_weighted_to_nothing_or_out_of_range_earns_nothing(env):
    owner, consumer = _members(env, 2)
    _, (low, wild) = _delivered(env, owner, consumer, fetches=2)
    _assert_withheld(
        env,
        [replace(low, quality=8), replace(wild, quality=101)],
        ["LOW_QUALITY", "QUALITY_OUT_OF_RANGE"],
        [owner.address],
    )
    # Withheld, not credited: the same receipts at a real score still earn once.
    result = env.broker_chain.mint_batch([replace(low, quality=100)])
    assert [m["amount"] for m in _minted(result)] == [6]


def test_credits_cannot_be_transferred_or_approved(env, reverts):
    holder = env.dept_b
    _, receipts = _delivered(env, holder, env.new_member(funded=False))
    balance = env.chain.credits_of(holder.address)
    env.broker_chain.mint_batch(receipts)
    for function, args in (
        ("transfer", (env.dept_a.address, 1)),
        ("approve", (env.dept_a.address, 1)),
        ("transferFrom", (holder.address, env.dept_a.address, 1)),
    ):
        with reverts("SharingCreditsNonTransferable"):
            env.send(holder, "SharingCredits", function, *args)
    assert env.view("SharingCredits", "allowance", holder.address, env.dept_a.address) == 0
    assert env.chain.credits_of(holder.address) == balance + 6


def test_only_the_broker_mints(env, reverts):
    owner, consumer = _members(env, 2)
    _, receipts = _delivered(env, owner, consumer)
    for caller in (env.admin, env.dept_a, env.enterprise):
        with reverts(
            "AccessControlUnauthorizedAccount", account=caller.address, neededRole=BROKER_ROLE
        ):
            env.as_(caller).mint_batch(receipts)
    assert not env.chain.is_credited(_receipt_id(env, receipts[0]))
    assert env.chain.credits_of(owner.address) == 0


# -- receipts that earn nothing --------------------------------------------------------------


def _assert_withheld(env, receipts, reasons, owners):
    balances = {o: env.chain.credits_of(o) for o in owners}
    total = env.chain.credits_total()

    result = env.broker_chain.mint_batch(receipts)

    assert _minted(result) == []
    assert _withheld(result) == [
        (_receipt_id(env, r), WITHHELD[reason]) for r, reason in zip(receipts, reasons, strict=True)
    ]
    assert {o: env.chain.credits_of(o) for o in owners} == balances
    assert env.chain.credits_total() == total
    for r in receipts:
        assert not env.chain.is_credited(_receipt_id(env, r))


def test_a_forged_receipt_earns_nothing(env):
    """Signed by someone other than the consumer it names (the broker, the owner, a stranger)."""
    owner, consumer = _members(env, 2)
    dataset_id, _ = _delivered(env, owner, consumer, fetches=0)
    nonce, _ = env.use(dataset_id, consumer)
    forged = [env.receipt(consumer, dataset_id, nonce, signer=s) for s in (env.broker, owner)]
    truncated = replace(env.receipt(consumer, dataset_id, nonce), signature=b"\x01" * 64)
    _assert_withheld(
        env,
        [*forged, truncated],
        ["INVALID_SIGNATURE"] * 3,
        [owner.address],
    )
    # The genuine receipt for that fetch still earns.
    result = env.broker_chain.mint_batch([env.receipt(consumer, dataset_id, nonce)])
    assert [m["amount"] for m in _minted(result)] == [6]


def test_a_receipt_for_a_fetch_never_recorded_earns_nothing(env):
    """The issue's made-up receipts: fresh consumers, no fetch on chain."""
    owner, consumer, other = _members(env, 3)
    dataset_id, (genuine,) = _delivered(env, owner, consumer)
    invented = env.receipt(consumer, dataset_id, genuine.fetch_nonce + 1)
    borrowed = env.receipt(other, dataset_id, genuine.fetch_nonce)  # another consumer's fetch
    _assert_withheld(
        env, [invented, borrowed], ["FETCH_NOT_RECORDED", "FETCH_NOT_RECORDED"], [owner.address]
    )


def test_a_receipt_naming_another_dataset_than_its_fetch_earns_nothing(env):
    owner, consumer = _members(env, 2)
    fetched, (genuine,) = _delivered(env, owner, consumer)
    other = _dataset(env, owner)
    moved = env.receipt(consumer, other, genuine.fetch_nonce)
    _assert_withheld(env, [moved], ["FETCH_OF_OTHER_DATASET"], [owner.address])
    assert fetched != other


def test_a_receipt_with_a_wrong_content_hash_earns_nothing(env):
    owner, consumer = _members(env, 2)
    dataset_id, _ = _delivered(env, owner, consumer, fetches=0)
    nonce, _ = env.use(dataset_id, consumer)
    wrong = env.receipt(consumer, dataset_id, nonce, content_hash=env.new_hash())
    _assert_withheld(env, [wrong], ["CONTENT_MISMATCH"], [owner.address])


def test_a_fetch_is_credited_once(env):
    owner, consumer = _members(env, 2)
    dataset_id, (receipt,) = _delivered(env, owner, consumer)
    second = env.receipt(consumer, dataset_id, receipt.fetch_nonce)  # another receipt, same fetch

    result = env.broker_chain.mint_batch([receipt, receipt, second])

    assert [m["amount"] for m in _minted(result)] == [6]
    assert _withheld(result) == [
        (_receipt_id(env, receipt), WITHHELD["ALREADY_CREDITED"]),
        (_receipt_id(env, second), WITHHELD["ALREADY_CREDITED"]),
    ]
    again = env.broker_chain.mint_batch([second, receipt])
    assert _minted(again) == []
    assert [reason for _, reason in _withheld(again)] == [WITHHELD["ALREADY_CREDITED"]] * 2
    assert env.chain.credits_of(owner.address) == 6
    assert not env.chain.is_credited(_receipt_id(env, second))


def test_an_owner_consuming_its_own_dataset_earns_nothing(env):
    """The consumer became the owner (a reassignment) after its fetch was recorded."""
    owner = env.new_member(funded=False)
    consumer = env.new_member("enterprise", funded=False)
    dataset_id, (receipt,) = _delivered(env, owner, consumer)
    env.chain.reassign(dataset_id, consumer.address, env.new_hash())
    _assert_withheld(env, [receipt], ["SELF_CONSUMPTION"], [owner.address, consumer.address])


def test_a_batch_mints_the_eligible_and_withholds_the_rest(env):
    owner, consumer = _members(env, 2)
    dataset_id, receipts = _delivered(env, owner, consumer, fetches=2)
    forged = env.receipt(consumer, dataset_id, receipts[0].fetch_nonce, signer=env.broker)
    batch = [receipts[0], forged, receipts[1], receipts[0]]

    result = env.broker_chain.mint_batch(batch)

    assert [(m["receiptId"], m["amount"]) for m in _minted(result)] == [
        (_receipt_id(env, receipts[0]), 6),
        (_receipt_id(env, receipts[1]), 2),
    ]
    assert [reason for _, reason in _withheld(result)] == [
        WITHHELD["INVALID_SIGNATURE"],
        WITHHELD["ALREADY_CREDITED"],
    ]
    assert env.chain.credits_of(owner.address) == 8


def test_credits_follow_the_current_owner_after_a_transfer(env):
    owner = env.new_member()
    consumer = env.new_member(funded=False)
    dataset_id, receipts = _delivered(env, owner, consumer)
    env.chain.approve_transfer(dataset_id, env.dept_b.address)
    env.as_(owner).transfer_dataset(dataset_id, env.dept_b.address)
    result = env.broker_chain.mint_batch(receipts)
    assert _minted(result)[0]["owner"] == env.dept_b.address


# -- amounts and caps ----------------------------------------------------------------------


def test_first_delivery_to_a_consumer_earns_more_than_repeats_up_to_the_pair_cap(env, time_travel):
    owner, consumer, newcomer = _members(env, 3)
    _, receipts = _delivered(env, owner, consumer, fetches=6)
    _, (other,) = _delivered(env, owner, newcomer)
    epoch = _fresh_epoch(env, time_travel)

    result = env.broker_chain.mint_batch([*receipts, other])

    assert [m["amount"] for m in _minted(result)] == [6, 2, 2, 2, 6]
    assert [m["consumer"] for m in _minted(result)][-1] == newcomer.address
    assert _withheld(result) == [
        (_receipt_id(env, r), WITHHELD["CAP_REACHED"]) for r in receipts[4:]
    ]
    assert env.chain.minted_for_pair(owner.address, consumer.address, epoch) == RULES.pair_cap
    assert env.chain.minted_for_pair(owner.address, newcomer.address, epoch) == 6
    assert env.chain.minted_for_owner(owner.address, epoch) == 18
    assert env.chain.credits_of(owner.address) == 18


def test_the_owner_cap_clips_then_withholds(env, time_travel):
    owner, *consumers = _members(env, 6)
    receipts = [_delivered(env, owner, c)[1][0] for c in consumers]
    epoch = _fresh_epoch(env, time_travel)

    result = env.broker_chain.mint_batch(receipts)

    assert [m["amount"] for m in _minted(result)] == [6, 6, 6, 2]  # 20 = the owner cap
    assert _withheld(result) == [(_receipt_id(env, receipts[4]), WITHHELD["CAP_REACHED"])]
    assert env.chain.minted_for_owner(owner.address, epoch) == RULES.owner_cap
    assert env.chain.credits_of(owner.address) == RULES.owner_cap


def test_credit_farming_by_one_colluding_consumer_earns_at_most_the_pair_cap(env, time_travel):
    """The issue's farming case: three datasets fetched 10 times each by one colluding member."""
    owner, accomplice = _members(env, 2)
    receipts = []
    for _ in range(3):
        receipts += _delivered(env, owner, accomplice, fetches=10)[1]
    epoch = _fresh_epoch(env, time_travel)

    minted = 0
    for start in range(0, len(receipts), 10):
        result = env.broker_chain.mint_batch(receipts[start : start + 10])
        minted += sum(m["amount"] for m in _minted(result))

    assert minted == RULES.pair_cap
    assert env.chain.credits_of(owner.address) == RULES.pair_cap
    assert env.chain.minted_for_pair(owner.address, accomplice.address, epoch) == RULES.pair_cap


def test_a_new_epoch_resets_the_caps(env, time_travel):
    owner, consumer = _members(env, 2)
    _, receipts = _delivered(env, owner, consumer, fetches=6)
    epoch = _fresh_epoch(env, time_travel)
    first = env.broker_chain.mint_batch(receipts[:5])
    assert sum(m["amount"] for m in _minted(first)) == RULES.pair_cap

    time_travel(EPOCH)

    assert env.chain.current_epoch() == epoch + 1
    result = env.broker_chain.mint_batch(receipts[5:])
    assert _minted(result)[0]["epoch"] == epoch + 1
    assert _minted(result)[0]["amount"] == RULES.first_credit
    assert env.chain.minted_for_pair(owner.address, consumer.address, epoch) == RULES.pair_cap
    assert env.chain.minted_for_pair(owner.address, consumer.address, epoch + 1) == 6


# -- rules ---------------------------------------------------------------------------------


def test_admin_sets_credit_rules_and_invalid_ones_are_refused(env, reverts, time_travel):
    changed_rules = CreditRules(
        epoch_seconds=3600, first_credit=3, repeat_credit=0, pair_cap=5, owner_cap=9
    )
    try:
        changed = env.chain.set_credit_rules(changed_rules)
        assert changed.event("CreditRulesChanged").args == {
            "epochLength": 3600,
            "firstCredit": 3,
            "repeatCredit": 0,
            "pairCap": 5,
            "ownerCap": 9,
        }
        assert env.chain.credit_rules() == changed_rules
        assert env.chain.current_epoch() == env.now() // 3600
        for field in ("epoch_seconds", "first_credit", "pair_cap", "owner_cap"):
            bad = replace(changed_rules, **{field: 0})
            with reverts("SharingCreditsInvalidRules"):
                env.chain.set_credit_rules(bad)
        assert env.chain.credit_rules() == changed_rules
        # A zero repeat credit: one credit per pair and epoch, repeats withheld.
        owner, consumer = _members(env, 2)
        _, receipts = _delivered(env, owner, consumer, fetches=2)
        now = env.now()
        time_travel(3600 - now % 3600 + 1)
        result = env.broker_chain.mint_batch(receipts)
        assert [m["amount"] for m in _minted(result)] == [3]
        assert [reason for _, reason in _withheld(result)] == [WITHHELD["ZERO_AMOUNT"]]
    finally:
        env.chain.set_credit_rules(RULES)
    assert env.chain.credit_rules() == RULES


def test_only_admin_sets_credit_rules(env, reverts):
    generous = CreditRules(epoch_seconds=1, first_credit=10**6, pair_cap=10**9, owner_cap=10**9)
    for caller in (env.broker, env.dept_a):
        with reverts(
            "AccessControlUnauthorizedAccount", account=caller.address, neededRole=ADMIN_ROLE
        ):
            env.as_(caller).set_credit_rules(generous)
    assert env.chain.credit_rules() == RULES


def test_credit_rules_are_announced_at_deployment(env):
    rules = CreditRules(epoch_seconds=60, first_credit=1, repeat_credit=1, pair_cap=3, owner_cap=4)
    fresh, _ = env.redeploy(rules=rules)
    events = fresh.events("SharingCredits", "CreditRulesChanged")
    assert [ev.args for ev in events] == [
        {"epochLength": 60, "firstCredit": 1, "repeatCredit": 1, "pairCap": 3, "ownerCap": 4}
    ]

"""The checks every signed action passes before the broker acts on it
(``ledger.protocol.limits``): deadline windows and nonce strength against a clock the test sets,
and the protocol's field limits. Times and bounds are written out, not derived from the
constants under test, so a changed window fails here."""

from __future__ import annotations

from typing import Any

import pytest

from ledger.errors import ExpiredDeadline, InvalidInput, InvalidSignature
from ledger.protocol.actions import SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.protocol.limits import check_limits, check_timing

NOW = 1_700_000_000
ACTOR = "0x2B5AD5c4795c026514f8317c7a215E218DcCD6cF"
RANDOM_NONCE = 18446744073709551616  # 2**64: the smallest nonce a random draw may give


def action(kind: str, **message: Any) -> SignedAction:
    """An action as the checks see it; they run before (and apart from) the signature check."""
    return SignedAction(action=kind, actor=ACTOR, message=message, signature=b"\x00" * 65)


def request(**changes: Any) -> SignedAction:
    message: dict[str, Any] = {
        "requester": ACTOR,
        "datasetId": 1,
        "purpose": "quarterly statistics",
        "purposeCategory": "official-statistics",
        "legalBasis": "public-task",
        "retentionDays": 0,
        "processingLocation": "EU",
        "days": 30,
        "maxUses": 3,
        "nonce": RANDOM_NONCE,
        "deadline": NOW + 900,
    }
    message.update(changes)
    return action("request", **message)


# -- timing -----------------------------------------------------------------------------------


@pytest.mark.parametrize("deadline", [1_700_000_000, 1_700_000_001, 1_700_090_000])
def test_a_deadline_from_now_to_25_hours_ahead_is_accepted(deadline: int) -> None:
    check_timing(request(deadline=deadline), NOW)


@pytest.mark.parametrize("deadline", [1_699_999_999, 0, None, "1700000900"])
def test_a_deadline_that_has_passed_is_refused(deadline: Any) -> None:
    with pytest.raises(ExpiredDeadline) as caught:
        check_timing(request(deadline=deadline), NOW)
    assert caught.value.message == f"request: deadline {deadline} has passed"
    assert caught.value.code == ErrorCode.DEADLINE_EXPIRED


def test_a_deadline_more_than_25_hours_ahead_is_refused() -> None:
    with pytest.raises(ExpiredDeadline) as caught:
        check_timing(request(deadline=1_700_090_001), NOW)
    assert caught.value.message == "request: deadline more than 24 h ahead"
    assert caught.value.code == ErrorCode.DEADLINE_TOO_FAR


@pytest.mark.parametrize("nonce", [18446744073709551615, 0, None, True])
def test_a_broker_nonce_below_2_to_the_64_is_refused(nonce: Any) -> None:
    with pytest.raises(InvalidSignature) as caught:
        check_timing(request(nonce=nonce), NOW)
    assert caught.value.message == (
        "request: the nonce must be a random 256-bit integer (>= 2**64)"
    )
    assert caught.value.code == ErrorCode.WEAK_NONCE


def test_a_contract_action_counts_its_nonces_from_zero() -> None:
    """Contract-checked actions use the contract's counter: 0 is a fine nonce there."""
    revoke = action("revoke", datasetId=1, grantee=ACTOR, nonce=0, deadline=NOW + 900)
    check_timing(revoke, NOW)


# -- field limits -----------------------------------------------------------------------------


def _refused(signed: SignedAction, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_limits(signed)
    assert caught.value.message == message
    assert caught.value.code == ErrorCode.INVALID_FIELD


@pytest.mark.parametrize(
    "changes",
    [
        {"purpose": "x" * 10},
        {"purpose": "  " + "x" * 10 + "  "},
        {"purpose": "x" * 2000},
        {"days": 1},
        {"days": 3650},
        {"maxUses": 1},
        {"maxUses": 1_000_000},
    ],
)
def test_requests_at_the_limits_are_accepted(changes: dict[str, Any]) -> None:
    check_limits(request(**changes))


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"purpose": "x" * 9}, "purpose must be 10 to 2000 characters"),
        ({"purpose": " " * 5 + "x" * 9 + " " * 5}, "purpose must be 10 to 2000 characters"),
        ({"purpose": "x" * 2001}, "purpose must be 10 to 2000 characters"),
        ({"purpose": 12345678901}, "purpose must be a string"),
        ({"days": 0}, "days must be 1 to 3650"),
        ({"days": 3651}, "days must be 1 to 3650"),
        ({"days": True}, "days must be 1 to 3650"),
        ({"days": "30"}, "days must be 1 to 3650"),
        ({"maxUses": 0}, "maxUses must be 1 to 1000000"),
        ({"maxUses": 1_000_001}, "maxUses must be 1 to 1000000"),
    ],
)
def test_requests_past_the_limits_are_refused(changes: dict[str, Any], message: str) -> None:
    _refused(request(**changes), message)


def test_a_denial_reason_is_at_most_2000_characters() -> None:
    check_limits(action("deny", reason="r" * 2000))
    _refused(action("deny", reason="r" * 2001), "reason longer than 2000 characters")
    _refused(action("deny", reason=None), "reason must be a string")


@pytest.mark.parametrize("score", [1, 5])
def test_a_rating_of_1_to_5_is_accepted(score: int) -> None:
    check_limits(action("rate", score=score, comment="c" * 2000))


def test_a_rating_outside_1_to_5_or_with_a_long_comment_is_refused() -> None:
    _refused(action("rate", score=0, comment=""), "score must be 1 to 5")
    _refused(action("rate", score=6, comment=""), "score must be 1 to 5")
    _refused(action("rate", score=3, comment="c" * 2001), "comment longer than 2000 characters")


def test_a_member_name_is_1_to_200_characters() -> None:
    check_limits(action("onboard", name="n"))
    check_limits(action("onboard", name="n" * 200))
    _refused(action("onboard", name="   "), "name must be 1 to 200 characters")
    _refused(action("onboard", name="n" * 201), "name must be 1 to 200 characters")


def test_a_registration_names_at_most_32_parents() -> None:
    check_limits(action("register", parents=list(range(1, 33))))
    _refused(action("register", parents=list(range(1, 34))), "at most 32 parents")

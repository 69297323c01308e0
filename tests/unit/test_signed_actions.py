"""The checks every signed action passes before the broker acts on it
(``ledger.protocol.limits``): deadline windows and nonce strength against a clock the test sets,
and the protocol's field limits. Times and bounds are written out, not derived from the
constants under test, so a changed window fails here."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account

from ledger.errors import ExpiredDeadline, InvalidInput, InvalidSignature
from ledger.protocol import actions
from ledger.protocol.actions import Domains, SignedAction, sign_action
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


def test_a_quality_issue_names_a_problem_of_10_to_2000_characters_and_short_places() -> None:
    def issue(**changes: Any) -> SignedAction:
        message = {"fields": "f" * 500, "rows": "r" * 500, "problem": "p" * 10, **changes}
        return action("issue", **message)

    check_limits(issue())
    check_limits(issue(problem="  " + "p" * 2000 + "  "))
    _refused(issue(problem=" " * 4 + "p" * 9 + " " * 4), "problem must be 10 to 2000 characters")
    _refused(issue(problem="p" * 2001), "problem must be 10 to 2000 characters")
    _refused(issue(problem=None), "problem must be a string")
    _refused(issue(fields="f" * 501), "fields longer than 500 characters")
    _refused(issue(fields=3), "fields must be a string")
    _refused(issue(rows="r" * 501), "rows longer than 500 characters")
    _refused(issue(rows=[]), "rows must be a string")


def test_actions_without_field_limits_pass_whatever_they_carry() -> None:
    for kind in ("fetch", "grant", "revoke", "receipt", "suspend"):
        check_limits(action(kind, name="", purpose="", reason="r" * 5000, parents=[0] * 99))


# -- the signed JSON form, nonces and deadlines -----------------------------------------------

SIGNATURE = bytes(range(65))


def test_the_json_form_carries_action_actor_message_and_0x_signature() -> None:
    signed = SignedAction("fetch", ACTOR, {"grantee": ACTOR, "datasetId": 1}, SIGNATURE)
    data = signed.to_json()
    assert data == {
        "action": "fetch",
        "actor": ACTOR,
        "message": {"grantee": ACTOR, "datasetId": 1},
        "signature": "0x" + SIGNATURE.hex(),
    }
    assert SignedAction.from_json(data) == signed


def test_the_json_form_is_read_with_or_without_0x_and_checksums_the_actor() -> None:
    data = {
        "action": "rate",
        "actor": ACTOR.lower(),
        "message": [("score", 5)],
        "signature": SIGNATURE.hex(),
    }
    parsed = SignedAction.from_json(data)
    assert parsed == SignedAction("rate", ACTOR, {"score": 5}, SIGNATURE)
    assert parsed.spec.primary == parsed.primary == "Rate"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"action": "mint"}, "unknown action 'mint'"),
        ({"actor": ACTOR}, "malformed signed action: 'action'"),
        (
            {"action": "fetch", "actor": ACTOR, "message": {}},
            "malformed signed action: 'signature'",
        ),
        (
            {"action": "fetch", "actor": ACTOR, "message": 5, "signature": "00"},
            "malformed signed action: 'int' object is not iterable",
        ),
        (
            {"action": "fetch", "actor": ACTOR, "message": {}, "signature": "0xzz"},
            "malformed signed action: non-hexadecimal number found in fromhex() arg at position 0",
        ),
        (None, "malformed signed action: 'NoneType' object is not subscriptable"),
    ],
)
def test_a_malformed_json_form_is_a_malformed_action(data: Any, message: str) -> None:
    with pytest.raises(InvalidSignature) as caught:
        SignedAction.from_json(data)
    assert caught.value.message == message
    assert caught.value.code == ErrorCode.MALFORMED_ACTION


def test_a_broker_nonce_is_redrawn_until_it_is_at_least_2_to_the_64(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    draws = iter([0, 18446744073709551615, 18446744073709551616, 5])
    widths: list[int] = []

    def randbits(bits: int) -> int:
        widths.append(bits)
        return next(draws)

    monkeypatch.setattr(actions.secrets, "randbits", randbits)
    assert actions.new_nonce() == 18446744073709551616
    assert widths == [256, 256, 256]


def test_the_default_deadline_is_15_minutes_from_now(monkeypatch: pytest.MonkeyPatch) -> None:
    assert actions.default_deadline(1_700_000_000.9) == 1_700_000_900
    assert actions.default_deadline(0) == 900
    monkeypatch.setattr(actions.time, "time", lambda: 1_600_000_000.5)
    assert actions.default_deadline() == 1_600_000_900


# -- typed messages and digests of actions ----------------------------------------------------

DOMAINS = Domains(
    chain_id=1337,
    flow_log="0x1111111111111111111111111111111111111111",
    member_registry="0x4444444444444444444444444444444444444444",
    data_registry="0x2222222222222222222222222222222222222222",
    access_ledger="0x3333333333333333333333333333333333333333",
    sharing_credits="0x5555555555555555555555555555555555555555",
)
SIGNER = Account.from_key(b"\x01" * 32)


def test_each_domain_name_maps_to_its_verifying_contract() -> None:
    assert DOMAINS.contract("broker") == "0x1111111111111111111111111111111111111111"
    assert DOMAINS.contract("MemberRegistry") == "0x4444444444444444444444444444444444444444"
    assert DOMAINS.contract("DataRegistry") == "0x2222222222222222222222222222222222222222"
    assert DOMAINS.contract("AccessLedger") == "0x3333333333333333333333333333333333333333"
    assert DOMAINS.contract("SharingCredits") == "0x5555555555555555555555555555555555555555"


def test_a_request_signed_without_a_form_is_signed_with_the_unspecified_form() -> None:
    signed = sign_action(
        SIGNER,
        "request",
        {
            "requester": SIGNER.address,
            "datasetId": 1,
            "purpose": "quarterly statistics",
            "days": 30,
            "maxUses": 3,
            "nonce": RANDOM_NONCE,
            "deadline": NOW + 900,
        },
        DOMAINS,
    )
    assert signed.message["purposeCategory"] == "unspecified"
    assert signed.message["legalBasis"] == "unspecified"
    assert signed.message["retentionDays"] == 0
    assert signed.message["processingLocation"] == "unspecified"
    signed.verify(DOMAINS)


def test_values_given_as_bytes_are_signed_as_0x_hex() -> None:
    signed = sign_action(
        SIGNER,
        "register",
        {
            "owner": SIGNER.address,
            "contentHash": b"\x0f" * 32,
            "metadataHash": b"\xf0" * 32,
            "classification": 1,
            "parents": (3, 4),
            "previousVersion": 0,
            "nonce": 0,
            "deadline": NOW + 900,
        },
        DOMAINS,
    )
    assert signed.message["contentHash"] == "0x" + "0f" * 32
    assert signed.message["parents"] == [3, 4]
    signed.verify(DOMAINS)


def _malformed(call: Any, message: str) -> None:
    with pytest.raises(InvalidSignature) as caught:
        call(DOMAINS)
    assert caught.value.message == message
    assert caught.value.code == ErrorCode.MALFORMED_ACTION


def test_an_action_missing_a_member_is_malformed_by_name() -> None:
    fetch = action("fetch", grantee=ACTOR, datasetId=1, nonce=0)
    message = (
        "fetch: Fetch message must have exactly ['grantee', 'datasetId', 'nonce', 'deadline']"
        "; missing ['deadline']"
    )
    _malformed(fetch.typed, message)
    _malformed(fetch.digest, message)


def test_an_action_with_a_value_out_of_range_or_unencodable_is_malformed() -> None:
    fetch = action("fetch", grantee=ACTOR, datasetId=-1, nonce=0, deadline=1)
    _malformed(fetch.digest, "fetch: -1 out of range for uint256")
    rate = action("rate", rater=ACTOR, datasetId=1, score=1, comment="\ud800", nonce=0, deadline=1)
    _malformed(
        rate.digest,
        "rate: cannot hash the typed message: 'utf-8' codec can't encode character '\\ud800' "
        "in position 0: surrogates not allowed",
    )


def test_a_signature_by_another_key_or_naming_another_signer_is_refused_by_name() -> None:
    intruder = Account.from_key(b"\x02" * 32)
    message = {"grantee": ACTOR, "datasetId": 1, "nonce": 0, "deadline": NOW + 900}
    signed = sign_action(intruder, "fetch", message, DOMAINS)
    claimed = SignedAction("fetch", SIGNER.address, signed.message, signed.signature)
    with pytest.raises(InvalidSignature) as caught:
        claimed.verify(DOMAINS)
    assert caught.value.message == f"fetch signed by {intruder.address}, not by {SIGNER.address}"
    assert caught.value.code == ErrorCode.INVALID_SIGNATURE
    with pytest.raises(InvalidSignature) as named:
        signed.verify(DOMAINS)
    assert named.value.message == "fetch: grantee is not the signer"
    assert SignedAction.from_json(signed.to_json()).signer(DOMAINS) == intruder.address


def test_an_answer_to_a_quality_issue_is_checked_for_its_verdict() -> None:
    answer = {"verdict": "fixed", "fixedIn": 3, "reason": ""}
    check_limits(action("answer", **answer))
    _refused(
        action("answer", **{**answer, "verdict": "maybe"}),
        "verdict must be one of acknowledged, fixed, rejected",
    )

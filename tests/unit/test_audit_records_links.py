"""The member-side audit's building blocks, each on its own: reading a leaf
(``ledger.audit.records``), the keys that pair records with chain events
(``ledger.audit.links``), and how events and their arguments are kept and shown."""

from __future__ import annotations

from typing import Any

import pytest
from eth_account import Account
from eth_hash.auto import keccak

from ledger.audit import records
from ledger.audit.links import BY_ACTION, _address, _bytes, _text_hash, _uint, _uints
from ledger.audit.records import parse_leaf
from ledger.audit.verifier import _show_args, _stored
from ledger.errors import InvalidSignature, LogError
from ledger.protocol.actions import Domains, sign_action
from ledger.protocol.canonical import canonical
from ledger.protocol.codes import ErrorCode

DOMAINS = Domains(
    chain_id=31337,
    flow_log="0x5FbDB2315678afecb367f032d93F642f64180aa3",
    member_registry="0xe7f1725E7734CE288F8367e1Bb143E90bb3F0512",
    data_registry="0x9fE46736679d2D9a65F0992F2272dE9f3c7fa6e0",
    access_ledger="0xCf7Ed3AccA5a467e9e704C703E8D87F634fB0Fc9",
    sharing_credits="0xDc64a140Aa3E981100a9becA4E685f962f0cF6C9",
)
OWNER = Account.from_key(b"\x02" * 32)
GRANTEE = "0x6813Eb9362372EEF6200f3b1dbC3f819671cBA69"
MEMBERS = "a record has exactly the members ['at', 'context', 'seq', 'signed', 'v']"


def _leaf(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"v": 1, "seq": 0, "at": "2025-01-01T00:00:00+00:00", "signed": {}}
    doc["context"] = {}
    doc.update(changes)
    return doc


# -- reading a leaf: every way it can be malformed, with what the report says ------------------


@pytest.mark.parametrize(
    ("leaf", "message"),
    [
        ("not bytes", "a record is bytes"),
        (b"\xff\xfe", "a record is canonical JSON"),
        (b'{"v": 1}', "a record is canonical JSON (RFC 8785 with exact integers)"),
        (canonical([1, 2]), MEMBERS),
        (canonical({"v": 1}), MEMBERS),
        (canonical(_leaf(v=2)), "record version 2 is not 1"),
        (canonical(_leaf(v=True)), "record version True is not 1"),
        (canonical(_leaf(seq=-1)), "a record's seq is a non-negative integer"),
        (canonical(_leaf(seq=True)), "a record's seq is a non-negative integer"),
        (canonical(_leaf(seq="0")), "a record's seq is a non-negative integer"),
        (canonical(_leaf(at=5)), "a record's at is a string and its context an object"),
        (canonical(_leaf(context=[])), "a record's at is a string and its context an object"),
    ],
)
def test_a_malformed_leaf_says_what_is_wrong(leaf: Any, message: str) -> None:
    with pytest.raises(LogError) as caught:
        parse_leaf(leaf)
    assert caught.value.message == message
    assert caught.value.code == ErrorCode.RECORD_MALFORMED


def test_a_signed_part_that_is_no_object_is_a_malformed_action() -> None:
    with pytest.raises(InvalidSignature) as caught:
        parse_leaf(canonical(_leaf(signed=[])))
    assert caught.value.message == "the signed part is not an object"
    assert caught.value.code == ErrorCode.MALFORMED_ACTION


def test_the_leaf_size_limit_is_inclusive(monkeypatch: pytest.MonkeyPatch) -> None:
    """A leaf of exactly the limit is read; one byte more is refused before parsing."""
    leaf = canonical(_leaf(signed=[]))
    monkeypatch.setattr(records, "MAX_LEAF_BYTES", len(leaf))
    with pytest.raises(InvalidSignature):  # got past the size check
        parse_leaf(leaf)
    monkeypatch.setattr(records, "MAX_LEAF_BYTES", len(leaf) - 1)
    with pytest.raises(LogError) as caught:
        parse_leaf(leaf)
    assert caught.value.message == f"a record is at most {len(leaf) - 1} bytes, got {len(leaf)}"


# -- the normalised key values --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (bytes(range(20)), "0x" + bytes(range(20)).hex()),
        (bytes(range(21)), None),
        ("0X" + "Ab" * 20, "0x" + "ab" * 20),
        ("0x" + "Ab" * 20, "0x" + "ab" * 20),
        ("1x" + "ab" * 20, None),
        ("0x" + "ab" * 19, None),
        ("0x" + "zz" * 20, None),
        (5, None),
    ],
)
def test_addresses_compare_in_lower_case_hex(value: Any, expected: str | None) -> None:
    assert _address(value) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [(0, "0"), (7, "7"), (-1, None), (True, None), ("7", None), (2**256 - 1, str(2**256 - 1))],
)
def test_uints_are_exact_non_negative_integers(value: Any, expected: str | None) -> None:
    assert _uint(value) == expected


def test_uint_lists_need_every_member_a_uint() -> None:
    assert _uints([1, 0, 2]) == ["1", "0", "2"]
    assert _uints((3,)) == ["3"]
    assert _uints([]) == []
    assert _uints([1, -2]) is None
    assert _uints("12") is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"\x01\xab", "0x01ab"),
        (bytearray(b"\x02"), "0x02"),
        ("0x01AB", "0x01ab"),
        ("01ab", None),
        ("0xzz", None),
        (None, None),
    ],
)
def test_bytes_compare_as_lower_case_hex(value: Any, expected: str | None) -> None:
    assert _bytes(value) == expected


def test_a_text_is_hashed_unless_it_is_the_hash_already() -> None:
    assert _text_hash("Harbour") == "0x" + bytes(keccak(b"Harbour")).hex()
    assert _text_hash("0x" + "cd" * 32) == "0x" + "cd" * 32
    assert _text_hash("\ud800") is None  # not encodable as UTF-8


def test_a_grant_pairs_with_the_event_that_names_its_signer_as_grantor() -> None:
    """The grantor comes from who signed (``@actor``), not from any message member."""
    signed = sign_action(
        OWNER,
        "grant",
        {
            "datasetId": 4,
            "grantee": GRANTEE,
            "purposeHash": "0x" + "11" * 32,
            "termsHash": "0x" + "22" * 32,
            "expiresAt": 2_000_000_000,
            "maxUses": 3,
            "nonce": 0,
            "deadline": 2_000_000_000,
        },
        DOMAINS,
    )
    (link,) = BY_ACTION["grant"]
    args = {
        "datasetId": 4,
        "grantee": GRANTEE,
        "grantor": OWNER.address,
        "purposeHash": b"\x11" * 32,
        "termsHash": b"\x22" * 32,
        "expiresAt": 2_000_000_000,
        "maxUses": 3,
    }
    key = link.record_key(signed, DOMAINS)
    assert key == link.event_key(args)
    assert key.startswith('["4","0x6813eb9362372eef6200f3b1dbc3f819671cba69","0x')
    assert link.event_key({**args, "grantor": GRANTEE}) != key
    missing = dict(args)
    del missing["grantor"]
    assert link.event_key(missing) != key


# -- events kept, and shown --------------------------------------------------------------------


class _Event:
    def __init__(self, **extra: Any) -> None:
        self.name, self.args, self.block_number, self.tx_hash = "E", {"a": [1]}, 9, "0x01"
        self.__dict__.update(extra)


@pytest.mark.parametrize(
    ("extra", "index"), [({}, 0), ({"log_index": 3}, 3), ({"log_index": "3"}, 0)]
)
def test_a_kept_event_has_its_log_index_or_zero(extra: dict[str, Any], index: int) -> None:
    kept = _stored("C", _Event(**extra))
    assert (kept.contract, kept.name, kept.args, kept.block_number) == ("C", "E", {"a": [1]}, 9)
    assert kept.log_index == index


def test_event_arguments_are_shown_short() -> None:
    assert _show_args({"a": "x" * 20, "b": "y" * 21, "c": 1}) == (
        f"a={'x' * 20}, b={'y' * 12}…, c=1"
    )
    assert _show_args({"a": 1, "b": 2, "c": 3}, keys=["a", "c"]) == "a=1, c=3"


def test_a_record_carries_exactly_its_signed_action() -> None:
    signed = sign_action(OWNER, "rate", _rating(1), DOMAINS)
    other = sign_action(OWNER, "rate", _rating(2), DOMAINS)
    record = parse_leaf(canonical(_leaf(signed=signed.to_json())))
    assert records.carries(record, signed)
    assert not records.carries(record, other)


def _rating(nonce: int) -> dict[str, Any]:
    return {
        "rater": OWNER.address,
        "datasetId": 1,
        "score": 4,
        "comment": "",
        "nonce": 2**64 + nonce,
        "deadline": 2_000_000_000,
    }

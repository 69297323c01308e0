"""The pieces of the broker's EIP-712 hasher, each held to an exact value.

``test_eip712_fast.py`` checks whole digests against eth_account. This module pins the parts
one by one -- the type strings the contracts hash, every member encoding, the strict JSON
coercion and its error messages, the signature-range checks and their messages -- so a change
to one of them fails here with a precise difference.

The hasher caches type hashes, struct plans and domain separators per process. Every test here
starts from empty caches, so a value computed by an earlier test cannot stand in for the code
under test.
"""

from __future__ import annotations

from typing import Any

import pytest
from eth_abi import encode as abi_encode
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_keys import keys
from eth_utils.crypto import keccak

from ledger.errors import InvalidSignature
from ledger.protocol import eip712
from ledger.protocol.eip712 import (
    SECP256K1_N,
    address_bytes,
    broker_domain,
    check_members,
    contract_domain,
    eip712_digest,
    encode_type,
    from_json,
    hash_struct,
    recover_address,
    recover_typed,
    sign_typed,
    type_hash,
    typed_message,
)

ACCOUNT = Account.from_key(b"\x01" * 32)
LOWER = "0x" + "ab" * 20
CHECKSUMMED = "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB"  # EIP-55 of LOWER
CONTRACT = "0x" + "33" * 20


@pytest.fixture(autouse=True)
def _cold_caches() -> None:
    caches = (
        eip712.type_hash,
        eip712._struct_plan,
        eip712._domain_separator,
        eip712.checksum,
    )
    for cache in caches:
        cache.cache_clear()


# -- type strings -------------------------------------------------------------------------------

#: The contracts' TYPEHASH strings (contracts/*.sol), written out.
CONTRACT_TYPE_STRINGS = {
    "Onboard": "Onboard(address member,uint8 kind,string name,uint16 keySuite,"
    "bytes encryptionKey,uint256 nonce,uint256 deadline)",
    "Suspend": "Suspend(address member,uint256 nonce,uint256 deadline)",
    "Reinstate": "Reinstate(address member,uint256 nonce,uint256 deadline)",
    "RotateKey": "RotateKey(address member,uint16 keySuite,bytes encryptionKey,uint256 nonce,"
    "uint256 deadline)",
    "Register": "Register(address owner,bytes32 contentHash,bytes32 metadataHash,"
    "uint8 classification,uint256[] parents,uint256 previousVersion,uint256 nonce,"
    "uint256 deadline)",
    "Reassign": "Reassign(uint256 datasetId,address to,bytes32 reasonHash,uint256 nonce,"
    "uint256 deadline)",
    "Grant": "Grant(uint256 datasetId,address grantee,bytes32 purposeHash,uint64 expiresAt,"
    "uint32 maxUses,bytes32 termsHash,uint256 nonce,uint256 deadline)",
    "GrantApproval": "GrantApproval(uint256 datasetId,address grantee,bytes32 purposeHash,"
    "uint64 expiresAt,uint32 maxUses,bytes32 termsHash,uint32 generation,uint256 nonce,"
    "uint256 deadline)",
    "Revoke": "Revoke(uint256 datasetId,address grantee,uint256 nonce,uint256 deadline)",
    "Fetch": "Fetch(address grantee,uint256 datasetId,uint256 nonce,uint256 deadline)",
    "DeliveryReceipt": "DeliveryReceipt(address consumer,uint256 datasetId,bytes32 contentHash,"
    "uint32 grantGeneration,uint256 fetchNonce,uint256 nonce,uint256 deadline)",
    "EIP712Domain": "EIP712Domain(string name,string version,uint256 chainId,"
    "address verifyingContract)",
}


@pytest.mark.parametrize("primary", list(CONTRACT_TYPE_STRINGS))
def test_type_strings_are_the_contracts_typehash_strings(primary: str) -> None:
    expected = CONTRACT_TYPE_STRINGS[primary]
    assert encode_type(primary) == expected
    assert type_hash(primary) == keccak(expected.encode())


def test_an_unknown_struct_type_has_no_type_string() -> None:
    with pytest.raises(KeyError):
        encode_type("Transfer")


# -- member encodings (EIP-712 encodeData) ------------------------------------------------------


def _word(kind: str, value: Any) -> bytes:
    return bytes(abi_encode([kind], [value]))


ENCODINGS: list[tuple[str, Any, bytes]] = [
    ("uint256", 2**256 - 1, b"\xff" * 32),
    ("uint256", 1, bytes(31) + b"\x01"),
    ("uint8", 200, _word("uint8", 200)),
    ("uint64", 2**40 + 3, _word("uint64", 2**40 + 3)),
    ("address", LOWER, bytes(12) + b"\xab" * 20),
    ("address", CHECKSUMMED, bytes(12) + b"\xab" * 20),
    ("bool", True, bytes(31) + b"\x01"),
    ("bool", False, bytes(32)),
    ("bytes32", bytes(range(32)), bytes(range(32))),
    ("bytes4", b"\xde\xad\xbe\xef", b"\xde\xad\xbe\xef" + bytes(28)),
    ("bytes", b"", keccak(b"")),
    ("bytes", b"\x00\x01\x02", keccak(b"\x00\x01\x02")),
    ("string", "", keccak(b"")),
    ("string", "grüße", keccak("grüße".encode())),
    ("uint256[]", [], keccak(b"")),
    ("uint256[]", [1, 2**256 - 1], keccak(bytes(31) + b"\x01" + b"\xff" * 32)),
    ("address[]", [LOWER, CONTRACT], keccak(_word("address", LOWER) + _word("address", CONTRACT))),
    ("bytes32[]", [b"\x01" * 32, b"\x02" * 32], keccak(b"\x01" * 32 + b"\x02" * 32)),
    ("string[]", ["a", "bc"], keccak(keccak(b"a") + keccak(b"bc"))),
]


@pytest.mark.parametrize(("kind", "value", "expected"), ENCODINGS)
def test_each_member_type_encodes_as_eip712_encode_data(
    kind: str, value: Any, expected: bytes
) -> None:
    assert eip712._encoder(kind)(value) == expected


@pytest.mark.parametrize("kind", ["int8", "tuple", "fixed128x18"])
def test_a_member_type_outside_the_protocol_has_no_encoder(kind: str) -> None:
    with pytest.raises(InvalidSignature) as caught:
        eip712._encoder(kind)
    assert caught.value.message == f"unsupported type {kind}"


# -- strict JSON coercion -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("uint8", 255, 255),
        ("uint8", 0, 0),
        ("uint", 2**256 - 1, 2**256 - 1),
        ("uint32", 2**32 - 1, 2**32 - 1),
        ("int8", 255, 255),
        ("bytes", "0x", b""),
        ("bytes", "0x00Ff", b"\x00\xff"),
        ("bytes4", "0xdeadBEEF", b"\xde\xad\xbe\xef"),
        ("bytes32", "0x" + "01" * 32, b"\x01" * 32),
        ("address", LOWER, CHECKSUMMED),
        ("address", LOWER.upper().replace("0X", "0x"), CHECKSUMMED),
        ("string", "", ""),
        ("string", "é", "é"),
        ("bool", True, True),
        ("bool", False, False),
        ("uint256[]", [], []),
        ("uint256[]", [0, 7], [0, 7]),
        ("address[]", [LOWER], [CHECKSUMMED]),
        ("bytes1[]", ["0x01", "0xff"], [b"\x01", b"\xff"]),
    ],
)
def test_json_values_coerce_to_their_eip712_values(kind: str, value: Any, expected: Any) -> None:
    got = from_json(kind, value)
    assert got == expected
    assert type(got) is type(expected)


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        ("uint256[]", 5, "expected a list for uint256[]"),
        ("uint256[]", (1, 2), "expected a list for uint256[]"),
        ("uint256[]", [1, "2"], "expected an integer for uint256"),
        ("bytes", b"\x01", "expected 0x and whole bytes of hex for bytes"),
        ("bytes", "0x0", "expected 0x and whole bytes of hex for bytes"),
        ("bytes", "00", "expected 0x and whole bytes of hex for bytes"),
        ("bytes32", "0x" + "01" * 31, "bytes32 must be 32 bytes"),
        ("bytes32", "0x" + "01" * 33, "bytes32 must be 32 bytes"),
        ("bytes4", "0x", "bytes4 must be 4 bytes"),
        ("uint8", 256, "256 out of range for uint8"),
        ("uint8", -1, "-1 out of range for uint8"),
        ("uint32", 2**32, "4294967296 out of range for uint32"),
        ("uint", 2**256, f"{2**256} out of range for uint"),
        ("uint8", True, "expected an integer for uint8"),
        ("uint8", 1.0, "expected an integer for uint8"),
        ("uint8", "1", "expected an integer for uint8"),
        ("address", 12, "expected an address"),
        ("address", b"\xab" * 20, "expected an address"),
        (
            "address",
            "0x" + "ab" * 19,
            f"an address is 0x and 40 hex digits, not {'0x' + 'ab' * 19!r}",
        ),
        ("string", 1, "expected a string"),
        ("string", None, "expected a string"),
        ("bool", 1, "expected a boolean"),
        ("bool", "true", "expected a boolean"),
        ("tuple", 1, "unsupported type tuple"),
    ],
)
def test_json_values_of_the_wrong_shape_are_refused_by_name(
    kind: str, value: Any, message: str
) -> None:
    with pytest.raises(InvalidSignature) as caught:
        from_json(kind, value)
    assert caught.value.message == message


@pytest.mark.parametrize(
    "value", ["0x" + "ab" * 40, "0x" + "ab" * 20 + "\n", "0x" + "g" * 40, "ab" * 21, ""]
)
def test_an_address_is_exactly_0x_and_40_hex_digits(value: str) -> None:
    with pytest.raises(InvalidSignature) as caught:
        address_bytes(value)
    assert caught.value.message == f"an address is 0x and 40 hex digits, not {value!r}"


def test_address_bytes_are_the_20_bytes_written() -> None:
    assert address_bytes("0x" + "00" * 19 + "fF") == bytes(19) + b"\xff"


def test_addresses_are_hashed_from_their_text_and_checked_on_the_way() -> None:
    """``_coerce_for_hash`` leaves addresses (and lists of them) as text, refusing bad ones."""
    assert eip712._coerce_for_hash("address", LOWER) == LOWER
    assert eip712._coerce_for_hash("address[]", [LOWER, CHECKSUMMED]) == [LOWER, CHECKSUMMED]
    assert eip712._coerce_for_hash("address[]", []) == []
    assert eip712._coerce_for_hash("uint8", 7) == 7
    assert eip712._coerce_for_hash("bytes2", "0xabcd") == b"\xab\xcd"
    refusals = [
        ("address", 5, "expected an address"),
        ("address", None, "expected an address"),
        ("address", "0x12", "bad address '0x12'"),
        ("address[]", LOWER, "expected a list for address[]"),
        ("address[]", [LOWER, 7], "expected an address"),
        ("address[]", [LOWER, "0x12"], "bad address '0x12'"),
        ("uint8[]", "7", "expected a list for uint8[]"),
    ]
    for kind, value, message in refusals:
        with pytest.raises(InvalidSignature) as caught:
            eip712._coerce_for_hash(kind, value)
        assert caught.value.message == message, (kind, value)


# -- members of a message -----------------------------------------------------------------------

REVOKE_NAMES = "['datasetId', 'grantee', 'nonce', 'deadline']"


@pytest.mark.parametrize(
    ("message", "suffix"),
    [
        ({"datasetId": 1, "grantee": LOWER, "nonce": 0}, "; missing ['deadline']"),
        (
            {"datasetId": 1, "grantee": LOWER, "nonce": 0, "deadline": 1, "zeta": 1, "alpha": 2},
            "; unexpected ['alpha', 'zeta']",
        ),
        (
            {"datasetId": 1, "grantee": LOWER, "nonce": 0, "deadLine": 1},
            "; missing ['deadline']; unexpected ['deadLine']",
        ),
        ({}, "; missing ['datasetId', 'grantee', 'nonce', 'deadline']"),
    ],
)
def test_a_message_must_have_exactly_its_members(message: dict[str, Any], suffix: str) -> None:
    with pytest.raises(InvalidSignature) as caught:
        check_members("Revoke", message)
    assert caught.value.message == f"Revoke message must have exactly {REVOKE_NAMES}{suffix}"


def test_a_message_with_exactly_its_members_passes_in_any_order() -> None:
    check_members("Revoke", {"deadline": 1, "nonce": 0, "grantee": LOWER, "datasetId": 1})


# -- whole digests from cold caches -------------------------------------------------------------

MESSAGES: dict[str, dict[str, Any]] = {
    "Onboard": {
        "member": LOWER,
        "kind": 2,
        "name": "Stadtwerke Süd",
        "keySuite": 2,
        "encryptionKey": "0x" + "5a" * 1216,
        "nonce": 2**200 + 1,
        "deadline": 1_700_000_900,
    },
    "Register": {
        "owner": CHECKSUMMED,
        "contentHash": "0x" + "0f" * 32,
        "metadataHash": "0x" + "f0" * 32,
        "classification": 3,
        "parents": [4, 2**256 - 1],
        "previousVersion": 9,
        "nonce": 0,
        "deadline": 2**256 - 1,
    },
    "GrantApproval": {
        "datasetId": 12,
        "grantee": LOWER,
        "purposeHash": "0x" + "77" * 32,
        "expiresAt": 2**64 - 1,
        "maxUses": 2**32 - 1,
        "termsHash": "0x" + "88" * 32,
        "generation": 3,
        "nonce": 5,
        "deadline": 6,
    },
    "IssueAnswer": {
        "owner": LOWER,
        "issueId": 1,
        "verdict": "fixed",
        "fixedIn": 3,
        "reason": "recounted",
        "nonce": 2**64,
        "deadline": 1,
    },
}


def _reference(primary: str, message: dict[str, Any], domain: eip712.Domain) -> bytes:
    values = {
        f["name"]: from_json(f["type"], message[f["name"]]) for f in eip712.struct_fields(primary)
    }
    encoded = encode_typed_data(full_message=typed_message(primary, values, domain))
    return bytes(keccak(b"\x19" + encoded.version + encoded.header + encoded.body))


@pytest.mark.parametrize("primary", list(MESSAGES))
def test_digests_computed_from_cold_caches_match_eth_account(primary: str) -> None:
    domain = (
        broker_domain(31337, CONTRACT)
        if primary == "IssueAnswer"
        else contract_domain(2**64 + 1, CONTRACT)
    )
    digest = eip712_digest(primary, MESSAGES[primary], domain.separator)
    assert digest == _reference(primary, MESSAGES[primary], domain)
    assert digest == keccak(
        b"\x19\x01" + domain.separator + hash_struct(primary, MESSAGES[primary])
    )


def test_the_domain_separator_is_hash_struct_of_the_domain() -> None:
    domain = contract_domain(1337, CONTRACT)
    expected = keccak(
        keccak(CONTRACT_TYPE_STRINGS["EIP712Domain"].encode())
        + keccak(b"DataRightsLedger")
        + keccak(b"1")
        + (1337).to_bytes(32, "big")
        + bytes(12)
        + b"\x33" * 20
    )
    assert domain.separator == expected
    assert broker_domain(1337, CONTRACT).as_json() == {
        "name": "DataRightsLedger Broker",
        "version": "1",
        "chainId": 1337,
        "verifyingContract": CONTRACT,
    }


def test_the_reference_path_recovers_the_signer() -> None:
    full = typed_message(
        "Revoke",
        {"datasetId": 1, "grantee": CHECKSUMMED, "nonce": 0, "deadline": 9},
        contract_domain(1337, CONTRACT),
    )
    signature = sign_typed(ACCOUNT, full)
    assert len(signature) == 65
    assert recover_typed(full, signature) == ACCOUNT.address


# -- signature shapes ---------------------------------------------------------------------------

DIGEST = keccak(b"a digest to sign")


def _signed() -> tuple[int, int, int]:
    sig = keys.PrivateKey(b"\x01" * 32).sign_msg_hash(DIGEST)
    return sig.r, sig.s, sig.v + 27


def _sig(r: int, s: int, v: int) -> bytes:
    return r.to_bytes(32, "big") + s.to_bytes(32, "big") + bytes((v,))


def test_a_signature_recovers_the_signers_20_byte_address() -> None:
    r, s, v = _signed()
    assert recover_address(DIGEST, _sig(r, s, v)) == bytes.fromhex(ACCOUNT.address[2:])


@pytest.mark.parametrize("edge", ["r=1", "s=1", "s=n/2"])
def test_r_and_s_at_the_edges_of_their_ranges_are_accepted(edge: str) -> None:
    """1 <= r < n and 1 <= s <= n/2 (rounded down) are accepted; the key they recover is
    eth_keys' for the same (v, r, s)."""
    r, s, v = _signed()
    r, s = {"r=1": (1, s), "s=1": (r, 1), "s=n/2": (r, SECP256K1_N // 2)}[edge]
    expected = (
        keys.Signature(vrs=(v - 27, r, s))
        .recover_public_key_from_msg_hash(DIGEST)
        .to_canonical_address()
    )
    assert recover_address(DIGEST, _sig(r, s, v)) == expected


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"digest": DIGEST[:31]}, "the message hash must be exactly 32 bytes"),
        ({"digest": DIGEST + b"\x00"}, "the message hash must be exactly 32 bytes"),
        ({"cut": 64}, "a signature is 65 bytes, got 64"),
        ({"cut": 66}, "a signature is 65 bytes, got 66"),
        ({"v": 26}, "v 26 is invalid, must be 27 or 28"),
        ({"v": 29}, "v 29 is invalid, must be 27 or 28"),
        ({"v": 1}, "v 1 is invalid, must be 27 or 28"),
        ({"r": 0}, "signature r is not in the curve's range"),
        ({"r": SECP256K1_N}, "signature r is not in the curve's range"),
        ({"s": 0}, "signature s is not in the lower half of the curve order"),
        ({"s": SECP256K1_N // 2 + 1}, "signature s is not in the lower half of the curve order"),
        ({"r": 5}, "no public key recovers from this signature"),
    ],
)
def test_signatures_outside_what_the_contracts_accept_are_refused_by_name(
    change: dict[str, Any], message: str
) -> None:
    r, s, v = _signed()
    signature = _sig(change.get("r", r), change.get("s", s), change.get("v", v))
    if "cut" in change:
        signature = (signature + b"\x00")[: change["cut"]]
    with pytest.raises(InvalidSignature) as caught:
        recover_address(change.get("digest", DIGEST), signature)
    assert caught.value.message == message


def test_a_typed_message_is_the_eth_sign_typed_data_v4_structure() -> None:
    domain = contract_domain(1337, CONTRACT)
    message = {"member": CHECKSUMMED, "nonce": 1, "deadline": 2}
    assert typed_message("Suspend", message, domain) == {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Suspend": [
                {"name": "member", "type": "address"},
                {"name": "nonce", "type": "uint256"},
                {"name": "deadline", "type": "uint256"},
            ],
        },
        "primaryType": "Suspend",
        "domain": {
            "name": "DataRightsLedger",
            "version": "1",
            "chainId": 1337,
            "verifyingContract": CONTRACT,
        },
        "message": message,
    }

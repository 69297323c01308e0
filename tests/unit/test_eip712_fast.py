"""The broker's own EIP-712 hasher and signer recovery agree exactly with eth_account.

``SignedAction.digest`` hashes our fixed struct types directly and ``SignedAction.signer``
recovers with libsecp256k1; both must give eth_account's answer -- the same digest for every
action type, in its own domain, and every edge value. For every signature shape (``v``
variants, high ``s``, out-of-range ``r``/``s``, wrong lengths) recovery gives eth_account's
address where the shape is the one OpenZeppelin's ``ECDSA.recover`` accepts (``v`` 27/28, low
``s``) and a refusal otherwise, as the contracts do.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import InvalidSignature
from ledger.protocol.actions import ACTIONS, Domains, SignedAction, sign_action

N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
U256 = 2**256 - 1
ACCOUNT = Account.from_key(b"\x01" * 32)
OTHER = "0x" + "ab" * 20
DOMAINS = [
    Domains(
        chain_id=1337,
        flow_log=to_checksum_address("0x" + "11" * 20),
        member_registry=to_checksum_address("0x" + "44" * 20),
        data_registry=to_checksum_address("0x" + "22" * 20),
        access_ledger=to_checksum_address("0x" + "33" * 20),
        sharing_credits=to_checksum_address("0x" + "55" * 20),
    ),
    Domains(
        chain_id=2**64 + 7,
        flow_log=to_checksum_address("0x" + "fe" * 20),
        member_registry=to_checksum_address("0x" + "00" * 20),
        data_registry=to_checksum_address("0x" + "00" * 19 + "01"),
        access_ledger=to_checksum_address("0x" + "9a" * 20),
        sharing_credits=to_checksum_address("0x" + "ff" * 20),
    ),
]


def reference_digest(signed: SignedAction, domains: Domains) -> bytes:
    """What eth_account signs for this action: keccak(0x19 || 0x01 || domain || struct)."""
    message = encode_typed_data(full_message=signed.typed(domains))
    return bytes(keccak(b"\x19" + message.version + message.header + message.body))


def reference_signer(signed: SignedAction, domains: Domains) -> str | None:
    """eth_account's recovered signer, or None where it refuses."""
    try:
        encoded = encode_typed_data(full_message=signed.typed(domains))
        return str(Account.recover_message(encoded, signature=signed.signature))
    except Exception:
        return None


def ours(signed: SignedAction, domains: Domains) -> str | None:
    try:
        return signed.signer(domains)
    except InvalidSignature:
        return None


def nd(nonce: int = 1, deadline: int = 2**40) -> dict[str, Any]:
    return {"nonce": nonce, "deadline": deadline}


# Every action type, each with ordinary and edge values (bounds of every integer width, empty
# and long strings and bytes, non-ASCII text, empty and long arrays).
CASES: dict[str, list[dict[str, Any]]] = {
    "onboard": [
        {
            "member": OTHER,
            "kind": 2,
            "name": "Harbour Solar Cooperative",
            "keySuite": 1,
            "encryptionKey": b"\x07" * 32,
            **nd(),
        },
        {
            "member": "0x" + "00" * 20,
            "kind": 0,
            "name": "",
            "keySuite": 0,
            "encryptionKey": b"",
            **nd(0, 0),
        },
        {
            "member": "0x" + "ff" * 20,
            "kind": 255,
            "name": "数据局 ✓ \u0000 end",
            "keySuite": 2**16 - 1,
            "encryptionKey": bytes(range(256)) * 5,
            **nd(U256, U256),
        },
    ],
    "suspend": [{"member": OTHER, **nd()}, {"member": "0x" + "00" * 20, **nd(U256, 0)}],
    "reinstate": [{"member": OTHER, **nd(2**64)}, {"member": "0x" + "ff" * 20, **nd(0, U256)}],
    "rotate_key": [
        {"member": ACCOUNT.address, "keySuite": 1, "encryptionKey": b"\x09" * 32, **nd()},
        {"member": ACCOUNT.address, "keySuite": 0, "encryptionKey": b"", **nd(0, 0)},
        {
            "member": ACCOUNT.address,
            "keySuite": 2**16 - 1,
            "encryptionKey": bytes(range(256)) * 5,
            **nd(U256, U256),
        },
    ],
    "register": [
        {
            "owner": ACCOUNT.address,
            "contentHash": b"\x01" * 32,
            "metadataHash": b"\x02" * 32,
            "classification": 0,
            "parents": [],
            "previousVersion": 0,
            **nd(),
        },
        {
            "owner": ACCOUNT.address,
            "contentHash": b"\xff" * 32,
            "metadataHash": b"\x00" * 32,
            "classification": 255,
            "parents": [0, 1, U256, *range(2, 40)],
            "previousVersion": U256,
            **nd(U256, U256),
        },
    ],
    "reassign": [
        {"datasetId": 4, "to": OTHER, "reasonHash": b"\x33" * 32, **nd()},
        {"datasetId": 0, "to": "0x" + "00" * 20, "reasonHash": b"\x00" * 32, **nd(0, 0)},
        {"datasetId": U256, "to": "0x" + "ff" * 20, "reasonHash": b"\xff" * 32, **nd(U256, U256)},
    ],
    "request": [
        {
            "requester": ACCOUNT.address,
            "datasetId": 1,
            "purpose": "rooftop solar potential study for the district",
            "purposeCategory": "research",
            "legalBasis": "public-task",
            "retentionDays": 30,
            "processingLocation": "DE",
            "days": 30,
            "maxUses": 5,
            **nd(),
        },
        {
            "requester": ACCOUNT.address,
            "datasetId": U256,
            "purpose": "é" * 2000,
            "purposeCategory": "ü" * 40,
            "legalBasis": "",
            "retentionDays": 2**32 - 1,
            "processingLocation": "unspecified",
            "days": 2**32 - 1,
            "maxUses": 0,
            **nd(0, U256),
        },
    ],
    "grant": [
        {
            "datasetId": 3,
            "grantee": OTHER,
            "purposeHash": b"\x11" * 32,
            "expiresAt": 2**64 - 1,
            "maxUses": 2**32 - 1,
            "termsHash": b"\x22" * 32,
            **nd(0),
        },
        {
            "datasetId": 0,
            "grantee": "0x" + "00" * 20,
            "purposeHash": b"\x00" * 32,
            "expiresAt": 0,
            "maxUses": 0,
            "termsHash": b"\xff" * 32,
            **nd(U256, U256),
        },
    ],
    "approval": [
        {
            "datasetId": 3,
            "grantee": OTHER,
            "purposeHash": b"\x11" * 32,
            "expiresAt": 2**40,
            "maxUses": 1,
            "termsHash": b"\x22" * 32,
            "generation": 1,
            **nd(2**64),
        },
        {
            "datasetId": 0,
            "grantee": "0x" + "00" * 20,
            "purposeHash": b"\x00" * 32,
            "expiresAt": 0,
            "maxUses": 0,
            "termsHash": b"\x00" * 32,
            "generation": 0,
            **nd(0, 0),
        },
        {
            "datasetId": U256,
            "grantee": "0x" + "ff" * 20,
            "purposeHash": b"\xff" * 32,
            "expiresAt": 2**64 - 1,
            "maxUses": 2**32 - 1,
            "termsHash": b"\xff" * 32,
            "generation": 2**32 - 1,
            **nd(U256, U256),
        },
    ],
    "deny": [
        {"owner": ACCOUNT.address, "requestId": 7, "reason": "not for this purpose", **nd()},
        {"owner": ACCOUNT.address, "requestId": U256, "reason": "", **nd(U256, 0)},
    ],
    "revoke": [
        {"datasetId": 9, "grantee": OTHER, **nd(0)},
        {"datasetId": U256, "grantee": "0x" + "ff" * 20, **nd(U256, U256)},
    ],
    "fetch": [
        {"grantee": ACCOUNT.address, "datasetId": 1, **nd()},
        {"grantee": ACCOUNT.address, "datasetId": U256, **nd(U256, U256)},
    ],
    "receipt": [
        {
            "consumer": ACCOUNT.address,
            "datasetId": 1,
            "contentHash": b"\x5a" * 32,
            "grantGeneration": 1,
            "fetchNonce": 2**64 + 1,
            **nd(),
        },
        {
            "consumer": ACCOUNT.address,
            "datasetId": U256,
            "contentHash": b"\x00" * 32,
            "grantGeneration": 2**32 - 1,
            "fetchNonce": 0,
            **nd(0, 0),
        },
        {
            "consumer": ACCOUNT.address,
            "datasetId": 0,
            "contentHash": b"\xff" * 32,
            "grantGeneration": 0,
            "fetchNonce": U256,
            **nd(U256, U256),
        },
    ],
    "rate": [
        {
            "rater": ACCOUNT.address,
            "datasetId": 2,
            "score": 5,
            "comment": "clean, complete",
            **nd(),
        },
        {
            "rater": ACCOUNT.address,
            "datasetId": U256,
            "score": 255,
            "comment": "🙂" * 500,
            **nd(U256, U256),
        },
    ],
    "issue": [
        {
            "reporter": ACCOUNT.address,
            "datasetId": 2,
            "fields": "units,issued_on",
            "rows": "2-14",
            "problem": "units counts buildings, not dwellings",
            **nd(),
        },
        {
            "reporter": ACCOUNT.address,
            "datasetId": U256,
            "fields": "",
            "rows": "",
            "problem": "ü" * 2000,
            **nd(U256, U256),
        },
    ],
    "answer": [
        {
            "owner": ACCOUNT.address,
            "issueId": 1,
            "verdict": "fixed",
            "fixedIn": 3,
            "reason": "recounted",
            **nd(),
        },
        {
            "owner": ACCOUNT.address,
            "issueId": U256,
            "verdict": "rejected",
            "fixedIn": 0,
            "reason": "",
            **nd(U256, U256),
        },
    ],
}


def test_every_action_type_has_cases() -> None:
    assert set(CASES) == set(ACTIONS)
    for action, cases in CASES.items():
        for case in cases:
            assert set(case) == {f["name"] for f in ACTIONS[action].fields}, action


def _moved(domains: Domains, action: str) -> Domains:
    """``domains`` with the verifying contract of ``action``'s domain moved elsewhere."""
    field = {
        "broker": "flow_log",
        "MemberRegistry": "member_registry",
        "DataRegistry": "data_registry",
        "AccessLedger": "access_ledger",
        "SharingCredits": "sharing_credits",
    }[ACTIONS[action].domain]
    moved: dict[str, Any] = {field: to_checksum_address("0x" + "5e" * 20)}
    return dataclasses.replace(domains, **moved)


@pytest.mark.parametrize("action", list(CASES))
def test_each_action_is_bound_to_its_own_domain(action: str) -> None:
    """A signature verifies only in the domain of the contract (or broker) that checks it."""
    domains = DOMAINS[0]
    signed = sign_action(ACCOUNT, action, CASES[action][0], domains)  # type: ignore[arg-type]
    assert domains.for_action(action).as_json() == domains.as_json()[ACTIONS[action].domain]
    for other in (_moved(domains, action), dataclasses.replace(domains, chain_id=1)):
        assert signed.digest(other) != signed.digest(domains)
        assert ours(signed, other) != ACCOUNT.address
    # Every other domain of the deployment differs from this one.
    separators = {
        domains.separator(a) for a in ACTIONS if ACTIONS[a].domain != ACTIONS[action].domain
    }
    assert domains.separator(action) not in separators


@pytest.mark.parametrize("domains", DOMAINS, ids=["chain-1337", "chain-big"])
@pytest.mark.parametrize(
    ("action", "index"),
    [(action, i) for action, cases in CASES.items() for i in range(len(cases))],
)
def test_digest_and_signer_match_eth_account(action: str, index: int, domains: Domains) -> None:
    signed = sign_action(ACCOUNT, action, CASES[action][index], domains)  # type: ignore[arg-type]
    assert signed.digest(domains) == reference_digest(signed, domains)
    assert signed.signer(domains) == ACCOUNT.address == reference_signer(signed, domains)
    signed.verify(domains)
    assert signed.signature[64] in (27, 28)  # what we sign is what the contracts accept
    assert int.from_bytes(signed.signature[32:64], "big") <= N // 2


@pytest.mark.parametrize(
    "address",
    [
        OTHER,  # lower case
        OTHER.upper().replace("0X", "0x"),  # upper-case hex
        "0x" + "aB" * 20,  # mixed case that is not a checksum: normalised, as eth_utils does
    ],
)
def test_address_spellings_hash_as_eth_account_does(address: str) -> None:
    domains = DOMAINS[0]
    signed = sign_action(ACCOUNT, "revoke", {"datasetId": 1, "grantee": OTHER, **nd()}, domains)
    respelled = SignedAction(
        signed.action, signed.actor, {**signed.message, "grantee": address}, signed.signature
    )
    assert respelled.digest(domains) == reference_digest(respelled, domains)
    assert respelled.signer(domains) == ACCOUNT.address


@pytest.mark.parametrize(
    "value",
    [
        *("0x" + "ab" * 19, "0x" + "ab" * 21, "0x" + "zz" * 20, "", "0x", 12345, None),
        " " + OTHER,
        "0X" + "ab" * 20,  # the protocol spells addresses 0x + 40 hex digits only
        "ab" * 20,
    ],
)
def test_malformed_addresses_are_refused_by_both(value: Any) -> None:
    domains = DOMAINS[0]
    signed = sign_action(ACCOUNT, "revoke", {"datasetId": 1, "grantee": OTHER, **nd()}, domains)
    bad = SignedAction(
        signed.action, signed.actor, {**signed.message, "grantee": value}, signed.signature
    )
    with pytest.raises(InvalidSignature):
        bad.digest(domains)
    with pytest.raises(InvalidSignature):
        bad.typed(domains)
    assert ours(bad, domains) is None


@pytest.mark.parametrize(
    "change",
    [
        {"datasetId": -1},
        {"datasetId": 2**256},
        {"datasetId": "1"},
        {"datasetId": True},
        {"days": 2**32},
        {"purpose": b"bytes"},
        {"purpose": "\ud800"},  # a lone surrogate cannot be UTF-8 encoded
        {"extra": 1},
    ],
)
def test_malformed_values_are_refused(change: dict[str, Any]) -> None:
    domains = DOMAINS[0]
    signed = sign_action(ACCOUNT, "request", CASES["request"][0], domains)
    bad = SignedAction(signed.action, signed.actor, {**signed.message, **change}, signed.signature)
    with pytest.raises(InvalidSignature):
        bad.digest(domains)
    with pytest.raises(InvalidSignature):
        bad.verify(domains)
    assert reference_signer(bad, domains) is None


def test_a_missing_field_is_refused() -> None:
    domains = DOMAINS[0]
    signed = sign_action(ACCOUNT, "fetch", CASES["fetch"][0], domains)
    message = dict(signed.message)
    del message["deadline"]
    bad = SignedAction(signed.action, signed.actor, message, signed.signature)
    with pytest.raises(InvalidSignature):
        bad.digest(domains)


def _reshape(signature: bytes, *, r: int | None = None, s: int | None = None, v: int) -> bytes:
    r0, s0 = int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")
    r_out, s_out = r0 if r is None else r, s0 if s is None else s
    return r_out.to_bytes(32, "big") + s_out.to_bytes(32, "big") + bytes((v,))


def _signature_shapes(signature: bytes) -> dict[str, bytes]:
    v = signature[64]
    parity = v - 27
    s = int.from_bytes(signature[32:64], "big")
    shapes = {f"v={w}": _reshape(signature, v=w) for w in (0, 1, 27, 28, 29, 30, 34, 35, 36, 255)}
    shapes |= {
        "as signed": signature,
        "high s, parity flipped": _reshape(signature, s=N - s, v=27 + (1 - parity)),
        "high s, parity kept": _reshape(signature, s=N - s, v=v),
        "r=0": _reshape(signature, r=0, v=v),
        "s=0": _reshape(signature, s=0, v=v),
        "r=N": _reshape(signature, r=N, v=v),
        "s=N": _reshape(signature, s=N, v=v),
        "r=2^256-1": _reshape(signature, r=U256, v=v),
        "empty": b"",
        "64 bytes": signature[:64],
        "66 bytes": signature + b"\x00",
        "130 bytes": signature * 2,
    }
    return shapes


#: The shapes OpenZeppelin's ECDSA.recover (what the contracts run) accepts: v 27/28, low s.
CANONICAL_SHAPES = frozenset({"as signed", "v=27", "v=28"})


@pytest.mark.parametrize("shape", list(_signature_shapes(b"\x00" * 64 + b"\x1b")))
def test_every_signature_shape_recovers_as_the_contracts_do(shape: str) -> None:
    """eth_account's rules where the shape is canonical; refused (as on chain) otherwise."""
    domains = DOMAINS[0]
    signed = sign_action(ACCOUNT, "receipt", CASES["receipt"][0], domains)
    reshaped = SignedAction(
        signed.action, signed.actor, signed.message, _signature_shapes(signed.signature)[shape]
    )
    expected = reference_signer(reshaped, domains) if shape in CANONICAL_SHAPES else None
    assert ours(reshaped, domains) == expected


def test_a_signature_by_someone_else_is_refused() -> None:
    domains = DOMAINS[0]
    intruder = Account.from_key(b"\x02" * 32)
    signed = sign_action(intruder, "fetch", {**CASES["fetch"][0]}, domains)
    claimed = SignedAction(signed.action, ACCOUNT.address, signed.message, signed.signature)
    with pytest.raises(InvalidSignature, match="signed by"):
        claimed.verify(domains)
    # The payload names another signer than the one who signed.
    named = sign_action(ACCOUNT, "fetch", {**CASES["fetch"][0], "grantee": OTHER}, domains)
    with pytest.raises(InvalidSignature, match="not the signer"):
        named.verify(domains)


def test_a_lower_case_actor_still_verifies() -> None:
    domains = DOMAINS[0]
    signed = sign_action(ACCOUNT, "fetch", CASES["fetch"][0], domains)
    lower = SignedAction(signed.action, signed.actor.lower(), signed.message, signed.signature)
    lower.verify(domains)


@settings(max_examples=150, deadline=None)
@given(
    dataset_id=st.integers(0, U256),
    purpose=st.text(max_size=300),
    category=st.text(max_size=40),
    basis=st.text(max_size=40),
    retention=st.integers(0, 2**32 - 1),
    location=st.text(max_size=12),
    days=st.integers(0, 2**32 - 1),
    uses=st.integers(0, 2**32 - 1),
    nonce=st.integers(0, U256),
    deadline=st.integers(0, U256),
    chain_id=st.integers(0, U256),
)
def test_random_requests_hash_as_eth_account_does(
    dataset_id: int,
    purpose: str,
    category: str,
    basis: str,
    retention: int,
    location: str,
    days: int,
    uses: int,
    nonce: int,
    deadline: int,
    chain_id: int,
) -> None:
    domains = dataclasses.replace(DOMAINS[0], chain_id=chain_id, access_ledger=OTHER)
    message = {
        "requester": ACCOUNT.address,
        "datasetId": dataset_id,
        "purpose": purpose,
        "purposeCategory": category,
        "legalBasis": basis,
        "retentionDays": retention,
        "processingLocation": location,
        "days": days,
        "maxUses": uses,
        **nd(nonce, deadline),
    }
    unsigned = SignedAction("request", ACCOUNT.address, message, b"")
    try:
        expected: bytes | None = reference_digest(unsigned, domains)
    except Exception:
        expected = None  # e.g. text eth_account cannot encode (lone surrogates)
    try:
        got: bytes | None = unsigned.digest(domains)
    except InvalidSignature:
        got = None
    assert got == expected
    encodable = all(
        not any(0xD800 <= ord(c) <= 0xDFFF for c in text)
        for text in (purpose, category, basis, location)
    )
    assert (got is not None) == encodable  # every well-formed message hashes (not None == None)


@settings(max_examples=60, deadline=None)
@given(
    parents=st.lists(st.integers(0, U256), max_size=20),
    content=st.binary(min_size=32, max_size=32),
    classification=st.integers(0, 255),
)
def test_random_registrations_hash_as_eth_account_does(
    parents: list[int], content: bytes, classification: int
) -> None:
    domains = DOMAINS[1]
    message = {
        "owner": ACCOUNT.address,
        "contentHash": "0x" + content.hex(),
        "metadataHash": "0x" + content[::-1].hex(),
        "classification": classification,
        "parents": parents,
        "previousVersion": len(parents),
        **nd(),
    }
    unsigned = SignedAction("register", ACCOUNT.address, message, b"")
    assert unsigned.digest(domains) == reference_digest(unsigned, domains)

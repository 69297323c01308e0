"""EIP-712 typed data: the two domains, every struct type, and a fast exact digest.

Two domain families (docs/protocol.md "Signed actions"):

- the **contract domain** ``{name: "DataRightsLedger", version: "1", chainId, verifyingContract:
  <contract>}`` for actions the contracts verify themselves (Onboard, Suspend, Reinstate,
  RotateKey, Register, Reassign, Grant, GrantApproval, Revoke, Fetch, DeliveryReceipt): the very
  signature the broker logs is the one the contract checks. The type strings
  here must match the contracts' TYPEHASH constants; the contract tests sign with them.
- the **broker domain** ``{name: "DataRightsLedger Broker", version: "1", chainId,
  verifyingContract: <FlowLog>}`` for actions only the broker checks and logs (RequestAccess,
  Deny, Rate): nothing on chain depends on them.

Verification runs on every write and over the whole log, so it does not go through
``eth_account.messages.encode_typed_data`` (general, pure Python, ~0.1 ms a message).
:func:`eip712_digest` hashes our fixed, flat struct types directly (type hashes and domain
separators computed once) and :func:`recover_address` uses libsecp256k1 (coincurve) under exactly
``eth_account``'s rules for signature bytes. The tests check both against ``eth_account``.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from coincurve import PublicKey
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from ledger.errors import InvalidSignature

CONTRACT_DOMAIN_NAME: Final = "DataRightsLedger"
BROKER_DOMAIN_NAME: Final = "DataRightsLedger Broker"
DOMAIN_VERSION: Final = "1"

Field = dict[str, str]

DOMAIN_TYPE: Final[list[Field]] = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_TERMS: Final[list[Field]] = [
    {"name": "datasetId", "type": "uint256"},
    {"name": "grantee", "type": "address"},
    {"name": "purposeHash", "type": "bytes32"},
    {"name": "expiresAt", "type": "uint64"},
    {"name": "maxUses", "type": "uint32"},
    {"name": "termsHash", "type": "bytes32"},
]
_ND: Final[list[Field]] = [
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

#: Struct types the contracts verify (contract domain). Register, Grant and Revoke use the
#: signer's sequential nonce in that contract; the others a random nonce the contract consumes.
CONTRACT_TYPES: Final[dict[str, list[Field]]] = {
    "Onboard": [
        {"name": "member", "type": "address"},
        {"name": "kind", "type": "uint8"},
        {"name": "name", "type": "string"},
        {"name": "keySuite", "type": "uint16"},
        {"name": "encryptionKey", "type": "bytes"},
        *_ND,
    ],
    "Suspend": [{"name": "member", "type": "address"}, *_ND],
    "Reinstate": [{"name": "member", "type": "address"}, *_ND],
    "RotateKey": [
        {"name": "member", "type": "address"},
        {"name": "keySuite", "type": "uint16"},
        {"name": "encryptionKey", "type": "bytes"},
        *_ND,
    ],
    "Register": [
        {"name": "owner", "type": "address"},
        {"name": "contentHash", "type": "bytes32"},
        {"name": "metadataHash", "type": "bytes32"},
        {"name": "classification", "type": "uint8"},
        {"name": "parents", "type": "uint256[]"},
        {"name": "previousVersion", "type": "uint256"},
        *_ND,
    ],
    "Reassign": [
        {"name": "datasetId", "type": "uint256"},
        {"name": "to", "type": "address"},
        {"name": "reasonHash", "type": "bytes32"},
        *_ND,
    ],
    "Grant": [*_TERMS, *_ND],
    "GrantApproval": [*_TERMS, {"name": "generation", "type": "uint32"}, *_ND],
    "Revoke": [
        {"name": "datasetId", "type": "uint256"},
        {"name": "grantee", "type": "address"},
        *_ND,
    ],
    "Fetch": [
        {"name": "grantee", "type": "address"},
        {"name": "datasetId", "type": "uint256"},
        *_ND,
    ],
    "DeliveryReceipt": [
        {"name": "consumer", "type": "address"},
        {"name": "datasetId", "type": "uint256"},
        {"name": "contentHash", "type": "bytes32"},
        {"name": "grantGeneration", "type": "uint32"},
        {"name": "fetchNonce", "type": "uint256"},
        *_ND,
    ],
}

#: Struct types the broker verifies and logs (broker domain): nothing on chain depends on them.
BROKER_TYPES: Final[dict[str, list[Field]]] = {
    "RequestAccess": [
        {"name": "requester", "type": "address"},
        {"name": "datasetId", "type": "uint256"},
        {"name": "purpose", "type": "string"},
        {"name": "purposeCategory", "type": "string"},
        {"name": "legalBasis", "type": "string"},
        {"name": "retentionDays", "type": "uint32"},
        {"name": "processingLocation", "type": "string"},
        {"name": "days", "type": "uint32"},
        {"name": "maxUses", "type": "uint32"},
        *_ND,
    ],
    "Deny": [
        {"name": "owner", "type": "address"},
        {"name": "requestId", "type": "uint256"},
        {"name": "reason", "type": "string"},
        *_ND,
    ],
    "Rate": [
        {"name": "rater", "type": "address"},
        {"name": "datasetId", "type": "uint256"},
        {"name": "score", "type": "uint8"},
        {"name": "comment", "type": "string"},
        *_ND,
    ],
    "QualityIssue": [
        {"name": "reporter", "type": "address"},
        {"name": "datasetId", "type": "uint256"},
        {"name": "fields", "type": "string"},
        {"name": "rows", "type": "string"},
        {"name": "problem", "type": "string"},
        *_ND,
    ],
    "IssueAnswer": [
        {"name": "owner", "type": "address"},
        {"name": "issueId", "type": "uint256"},
        {"name": "verdict", "type": "string"},
        {"name": "fixedIn", "type": "uint256"},
        {"name": "reason", "type": "string"},
        *_ND,
    ],
}


def struct_fields(primary: str) -> list[Field]:
    """The members of a struct type, in order (KeyError for an unknown type)."""
    if primary == "EIP712Domain":
        return DOMAIN_TYPE
    return BROKER_TYPES.get(primary) or CONTRACT_TYPES[primary]


def encode_type(primary: str) -> str:
    """EIP-712 ``encodeType``: ``Name(type1 name1,type2 name2,...)``."""
    return f"{primary}({','.join(f['type'] + ' ' + f['name'] for f in struct_fields(primary))})"


@dataclass(frozen=True)
class Domain:
    """One EIP-712 domain (every field of ``EIP712Domain`` is used)."""

    name: str
    version: str
    chain_id: int
    verifying_contract: str

    def as_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "chainId": self.chain_id,
            "verifyingContract": self.verifying_contract,
        }

    @property
    def separator(self) -> bytes:
        """``hashStruct(EIP712Domain)``."""
        return _domain_separator(self.name, self.version, self.chain_id, self.verifying_contract)


def contract_domain(chain_id: int, verifying_contract: str) -> Domain:
    """The domain of a contract-verified action."""
    return Domain(CONTRACT_DOMAIN_NAME, DOMAIN_VERSION, chain_id, verifying_contract)


def broker_domain(chain_id: int, flow_log: str) -> Domain:
    """The domain of a broker-verified action (verifying contract = the FlowLog)."""
    return Domain(BROKER_DOMAIN_NAME, DOMAIN_VERSION, chain_id, flow_log)


def typed_message(primary: str, message: dict[str, Any], domain: Domain) -> dict[str, Any]:
    """A complete EIP-712 structure (``eth_signTypedData_v4`` input) ready to sign or show."""
    return {
        "types": {"EIP712Domain": DOMAIN_TYPE, primary: struct_fields(primary)},
        "primaryType": primary,
        "domain": domain.as_json(),
        "message": message,
    }


def sign_typed(account: LocalAccount, full_message: dict[str, Any]) -> bytes:
    """65-byte signature ``r || s || v`` (v = 27/28) over an EIP-712 structure."""
    return bytes(account.sign_message(encode_typed_data(full_message=full_message)).signature)


def recover_typed(full_message: dict[str, Any], signature: bytes) -> str:
    """Checksummed address that signed an EIP-712 structure (reference path, eth_account)."""
    return str(
        Account.recover_message(encode_typed_data(full_message=full_message), signature=signature)
    )


# --------------------------------------------------------------------------------------------
# Strict JSON -> EIP-712 values, and a direct hashStruct of our flat types (no nested structs:
# every member is atomic, a string, bytes, or an array of atomic values).
# --------------------------------------------------------------------------------------------

SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_ADDRESS_RE: Final = re.compile(r"0x([0-9a-fA-F]{40})")
_HEX_RE: Final = re.compile(r"0x(?:[0-9a-fA-F]{2})*")
_ZERO12: Final = bytes(12)


def address_bytes(value: str) -> bytes:
    """The 20 bytes of an address written ``0x`` + 40 hex digits (any case); else ValueError."""
    match = _ADDRESS_RE.fullmatch(value)
    if match is None:
        raise InvalidSignature(f"an address is 0x and 40 hex digits, not {value!r}")
    return bytes.fromhex(match.group(1))


@functools.lru_cache(maxsize=4096)
def checksum(raw: bytes) -> str:
    """EIP-55 checksummed text of a 20-byte address (members sign again and again: cached)."""
    return str(to_checksum_address(raw))


@functools.lru_cache(maxsize=4096)
def checksum_text(address: str) -> str:
    """:func:`checksum` of an address as written (any case); ValueError if it is none. Every
    signed action names its actor: cached, as an EIP-55 checksum costs a Keccak hash."""
    return str(to_checksum_address(address))


def from_json(kind: str, value: Any) -> Any:
    """Coerce a JSON value to what EIP-712 encoding of ``kind`` expects (strictly).

    Integers are JSON numbers; ``bytes``/``bytesN`` are ``0x``-hex of the exact length;
    addresses are 40 hex digits with ``0x``. Anything else raises InvalidSignature.
    """
    if kind.endswith("[]"):
        if not isinstance(value, list):
            raise InvalidSignature(f"expected a list for {kind}")
        return [from_json(kind[:-2], v) for v in value]
    if kind.startswith("bytes"):
        if not isinstance(value, str) or not _HEX_RE.fullmatch(value):
            raise InvalidSignature(f"expected 0x and whole bytes of hex for {kind}")
        raw = bytes.fromhex(value[2:])
        if kind != "bytes" and len(raw) != int(kind[5:]):
            raise InvalidSignature(f"{kind} must be {kind[5:]} bytes")
        return raw
    if kind.startswith(("uint", "int")):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InvalidSignature(f"expected an integer for {kind}")
        bits = int(kind.lstrip("uint") or 256)
        if value < 0 or value >= 2**bits:
            raise InvalidSignature(f"{value} out of range for {kind}")
        return value
    if kind == "address":
        if not isinstance(value, str):
            raise InvalidSignature("expected an address")
        return checksum(address_bytes(value))
    if kind == "string":
        if not isinstance(value, str):
            raise InvalidSignature("expected a string")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise InvalidSignature("expected a boolean")
        return value
    raise InvalidSignature(f"unsupported type {kind}")


@functools.lru_cache(maxsize=64)
def type_hash(primary: str) -> bytes:
    """``keccak256(encodeType(primary))``."""
    return bytes(keccak(encode_type(primary).encode()))


def _encoder(kind: str) -> Callable[[Any], bytes]:
    """``encodeData`` of one member of type ``kind``, for a value already checked."""
    if kind.endswith("[]"):
        element = _encoder(kind[:-2])
        return lambda values: bytes(keccak(b"".join(element(v) for v in values)))
    if kind == "address":
        return lambda value: _ZERO12 + address_bytes(value)
    if kind.startswith("uint"):
        return lambda value: int(value).to_bytes(32, "big")
    if kind == "bool":
        return lambda value: (1 if value else 0).to_bytes(32, "big")
    if kind == "string":
        return lambda value: bytes(keccak(str(value).encode("utf-8")))
    if kind == "bytes":
        return lambda value: bytes(keccak(bytes(value)))
    if kind.startswith("bytes"):
        return lambda value: bytes(value).ljust(32, b"\x00")
    raise InvalidSignature(f"unsupported type {kind}")


@functools.lru_cache(maxsize=64)
def _struct_plan(primary: str) -> tuple[bytes, tuple[tuple[str, str, Callable[[Any], bytes]], ...]]:
    """Type hash and, per member in order, (name, type, encoder) of ``primary``."""
    fields = struct_fields(primary)
    return type_hash(primary), tuple((f["name"], f["type"], _encoder(f["type"])) for f in fields)


@functools.lru_cache(maxsize=256)
def _domain_separator(name: str, version: str, chain_id: int, verifying_contract: str) -> bytes:
    return bytes(
        keccak(
            type_hash("EIP712Domain")
            + keccak(name.encode())
            + keccak(version.encode())
            + chain_id.to_bytes(32, "big")
            + _ZERO12
            + address_bytes(verifying_contract)
        )
    )


def _coerce_for_hash(kind: str, value: Any) -> Any:
    """``from_json``'s checks, leaving addresses as text (``address_bytes`` parses them)."""
    if kind == "address":
        if not isinstance(value, str):
            raise InvalidSignature("expected an address")
        try:
            address_bytes(value)
        except ValueError:
            raise InvalidSignature(f"bad address {value!r}") from None
        return value
    if kind.endswith("[]") and kind[:-2] == "address":
        if not isinstance(value, list):
            raise InvalidSignature(f"expected a list for {kind}")
        return [_coerce_for_hash("address", v) for v in value]
    return from_json(kind, value)


def check_members(primary: str, message: dict[str, Any]) -> None:
    """Exactly the struct's members, no more, no fewer (InvalidSignature naming the difference)."""
    names = [f["name"] for f in struct_fields(primary)]
    if len(message) == len(names) and all(name in message for name in names):
        return
    missing = [n for n in names if n not in message]
    extra = sorted(set(message) - set(names))
    raise InvalidSignature(
        f"{primary} message must have exactly {names}"
        + (f"; missing {missing}" if missing else "")
        + (f"; unexpected {extra}" if extra else "")
    )


def hash_struct(primary: str, message: dict[str, Any]) -> bytes:
    """EIP-712 ``hashStruct(message)`` of JSON-form values, checked strictly."""
    type_digest, plan = _struct_plan(primary)
    check_members(primary, message)
    parts = [type_digest]
    for name, kind, encode in plan:
        parts.append(encode(_coerce_for_hash(kind, message[name])))
    return bytes(keccak(b"".join(parts)))


def eip712_digest(primary: str, message: dict[str, Any], domain_separator: bytes) -> bytes:
    """``keccak256(0x1901 || domainSeparator || hashStruct(message))`` for one of our types."""
    return bytes(keccak(b"\x19\x01" + domain_separator + hash_struct(primary, message)))


def recover_address(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte address whose key made ``signature`` over ``digest``.

    Accepts exactly what the contracts' ``ECDSA.recover`` (OpenZeppelin) accepts: 65 bytes ``r ||
    s || v`` with ``v`` 27 or 28, ``0 < r < n`` and ``0 < s <= n/2`` (low s). A signature is
    therefore the only valid one for its digest and key: nothing keyed on signature bytes can be
    doubled by flipping ``s``. Raises InvalidSignature otherwise, or when no key recovers.
    """
    if len(digest) != 32:
        raise InvalidSignature("the message hash must be exactly 32 bytes")
    if len(signature) != 65:
        raise InvalidSignature(f"a signature is 65 bytes, got {len(signature)}")
    v = signature[64]
    if v not in (27, 28):
        raise InvalidSignature(f"v {v} is invalid, must be 27 or 28")
    parity = v - 27
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if not 0 < r < SECP256K1_N:
        raise InvalidSignature("signature r is not in the curve's range")
    if not 0 < s <= SECP256K1_N // 2:
        raise InvalidSignature("signature s is not in the lower half of the curve order")
    try:
        key = PublicKey.from_signature_and_message(
            signature[:64] + bytes((parity,)), digest, hasher=None
        )
    except Exception:
        raise InvalidSignature("no public key recovers from this signature") from None
    return bytes(keccak(key.format(compressed=False)[1:]))[-20:]

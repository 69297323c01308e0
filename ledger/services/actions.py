"""Signed actions: the EIP-712 payloads members sign and the broker verifies, relays and logs.

Two families share one representation (:class:`SignedAction`):

- **relayed on chain** (``register``, ``grant``, ``revoke``) use the contracts' own typed data
  (domain = the verifying contract), so the very signature the broker logs is the one the
  contract checks. Their nonce is the signer's on-chain nonce.
- **broker actions** (``onboard``, ``suspend``, ``request``, ``deny``, ``fetch``, ``receipt``,
  ``rate``) use the broker domain (verifying contract = FlowLog of the deployment), a random
  256-bit nonce recorded in ``used_nonces``, and a deadline.

A signed action serialises to canonical JSON (sorted keys, bytes as 0x-hex): that text is the
flow-log leaf, so the log alone is enough to re-verify every signature.

Verification is on every write path and over the whole log in ``verify``, so it does not go
through ``eth_account.messages.encode_typed_data`` (general, pure Python, about 0.1 ms a
message). :func:`eip712_digest` hashes our fixed, flat struct types directly (type hashes and
domain separators computed once), and the signer is recovered with libsecp256k1 (coincurve)
under exactly ``eth_account``'s rules for the signature bytes (65 bytes, ``v`` in 0/1/27/28/35+,
``r`` and ``s`` below the curve order). The tests check the digest against ``eth_account``'s for
every action type and edge values. Signing (members' side) still uses ``eth_account``.
"""

from __future__ import annotations

import functools
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final, Literal

from coincurve import PublicKey
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from ledger.chain.typed_data import TYPES as CHAIN_TYPES
from ledger.chain.typed_data import domain as chain_domain
from ledger.errors import InvalidSignature

BROKER_DOMAIN_NAME: Final = "DataRightsLedger Broker"

ActionName = Literal[
    "onboard",
    "suspend",
    "register",
    "request",
    "grant",
    "deny",
    "revoke",
    "fetch",
    "receipt",
    "rate",
]

_ND = [{"name": "nonce", "type": "uint256"}, {"name": "deadline", "type": "uint256"}]
BROKER_TYPES: Final[dict[str, list[dict[str, str]]]] = {
    "Onboard": [
        {"name": "member", "type": "address"},
        {"name": "kind", "type": "string"},
        {"name": "name", "type": "string"},
        {"name": "keySuite", "type": "uint16"},
        {"name": "encryptionKey", "type": "bytes"},
        *_ND,
    ],
    "Suspend": [{"name": "member", "type": "address"}, *_ND],
    "RequestAccess": [
        {"name": "requester", "type": "address"},
        {"name": "datasetId", "type": "uint256"},
        {"name": "purpose", "type": "string"},
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
        *_ND,
    ],
    "Rate": [
        {"name": "rater", "type": "address"},
        {"name": "datasetId", "type": "uint256"},
        {"name": "score", "type": "uint8"},
        {"name": "comment", "type": "string"},
        *_ND,
    ],
}

#: action -> (primary type, field naming the signer, domain: "broker" or a contract name)
ACTIONS: Final[dict[str, tuple[str, str, str]]] = {
    "onboard": ("Onboard", "", "broker"),
    "suspend": ("Suspend", "", "broker"),
    "register": ("Register", "owner", "DataRegistry"),
    "request": ("RequestAccess", "requester", "broker"),
    "grant": ("Grant", "", "AccessLedger"),
    "deny": ("Deny", "owner", "broker"),
    "revoke": ("Revoke", "", "AccessLedger"),
    "fetch": ("Fetch", "grantee", "broker"),
    "receipt": ("DeliveryReceipt", "consumer", "broker"),
    "rate": ("Rate", "rater", "broker"),
}

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


@dataclass(frozen=True)
class Domains:
    """The EIP-712 domains of one deployment."""

    chain_id: int
    flow_log: str
    data_registry: str
    access_ledger: str

    def separator(self, action: str) -> bytes:
        """The EIP-712 domain separator ``hashStruct(EIP712Domain)`` of ``action``'s domain."""
        d = self.for_action(action)
        return _domain_separator(
            str(d["name"]), str(d["version"]), int(d["chainId"]), str(d["verifyingContract"])
        )

    def for_action(self, action: str) -> dict[str, Any]:
        where = ACTIONS[action][2]
        if where == "broker":
            return {
                "name": BROKER_DOMAIN_NAME,
                "version": "1",
                "chainId": self.chain_id,
                "verifyingContract": self.flow_log,
            }
        contract = self.data_registry if where == "DataRegistry" else self.access_ledger
        return chain_domain(self.chain_id, contract)


def _types(primary: str) -> list[dict[str, str]]:
    return BROKER_TYPES.get(primary) or CHAIN_TYPES[primary]


def _to_json(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [_to_json(v) for v in value]
    return value


def _from_json(kind: str, value: Any) -> Any:
    """Coerce a JSON value back to what EIP-712 encoding of ``kind`` expects (strictly)."""
    if kind.endswith("[]"):
        if not isinstance(value, list):
            raise InvalidSignature(f"expected a list for {kind}")
        return [_from_json(kind[:-2], v) for v in value]
    if kind.startswith("bytes"):
        if not isinstance(value, str) or not value.startswith("0x"):
            raise InvalidSignature(f"expected 0x-hex for {kind}")
        try:
            raw = bytes.fromhex(value[2:])
        except ValueError:
            raise InvalidSignature(f"bad hex for {kind}") from None
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
        try:
            return to_checksum_address(value)
        except ValueError:
            raise InvalidSignature(f"bad address {value!r}") from None
    if kind == "string":
        if not isinstance(value, str):
            raise InvalidSignature("expected a string")
        return value
    if kind == "bool":
        if not isinstance(value, bool):
            raise InvalidSignature("expected a boolean")
        return value
    raise InvalidSignature(f"unsupported type {kind}")


# --------------------------------------------------------------------------------------------
# EIP-712 hashing of our fixed types (no nested structs: every member is atomic, a string,
# bytes, or an array of atomic values), checked against eth_account by the tests.
# --------------------------------------------------------------------------------------------

_SECP256K1_N: Final = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_ADDRESS_RE: Final = re.compile(r"(0[xX])?([0-9a-fA-F]{40})")
_ZERO12: Final = bytes(12)


def _address_bytes(value: str) -> bytes:
    """The 20 bytes of an address accepted exactly as ``to_checksum_address`` accepts it."""
    match = _ADDRESS_RE.fullmatch(value)
    if match is None:  # rare shapes: let eth_utils decide, and raise as it does
        return bytes.fromhex(to_checksum_address(value)[2:])
    return bytes.fromhex(match.group(2))


@functools.lru_cache(maxsize=4096)
def _checksum(raw: bytes) -> str:
    """EIP-55 checksummed text of a 20-byte address (members sign again and again: cached)."""
    return str(to_checksum_address(raw))


def _encode_type(primary: str, fields: list[dict[str, str]]) -> bytes:
    return f"{primary}({','.join(f['type'] + ' ' + f['name'] for f in fields)})".encode()


@functools.lru_cache(maxsize=64)
def _type_hash(primary: str) -> bytes:
    fields = _DOMAIN_TYPE if primary == "EIP712Domain" else _types(primary)
    return bytes(keccak(_encode_type(primary, fields)))


def _encoder(kind: str) -> Callable[[Any], bytes]:
    """``encodeData`` of one member of type ``kind``, for a value already checked by _from_json."""
    if kind.endswith("[]"):
        element = _encoder(kind[:-2])
        return lambda values: bytes(keccak(b"".join(element(v) for v in values)))
    if kind == "address":
        return lambda value: _ZERO12 + _address_bytes(value)
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
    fields = _types(primary)
    return _type_hash(primary), tuple((f["name"], f["type"], _encoder(f["type"])) for f in fields)


@functools.lru_cache(maxsize=256)
def _domain_separator(name: str, version: str, chain_id: int, verifying_contract: str) -> bytes:
    return bytes(
        keccak(
            _type_hash("EIP712Domain")
            + keccak(name.encode())
            + keccak(version.encode())
            + chain_id.to_bytes(32, "big")
            + _ZERO12
            + _address_bytes(verifying_contract)
        )
    )


def _coerce_for_hash(kind: str, value: Any) -> Any:
    """``_from_json``'s checks, leaving addresses as text (``_address_bytes`` parses them)."""
    if kind == "address":
        if not isinstance(value, str):
            raise InvalidSignature("expected an address")
        try:
            _address_bytes(value)
        except ValueError:
            raise InvalidSignature(f"bad address {value!r}") from None
        return value
    if kind.endswith("[]") and kind[:-2] == "address":
        if not isinstance(value, list):
            raise InvalidSignature(f"expected a list for {kind}")
        return [_coerce_for_hash("address", v) for v in value]
    return _from_json(kind, value)


def eip712_digest(primary: str, message: dict[str, Any], domain_separator: bytes) -> bytes:
    """``keccak256(0x1901 || domainSeparator || hashStruct(message))`` for one of our types.

    ``message`` holds JSON-form values (as in ``SignedAction.message``): they are checked
    as strictly as for ``SignedAction.typed`` (InvalidSignature otherwise).
    """
    type_hash, plan = _struct_plan(primary)
    if len(message) != len(plan) or any(name not in message for name, _, _ in plan):
        raise InvalidSignature(
            f"{primary} message must have exactly {[name for name, _, _ in plan]}"
        )
    parts = [type_hash]
    for name, kind, encode in plan:
        parts.append(encode(_coerce_for_hash(kind, message[name])))
    return bytes(keccak(b"\x19\x01" + domain_separator + keccak(b"".join(parts))))


def recover_address(digest: bytes, signature: bytes) -> bytes:
    """The 20-byte address whose key made ``signature`` over ``digest``.

    Accepts exactly what ``eth_account.Account._recover_hash`` accepts: 65 bytes ``r || s ||
    v`` with ``v`` in {0, 1, 27, 28} or an EIP-155 value (35 and up), ``r`` and ``s`` below
    the curve order. Raises ValueError otherwise, or when no key recovers.
    """
    if len(digest) != 32:
        raise ValueError("the message hash must be exactly 32 bytes")
    if len(signature) != 65:
        raise ValueError(f"a signature is 65 bytes, got {len(signature)}")
    v = signature[64]
    if v in (0, 1):
        parity = v
    elif v in (27, 28):
        parity = v - 27
    elif v >= 35:
        parity = (v - 35) % 2
    else:
        raise ValueError(f"v {v} is invalid, must be one of: 0, 1, 27, 28, 35+")
    r = int.from_bytes(signature[:32], "big")
    s = int.from_bytes(signature[32:64], "big")
    if r >= _SECP256K1_N or s >= _SECP256K1_N:
        raise ValueError("signature r or s is not below the curve order")
    key = PublicKey.from_signature_and_message(
        signature[:64] + bytes((parity,)), digest, hasher=None
    )
    return bytes(keccak(key.format(compressed=False)[1:]))[-20:]


@dataclass(frozen=True)
class SignedAction:
    """An action, its typed message (JSON form), the actor and the signature."""

    action: str
    actor: str
    message: dict[str, Any]
    signature: bytes

    @property
    def primary(self) -> str:
        return ACTIONS[self.action][0]

    def typed(self, domains: Domains) -> dict[str, Any]:
        """The full EIP-712 structure with values coerced for encoding."""
        fields = _types(self.primary)
        names = [f["name"] for f in fields]
        if sorted(names) != sorted(self.message):
            raise InvalidSignature(f"{self.action} message must have exactly {names}")
        message = {f["name"]: _from_json(f["type"], self.message[f["name"]]) for f in fields}
        return {
            "types": {"EIP712Domain": _DOMAIN_TYPE, self.primary: fields},
            "primaryType": self.primary,
            "domain": domains.for_action(self.action),
            "message": message,
        }

    def digest(self, domains: Domains) -> bytes:
        """The EIP-712 hash the actor signed (raises InvalidSignature if malformed)."""
        try:
            return eip712_digest(self.primary, self.message, domains.separator(self.action))
        except InvalidSignature:
            raise
        except Exception as exc:
            raise InvalidSignature(f"cannot hash the typed message: {exc}") from None

    def _signer_bytes(self, domains: Domains) -> bytes:
        digest = self.digest(domains)
        try:
            return recover_address(digest, self.signature)
        except Exception as exc:
            raise InvalidSignature(f"cannot recover signer: {exc}") from None

    def signer(self, domains: Domains) -> str:
        """Recover the signing address (raises InvalidSignature on malformed input)."""
        return _checksum(self._signer_bytes(domains))

    def verify(self, domains: Domains) -> None:
        """Check the signature recovers to ``actor`` and, where named, the payload's signer."""
        raw = self._signer_bytes(domains)
        signer = _checksum(raw)
        if signer != self.actor and signer != to_checksum_address(self.actor):
            raise InvalidSignature(f"{self.action} signed by {signer}, not by {self.actor}")
        field = ACTIONS[self.action][1]
        # The digest already checked the field is an address; compare its 20 bytes.
        if field and _address_bytes(str(self.message[field])) != raw:
            raise InvalidSignature(f"{self.action}: {field} is not the signer")

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action,
            "actor": self.actor,
            "message": self.message,
            "signature": "0x" + self.signature.hex(),
        }

    @classmethod
    def from_json(cls, data: Any) -> SignedAction:
        """Parse the JSON form; malformed input raises InvalidSignature."""
        try:
            action = str(data["action"])
            if action not in ACTIONS:
                raise InvalidSignature(f"unknown action {action!r}")
            sig = str(data["signature"])
            return cls(
                action=action,
                actor=to_checksum_address(str(data["actor"])),
                message=dict(data["message"]),
                signature=bytes.fromhex(sig[2:] if sig.startswith("0x") else sig),
            )
        except InvalidSignature:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidSignature(f"malformed signed action: {exc}") from None


def sign_action(
    account: LocalAccount, action: ActionName, message: dict[str, Any], domains: Domains
) -> SignedAction:
    """Sign an action's message (JSON-form values: bytes may be given as bytes)."""
    as_json = {k: _to_json(v) for k, v in message.items()}
    unsigned = SignedAction(action, account.address, as_json, b"")
    encoded = encode_typed_data(full_message=unsigned.typed(domains))
    signature = bytes(account.sign_message(encoded).signature)
    return SignedAction(action, account.address, as_json, signature)


def new_nonce() -> int:
    """A random 256-bit nonce for broker actions."""
    return secrets.randbits(256)


def canonical(data: Any) -> bytes:
    """Canonical JSON bytes: what the flow log hashes."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

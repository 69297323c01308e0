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
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any, Final, Literal

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount
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

    def signer(self, domains: Domains) -> str:
        """Recover the signing address (raises InvalidSignature on malformed input)."""
        try:
            encoded = encode_typed_data(full_message=self.typed(domains))
            return str(Account.recover_message(encoded, signature=self.signature))
        except InvalidSignature:
            raise
        except Exception as exc:
            raise InvalidSignature(f"cannot recover signer: {exc}") from None

    def verify(self, domains: Domains) -> None:
        """Check the signature recovers to ``actor`` and, where named, the payload's signer."""
        signer = self.signer(domains)
        if signer != to_checksum_address(self.actor):
            raise InvalidSignature(f"{self.action} signed by {signer}, not by {self.actor}")
        field = ACTIONS[self.action][1]
        if field and to_checksum_address(str(self.message[field])) != signer:
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

"""Signed actions: one typed spec per action, the signed JSON form, and the message builders.

Every state change is an EIP-712 message signed by its actor (docs/protocol.md "Signed
actions"). Two families share one representation, :class:`SignedAction`:

- **contract actions** use the domain of the contract that checks them, so the broker relays
  the very signature it logs and the chain, not the broker, decides whether it is valid.
  ``register``, ``grant`` and ``revoke`` carry the signer's sequential nonce in that contract;
  the others (``onboard``, ``suspend``, ``reinstate``, ``rotate_key``, ``reassign``,
  ``approval``, ``fetch``, ``receipt``) a random 256-bit nonce the contract consumes, so that
  concurrent fetches and receipts of one member need no ordering.
- **broker actions** (``request``, ``deny``, ``rate``, ``issue``, ``answer``) use the broker
  domain and a random nonce recorded by the broker: nothing on chain depends on them.

Actions whose signer is not named in the message (``onboard``, ``suspend``, ``reinstate``,
``reassign``, ``approval``) are the operator's: the contract requires the signer to hold ADMIN.

The JSON form ``{action, actor, message, signature}`` is what travels and what the flow log
stores (canonical JSON): the log alone is enough to re-verify every signature.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from eth_account.signers.local import LocalAccount

from ledger.errors import InvalidSignature
from ledger.protocol.codes import ErrorCode
from ledger.protocol.eip712 import (
    Domain,
    address_bytes,
    broker_domain,
    check_members,
    checksum,
    checksum_text,
    contract_domain,
    eip712_digest,
    from_json,
    recover_address,
    sign_typed,
    struct_fields,
    typed_message,
)
from ledger.protocol.limits import DEFAULT_DEADLINE_SECONDS, MIN_BROKER_NONCE

ActionName = Literal[
    "onboard",
    "suspend",
    "reinstate",
    "rotate_key",
    "register",
    "reassign",
    "request",
    "grant",
    "approval",
    "deny",
    "revoke",
    "fetch",
    "receipt",
    "rate",
    "issue",
    "answer",
]
ACTION_NAMES: Final[tuple[ActionName, ...]] = get_args(ActionName)
DomainName = Literal["broker", "MemberRegistry", "DataRegistry", "AccessLedger", "SharingCredits"]

#: Actions that carry the signer's sequential nonce in their contract (OpenZeppelin Nonces).
SEQUENTIAL_NONCE: Final = frozenset({"register", "grant", "revoke"})


@dataclass(frozen=True)
class ActionSpec:
    """What one action is: its EIP-712 type, the member naming the signer, its domain."""

    name: ActionName
    primary: str
    signer_field: str  # "" when the signer is not named in the message (operator actions)
    domain: DomainName

    @property
    def on_chain(self) -> bool:
        """Verified by a contract rather than by the broker alone."""
        return self.domain != "broker"

    @property
    def sequential_nonce(self) -> bool:
        """The nonce is the signer's next nonce in the contract (else random, >= 2**64)."""
        return self.name in SEQUENTIAL_NONCE

    @property
    def fields(self) -> list[dict[str, str]]:
        return struct_fields(self.primary)


ACTIONS: Final[dict[str, ActionSpec]] = {
    spec.name: spec
    for spec in (
        ActionSpec("onboard", "Onboard", "", "MemberRegistry"),
        ActionSpec("suspend", "Suspend", "", "MemberRegistry"),
        ActionSpec("reinstate", "Reinstate", "", "MemberRegistry"),
        ActionSpec("rotate_key", "RotateKey", "member", "MemberRegistry"),
        ActionSpec("register", "Register", "owner", "DataRegistry"),
        ActionSpec("reassign", "Reassign", "", "DataRegistry"),
        ActionSpec("request", "RequestAccess", "requester", "broker"),
        ActionSpec("grant", "Grant", "", "AccessLedger"),
        ActionSpec("approval", "GrantApproval", "", "AccessLedger"),
        ActionSpec("deny", "Deny", "owner", "broker"),
        ActionSpec("revoke", "Revoke", "", "AccessLedger"),
        ActionSpec("fetch", "Fetch", "grantee", "AccessLedger"),
        ActionSpec("receipt", "DeliveryReceipt", "consumer", "SharingCredits"),
        ActionSpec("rate", "Rate", "rater", "broker"),
        ActionSpec("issue", "QualityIssue", "reporter", "broker"),
        ActionSpec("answer", "IssueAnswer", "owner", "broker"),
    )
}


@dataclass(frozen=True)
class Domains:
    """The EIP-712 domains of one deployment (chain id and the verifying contracts)."""

    chain_id: int
    flow_log: str
    member_registry: str
    data_registry: str
    access_ledger: str
    sharing_credits: str

    def contract(self, where: DomainName) -> str:
        """The verifying contract of a domain (FlowLog for the broker domain)."""
        return {
            "broker": self.flow_log,
            "MemberRegistry": self.member_registry,
            "DataRegistry": self.data_registry,
            "AccessLedger": self.access_ledger,
            "SharingCredits": self.sharing_credits,
        }[where]

    def for_action(self, action: str) -> Domain:
        where = ACTIONS[action].domain
        if where == "broker":
            return broker_domain(self.chain_id, self.flow_log)
        return contract_domain(self.chain_id, self.contract(where))

    def separator(self, action: str) -> bytes:
        """The EIP-712 domain separator of ``action``'s domain."""
        return self.for_action(action).separator

    def as_json(self) -> dict[str, dict[str, Any]]:
        """Every domain by name: ``broker`` and one per verifying contract."""
        out = {"broker": broker_domain(self.chain_id, self.flow_log).as_json()}
        for where in ("MemberRegistry", "DataRegistry", "AccessLedger", "SharingCredits"):
            out[where] = contract_domain(self.chain_id, self.contract(where)).as_json()
        return out


def to_json_value(value: Any) -> Any:
    """JSON form of a message value: bytes as ``0x``-hex, tuples as lists."""
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    return value


@dataclass(frozen=True)
class SignedAction:
    """An action, its typed message (JSON form), the actor and the signature."""

    action: str
    actor: str
    message: dict[str, Any]
    signature: bytes

    @property
    def spec(self) -> ActionSpec:
        return ACTIONS[self.action]

    @property
    def primary(self) -> str:
        return ACTIONS[self.action].primary

    def typed(self, domains: Domains) -> dict[str, Any]:
        """The full EIP-712 structure with values coerced for encoding."""
        fields = struct_fields(self.primary)
        try:
            check_members(self.primary, self.message)
        except InvalidSignature as exc:
            raise InvalidSignature(
                f"{self.action}: {exc.message}", code=ErrorCode.MALFORMED_ACTION
            ) from None
        message = {f["name"]: from_json(f["type"], self.message[f["name"]]) for f in fields}
        return typed_message(self.primary, message, domains.for_action(self.action))

    def digest(self, domains: Domains) -> bytes:
        """The EIP-712 hash the actor signed (raises InvalidSignature if malformed)."""
        try:
            return eip712_digest(self.primary, self.message, domains.separator(self.action))
        except InvalidSignature as exc:
            raise InvalidSignature(
                f"{self.action}: {exc.message}", code=ErrorCode.MALFORMED_ACTION
            ) from None
        except Exception as exc:  # e.g. a lone surrogate that UTF-8 cannot encode
            raise InvalidSignature(
                f"{self.action}: cannot hash the typed message: {exc}",
                code=ErrorCode.MALFORMED_ACTION,
            ) from None

    def _signer_bytes(self, domains: Domains) -> bytes:
        return recover_address(self.digest(domains), self.signature)

    def signer(self, domains: Domains) -> str:
        """Recover the signing address (raises InvalidSignature on malformed input)."""
        return checksum(self._signer_bytes(domains))

    def verify(self, domains: Domains) -> None:
        """Check the signature recovers to ``actor`` and, where named, the message's signer."""
        raw = self._signer_bytes(domains)
        signer = checksum(raw)
        if signer != self.actor and signer != checksum_text(self.actor):
            raise InvalidSignature(f"{self.action} signed by {signer}, not by {self.actor}")
        field = self.spec.signer_field
        # The digest already checked the field is an address; compare its 20 bytes.
        if field and address_bytes(str(self.message[field])) != raw:
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
        """Parse the JSON form; malformed input raises InvalidSignature (malformed_action)."""
        try:
            action = str(data["action"])
            if action not in ACTIONS:
                raise InvalidSignature(
                    f"unknown action {action!r}", code=ErrorCode.MALFORMED_ACTION
                )
            sig = str(data["signature"])
            return cls(
                action=action,
                actor=checksum_text(str(data["actor"])),
                message=dict(data["message"]),
                signature=bytes.fromhex(sig[2:] if sig.startswith("0x") else sig),
            )
        except InvalidSignature:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidSignature(
                f"malformed signed action: {exc}", code=ErrorCode.MALFORMED_ACTION
            ) from None


#: The standard request form a RequestAccess is signed with when the caller names none:
#: every member ``unspecified`` and no retention beyond the grant (docs/protocol.md).
UNSPECIFIED_FORM: Final[dict[str, Any]] = {
    "purposeCategory": "unspecified",
    "legalBasis": "unspecified",
    "retentionDays": 0,
    "processingLocation": "unspecified",
}


def sign_action(
    account: LocalAccount, action: ActionName, message: dict[str, Any], domains: Domains
) -> SignedAction:
    """Sign an action's message (JSON-form values; bytes may be given as bytes).

    A ``request`` without the standard form's members is signed with :data:`UNSPECIFIED_FORM`
    (what the owner and regulators then see); the signature covers whatever is signed.
    """
    if action == "request":
        message = {**UNSPECIFIED_FORM, **message}
    as_json = {k: to_json_value(v) for k, v in message.items()}
    unsigned = SignedAction(action, account.address, as_json, b"")
    signature = sign_typed(account, unsigned.typed(domains))
    return SignedAction(action, account.address, as_json, signature)


def new_nonce() -> int:
    """A random 256-bit nonce for broker actions (re-drawn in the 2**-192 case below the floor)."""
    while (nonce := secrets.randbits(256)) < MIN_BROKER_NONCE:
        pass
    return nonce


def default_deadline(now: float | None = None) -> int:
    return int(time.time() if now is None else now) + DEFAULT_DEADLINE_SECONDS

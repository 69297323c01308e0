"""Signed actions: one typed spec per action, the signed JSON form, and the message builders.

Every state change is an EIP-712 message signed by its actor (docs/protocol.md "Signed
actions"). Two families share one representation, :class:`SignedAction`:

- **contract actions** (``register``, ``grant``, ``revoke``) use the contract domain; their nonce
  is the signer's nonce in that contract, so the broker can relay the very signature it logs.
- **broker actions** (``onboard``, ``suspend``, ``request``, ``deny``, ``fetch``, ``receipt``,
  ``rate``) use the broker domain, a random 256-bit nonce (single use, recorded by the broker)
  and a deadline.

The JSON form ``{action, actor, message, signature}`` is what travels and what the flow log
stores (canonical JSON): the log alone is enough to re-verify every signature.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass
from typing import Any, Final, Literal, get_args

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from ledger.errors import ExpiredDeadline, InvalidInput, InvalidSignature
from ledger.protocol.codes import ErrorCode
from ledger.protocol.eip712 import (
    Domain,
    address_bytes,
    broker_domain,
    checksum,
    contract_domain,
    eip712_digest,
    from_json,
    recover_address,
    sign_typed,
    struct_fields,
    typed_message,
)
from ledger.types import Address, Classification, classification_code

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
ACTION_NAMES: Final[tuple[ActionName, ...]] = get_args(ActionName)
DomainName = Literal["broker", "DataRegistry", "AccessLedger"]


@dataclass(frozen=True)
class ActionSpec:
    """What one action is: its EIP-712 type, the member naming the signer, its domain."""

    name: ActionName
    primary: str
    signer_field: str  # "" when the signer is not named in the message (operator actions)
    domain: DomainName

    @property
    def on_chain(self) -> bool:
        """Verified by a contract (contract nonce) rather than by the broker (random nonce)."""
        return self.domain != "broker"

    @property
    def fields(self) -> list[dict[str, str]]:
        return struct_fields(self.primary)


ACTIONS: Final[dict[str, ActionSpec]] = {
    spec.name: spec
    for spec in (
        ActionSpec("onboard", "Onboard", "", "broker"),
        ActionSpec("suspend", "Suspend", "", "broker"),
        ActionSpec("register", "Register", "owner", "DataRegistry"),
        ActionSpec("request", "RequestAccess", "requester", "broker"),
        ActionSpec("grant", "Grant", "", "AccessLedger"),
        ActionSpec("deny", "Deny", "owner", "broker"),
        ActionSpec("revoke", "Revoke", "", "AccessLedger"),
        ActionSpec("fetch", "Fetch", "grantee", "broker"),
        ActionSpec("receipt", "DeliveryReceipt", "consumer", "broker"),
        ActionSpec("rate", "Rate", "rater", "broker"),
    )
}

# -- limits every implementation must respect (docs/protocol.md "Limits") ----------------------

#: A signed action's deadline may be at most this far ahead of the broker's clock ...
MAX_DEADLINE_AHEAD: Final = 24 * 3600
#: ... plus this much tolerance for clocks that differ.
DEADLINE_TOLERANCE: Final = 3600
#: Deadline the SDK puts on what it signs.
DEFAULT_DEADLINE_SECONDS: Final = 15 * 60
#: Broker-action nonces are random 256-bit integers; one below this was not drawn at random
#: (a uniform 256-bit draw falls below 2**64 with probability 2**-192).
MIN_BROKER_NONCE: Final = 2**64
PURPOSE_CHARS: Final = (10, 2000)
REQUEST_DAYS: Final = (1, 3650)
REQUEST_USES: Final = (1, 1_000_000)
MAX_REASON_CHARS: Final = 2000
MAX_COMMENT_CHARS: Final = 2000
MAX_NAME_CHARS: Final = 200
SCORES: Final = (1, 5)
MAX_PARENTS: Final = 32


@dataclass(frozen=True)
class Domains:
    """The EIP-712 domains of one deployment (chain id and the verifying contracts)."""

    chain_id: int
    flow_log: str
    data_registry: str
    access_ledger: str

    def for_action(self, action: str) -> Domain:
        where = ACTIONS[action].domain
        if where == "broker":
            return broker_domain(self.chain_id, self.flow_log)
        contract = self.data_registry if where == "DataRegistry" else self.access_ledger
        return contract_domain(self.chain_id, contract)

    def separator(self, action: str) -> bytes:
        """The EIP-712 domain separator of ``action``'s domain."""
        return self.for_action(action).separator

    def as_json(self) -> dict[str, dict[str, Any]]:
        """Every domain by name: ``broker``, ``DataRegistry``, ``AccessLedger``."""
        return {
            "broker": broker_domain(self.chain_id, self.flow_log).as_json(),
            "DataRegistry": contract_domain(self.chain_id, self.data_registry).as_json(),
            "AccessLedger": contract_domain(self.chain_id, self.access_ledger).as_json(),
        }


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
        _check_members(self.action, self.primary, self.message)
        message = {f["name"]: from_json(f["type"], self.message[f["name"]]) for f in fields}
        return typed_message(self.primary, message, domains.for_action(self.action))

    def digest(self, domains: Domains) -> bytes:
        """The EIP-712 hash the actor signed (raises InvalidSignature if malformed)."""
        _check_members(self.action, self.primary, self.message)
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
        if signer != self.actor and signer != to_checksum_address(self.actor):
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
                actor=to_checksum_address(str(data["actor"])),
                message=dict(data["message"]),
                signature=bytes.fromhex(sig[2:] if sig.startswith("0x") else sig),
            )
        except InvalidSignature:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidSignature(
                f"malformed signed action: {exc}", code=ErrorCode.MALFORMED_ACTION
            ) from None


def _check_members(action: str, primary: str, message: dict[str, Any]) -> None:
    names = [f["name"] for f in struct_fields(primary)]
    if set(names) != set(message) or len(names) != len(message):
        missing = [n for n in names if n not in message]
        extra = sorted(set(message) - set(names))
        raise InvalidSignature(
            f"{action} ({primary}) message must have exactly {names}"
            + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else ""),
            code=ErrorCode.MALFORMED_ACTION,
        )


def sign_action(
    account: LocalAccount, action: ActionName, message: dict[str, Any], domains: Domains
) -> SignedAction:
    """Sign an action's message (JSON-form values; bytes may be given as bytes)."""
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


def check_timing(signed: SignedAction, now: int) -> None:
    """Deadline in the future and not too far ahead; broker nonces drawn at random."""
    deadline = signed.message.get("deadline")
    if not isinstance(deadline, int) or deadline < now:
        raise ExpiredDeadline(f"{signed.action}: deadline {deadline} has passed")
    if deadline > now + MAX_DEADLINE_AHEAD + DEADLINE_TOLERANCE:
        raise ExpiredDeadline(
            f"{signed.action}: deadline more than 24 h ahead", code=ErrorCode.DEADLINE_TOO_FAR
        )
    if not signed.spec.on_chain:
        nonce = signed.message.get("nonce")
        if not isinstance(nonce, int) or nonce < MIN_BROKER_NONCE:
            raise InvalidSignature(
                f"{signed.action}: the nonce must be a random 256-bit integer (>= 2**64)",
                code=ErrorCode.WEAK_NONCE,
            )


def _text(message: dict[str, Any], name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string", code=ErrorCode.INVALID_FIELD)
    return value


def _within(value: Any, bounds: tuple[int, int], name: str) -> int:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not (bounds[0] <= value <= bounds[1])
    ):
        raise InvalidInput(
            f"{name} must be {bounds[0]} to {bounds[1]}", code=ErrorCode.INVALID_FIELD
        )
    return value


def check_limits(signed: SignedAction) -> None:
    """The protocol's limits on an action's fields (InvalidInput ``invalid_field``)."""
    msg = signed.message
    if signed.action == "request":
        purpose = _text(msg, "purpose").strip()
        if not PURPOSE_CHARS[0] <= len(purpose) <= PURPOSE_CHARS[1]:
            raise InvalidInput(
                f"purpose must be {PURPOSE_CHARS[0]} to {PURPOSE_CHARS[1]} characters",
                code=ErrorCode.INVALID_FIELD,
            )
        _within(msg.get("days"), REQUEST_DAYS, "days")
        _within(msg.get("maxUses"), REQUEST_USES, "maxUses")
    elif signed.action == "deny":
        if len(_text(msg, "reason")) > MAX_REASON_CHARS:
            raise InvalidInput(
                f"reason longer than {MAX_REASON_CHARS} characters", code=ErrorCode.INVALID_FIELD
            )
    elif signed.action == "rate":
        _within(msg.get("score"), SCORES, "score")
        if len(_text(msg, "comment")) > MAX_COMMENT_CHARS:
            raise InvalidInput(
                f"comment longer than {MAX_COMMENT_CHARS} characters",
                code=ErrorCode.INVALID_FIELD,
            )
    elif signed.action == "onboard":
        if not 1 <= len(_text(msg, "name").strip()) <= MAX_NAME_CHARS:
            raise InvalidInput(
                f"name must be 1 to {MAX_NAME_CHARS} characters", code=ErrorCode.INVALID_FIELD
            )
    elif signed.action == "register":
        parents = msg.get("parents")
        if isinstance(parents, list) and len(parents) > MAX_PARENTS:
            raise InvalidInput(f"at most {MAX_PARENTS} parents", code=ErrorCode.INVALID_FIELD)


# -- what the contracts take, and the messages that sign it --------------------------------------


@dataclass(frozen=True)
class Registration:
    """What an owner registers (and signs when relayed)."""

    content_hash: bytes
    metadata_hash: bytes
    classification: Classification
    parents: tuple[int, ...] = ()
    previous_version: int = 0


@dataclass(frozen=True)
class GrantTerms:
    """The terms an owner grants."""

    dataset_id: int
    grantee: Address
    purpose_hash: bytes
    expires_at: int
    max_uses: int
    terms_hash: bytes

    def as_tuple(self) -> tuple[int, str, bytes, int, int, bytes]:
        return (
            self.dataset_id,
            self.grantee,
            self.purpose_hash,
            self.expires_at,
            self.max_uses,
            self.terms_hash,
        )


def register_message(
    owner: str, registration: Registration, *, nonce: int, deadline: int
) -> dict[str, Any]:
    return {
        "owner": owner,
        "contentHash": registration.content_hash,
        "metadataHash": registration.metadata_hash,
        "classification": classification_code(registration.classification),
        "parents": list(registration.parents),
        "previousVersion": registration.previous_version,
        "nonce": nonce,
        "deadline": deadline,
    }


def terms_message(terms: GrantTerms) -> dict[str, Any]:
    return {
        "datasetId": terms.dataset_id,
        "grantee": terms.grantee,
        "purposeHash": terms.purpose_hash,
        "expiresAt": terms.expires_at,
        "maxUses": terms.max_uses,
        "termsHash": terms.terms_hash,
    }


def grant_message(terms: GrantTerms, *, nonce: int, deadline: int) -> dict[str, Any]:
    return {**terms_message(terms), "nonce": nonce, "deadline": deadline}


def revoke_message(dataset_id: int, grantee: str, *, nonce: int, deadline: int) -> dict[str, Any]:
    return {"datasetId": dataset_id, "grantee": grantee, "nonce": nonce, "deadline": deadline}


def typed_register(
    domains: Domains, owner: str, registration: Registration, *, nonce: int, deadline: int
) -> dict[str, Any]:
    """The full EIP-712 structure an owner signs to have a registration relayed."""
    message = register_message(
        to_checksum_address(owner), registration, nonce=nonce, deadline=deadline
    )
    return typed_message("Register", message, domains.for_action("register"))


def typed_grant(
    domains: Domains, terms: GrantTerms, *, nonce: int, deadline: int
) -> dict[str, Any]:
    """The full EIP-712 structure an owner signs to have a grant relayed."""
    message = grant_message(terms, nonce=nonce, deadline=deadline)
    return typed_message("Grant", message, domains.for_action("grant"))


def typed_approval(domains: Domains, terms: GrantTerms) -> dict[str, Any]:
    """The EIP-712 structure ADMIN co-signs for a SENSITIVE grant to an enterprise."""
    return typed_message("GrantApproval", terms_message(terms), domains.for_action("grant"))


def typed_revoke(
    domains: Domains, dataset_id: int, grantee: str, *, nonce: int, deadline: int
) -> dict[str, Any]:
    """The full EIP-712 structure an owner signs to have a revocation relayed."""
    message = revoke_message(
        dataset_id, to_checksum_address(grantee), nonce=nonce, deadline=deadline
    )
    return typed_message("Revoke", message, domains.for_action("revoke"))

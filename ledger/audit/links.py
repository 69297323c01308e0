"""Which chain event each signed action causes, and the key that pairs the two.

:data:`LINKS` is the one table: a row per (action, event) pair, naming for each field of the key
where the record takes it (a message member, the actor, or the action's EIP-712 digest) and
which event argument must hold the same value. A new action that leaves a trace on chain is one
more row. A record matches the first event (oldest first) of any of its action's rows with an
equal key; each event explains one record.

``due`` says whether the event exists by the time the record is logged (the broker relays the
signature on chain, then logs it). A delivery receipt is credited later, at anchoring, and may
be withheld: until then it is pending, not a problem.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from eth_hash.auto import keccak

from ledger.protocol.actions import Domains, SignedAction

#: Record-side sources that are not message members.
DIGEST: Final = "@digest"  # the action's EIP-712 digest (a receipt's id on chain)
ACTOR: Final = "@actor"  # the address that signed the action

Norm = Callable[[Any], Any]
"""Turns a value from either side into a comparable JSON value (``None`` if it cannot)."""


def _address(value: Any) -> Any:
    if isinstance(value, bytes) and len(value) == 20:
        return "0x" + value.hex()
    if isinstance(value, str) and len(value) == 42 and value[:2] in ("0x", "0X"):
        try:
            bytes.fromhex(value[2:])
        except ValueError:
            return None
        return value.lower()
    return None


def _uint(value: Any) -> Any:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return None


def _uints(value: Any) -> Any:
    if not isinstance(value, list | tuple):
        return None
    out = [_uint(v) for v in value]
    return None if None in out else out


def _bytes(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, str) and value.startswith("0x"):
        try:
            return "0x" + bytes.fromhex(value[2:]).hex()
        except ValueError:
            return None
    return None


def _text_hash(value: Any) -> Any:
    """keccak256 of a message string; on the event side the hash itself."""
    if isinstance(value, str) and not value.startswith("0x"):
        try:
            return "0x" + bytes(keccak(value.encode("utf-8"))).hex()
        except UnicodeEncodeError:
            return None
    return _bytes(value)


ADDRESS: Final[Norm] = _address
UINT: Final[Norm] = _uint
UINTS: Final[Norm] = _uints
BYTES: Final[Norm] = _bytes
TEXT_HASH: Final[Norm] = _text_hash


@dataclass(frozen=True)
class KeyField:
    """One part of a key: the record's ``source``, the event's ``arg``, compared by ``norm``."""

    source: str
    norm: Norm
    arg: str


def f(source: str, norm: Norm, arg: str | None = None) -> KeyField:
    """A key field; the event argument has the message member's name unless ``arg`` is given."""
    return KeyField(source, norm, arg if arg is not None else source)


@dataclass(frozen=True)
class Link:
    """A signed action and the chain event it causes, paired by ``key``."""

    action: str
    contract: str
    event: str
    key: tuple[KeyField, ...]
    due: bool = True

    def record_key(self, signed: SignedAction, domains: Domains) -> str:
        """The key of a (verified) record, as JSON text."""
        values = []
        for field in self.key:
            if field.source == DIGEST:
                raw: Any = signed.digest(domains)
            elif field.source == ACTOR:
                raw = signed.actor
            else:
                raw = signed.message.get(field.source)
            values.append(field.norm(raw))
        return json.dumps(values, separators=(",", ":"))

    def event_key(self, args: Mapping[str, Any]) -> str:
        """The key of an event, as JSON text (a missing argument never matches a record)."""
        values = [field.norm(args[field.arg]) if field.arg in args else None for field in self.key]
        return json.dumps(values, separators=(",", ":"))


# fmt: off
LINKS: Final[tuple[Link, ...]] = (
    Link("onboard", "MemberRegistry", "MemberOnboarded", (f("member", ADDRESS), f("kind", UINT), f("name", TEXT_HASH, "nameHash"), f("keySuite", UINT), f("encryptionKey", BYTES))),  # noqa: E501
    Link("suspend", "MemberRegistry", "MemberSuspended", (f("member", ADDRESS),)),
    Link("reinstate", "MemberRegistry", "MemberReinstated", (f("member", ADDRESS),)),
    Link("rotate_key", "MemberRegistry", "EncryptionKeyRotated", (f("member", ADDRESS), f("keySuite", UINT), f("encryptionKey", BYTES))),  # noqa: E501
    Link("register", "DataRegistry", "DatasetRegistered", (f("owner", ADDRESS), f("contentHash", BYTES), f("metadataHash", BYTES), f("classification", UINT), f("parents", UINTS), f("previousVersion", UINT))),  # noqa: E501
    Link("reassign", "DataRegistry", "DatasetReassigned", (f("datasetId", UINT), f("to", ADDRESS), f("reasonHash", BYTES))),  # noqa: E501
    Link("grant", "AccessLedger", "AccessGranted", (f("datasetId", UINT), f("grantee", ADDRESS), f(ACTOR, ADDRESS, "grantor"), f("purposeHash", BYTES), f("termsHash", BYTES), f("expiresAt", UINT), f("maxUses", UINT))),  # noqa: E501
    Link("revoke", "AccessLedger", "AccessRevoked", (f("datasetId", UINT), f("grantee", ADDRESS), f(ACTOR, ADDRESS, "by"))),  # noqa: E501
    Link("fetch", "AccessLedger", "AccessUsed", (f("grantee", ADDRESS), f("nonce", UINT), f("datasetId", UINT))),  # noqa: E501
    Link("receipt", "SharingCredits", "CreditsMinted", (f(DIGEST, BYTES, "receiptId"), f("consumer", ADDRESS), f("datasetId", UINT)), due=False),  # noqa: E501
    Link("receipt", "SharingCredits", "CreditWithheld", (f(DIGEST, BYTES, "receiptId"), f("datasetId", UINT)), due=False),  # noqa: E501
)
# fmt: on

#: The rows of each action, in table order.
BY_ACTION: Final[dict[str, tuple[Link, ...]]] = {
    action: tuple(link for link in LINKS if link.action == action)
    for action in dict.fromkeys(link.action for link in LINKS)
}
#: The rows of each (contract, event).
BY_EVENT: Final[dict[tuple[str, str], Link]] = {(link.contract, link.event): link for link in LINKS}
#: The flow log's anchoring event (``treeSize``, ``rootHash``).
ANCHOR_EVENT: Final = ("FlowLog", "TreeHeadAnchored")

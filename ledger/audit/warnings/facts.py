"""The verified records, read once into what the rules look at.

Only the audit state (records this machine verified) is read. What a rule relies on is the
signed part of a record (who signed what), except where said: ``at`` (the broker's time,
pinned by its signed heads), a refused fetch's ``refused`` code, a registration's metadata
document (used only when it hashes to the signed ``metadataHash``), a grant's terms document
(only when it hashes to the signed ``termsHash``) and a denial's ``request_seq`` (used only when
that record is a signed request for a dataset of the denial's signer).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final

from ledger.audit.state import AuditState, ChainStatus
from ledger.errors import InvalidInput
from ledger.protocol.canonical import canonical
from ledger.protocol.documents import metadata_hash

#: The actions the rules read (receipts, ratings and quality issues play no part).
ACTIONS: Final = (
    "onboard",
    "suspend",
    "reinstate",
    "register",
    "reassign",
    "request",
    "approval",
    "grant",
    "deny",
    "revoke",
    "fetch",
)
#: ``kind`` of an Onboard (IMemberRegistry.Kind) meaning an enterprise.
ENTERPRISE: Final = 2
#: ``classification`` of a Register meaning SENSITIVE.
SENSITIVE: Final = 2


@dataclass(frozen=True)
class Rec:
    """One verified record: its signed message, the broker's time and context."""

    seq: int
    at: dt.datetime | None
    action: str
    actor: str  # lower case
    dataset_id: int | None
    message: dict[str, Any]
    context: dict[str, Any]
    chain: ChainStatus

    @property
    def refused(self) -> str | None:
        """The refusal code of a fetch the broker refused (``None`` for anything else)."""
        code = self.context.get("refused")
        return code if isinstance(code, str) else None

    def address(self, name: str) -> str:
        """A message member holding an address, in lower case (``""`` if absent)."""
        value = self.message.get(name)
        return value.lower() if isinstance(value, str) else ""

    def uint(self, name: str) -> int | None:
        value = self.message.get(name)
        return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class Facts:
    """The records the rules read, by kind and in log order."""

    by_action: dict[str, list[Rec]] = field(default_factory=dict)
    #: member (lower case) -> (kind, onboard record)
    kinds: dict[str, tuple[int, Rec]] = field(default_factory=dict)
    #: dataset id -> its register record
    registered: dict[int, Rec] = field(default_factory=dict)
    #: every record the rules read, by seq
    by_seq: dict[int, Rec] = field(default_factory=dict)
    _of: dict[tuple[str, ...], list[Rec]] = field(default_factory=dict, repr=False)

    @classmethod
    def read(cls, state: AuditState) -> Facts:
        """Every kept record. They were checked when kept (canonical leaves, signatures), so
        they are read as plain JSON here, without checking them again."""
        facts = cls()
        for row in state.leaf_rows(actions=ACTIONS):
            doc = json.loads(row.leaf)
            context = doc["context"]
            keep = row.action in _CONTEXT or isinstance(context.get("refused"), str)
            rec = Rec(
                seq=row.seq,
                at=parse_time(row.at),
                action=row.action,
                actor=row.actor.lower(),
                dataset_id=row.dataset_id,
                message=dict(doc["signed"]["message"]),
                context=dict(context) if keep else {},
                chain=row.chain,
            )
            facts.add(rec)
        return facts

    def add(self, rec: Rec) -> None:
        self._of.clear()
        self.by_action.setdefault(rec.action, []).append(rec)
        self.by_seq[rec.seq] = rec
        if rec.action == "onboard":
            kind = rec.uint("kind")
            if kind is not None:
                self.kinds[rec.address("member")] = (kind, rec)
        elif rec.action == "register" and rec.dataset_id is not None:
            self.registered.setdefault(rec.dataset_id, rec)

    def of(self, *actions: str) -> list[Rec]:
        """The records of these actions, in log order (do not change the list)."""
        found = self._of.get(actions)
        if found is None:
            found = sorted(
                (r for action in actions for r in self.by_action.get(action, ())),
                key=lambda r: r.seq,
            )
            self._of[actions] = found
        return found

    def owner(self, dataset_id: int, before: int) -> str | None:
        """The dataset's owner as of record ``before``: its registrant, or a matched reassign."""
        reg = self.registered.get(dataset_id)
        owner = reg.actor if reg is not None else None
        for rec in self.by_action.get("reassign", ()):
            if rec.seq < before and rec.uint("datasetId") == dataset_id and rec.chain == "matched":
                owner = rec.address("to")
        return owner

    def lineage(self, dataset_id: int) -> dict[int, int | None]:
        """Every ancestor (parents and previous versions, transitively) -> the child it was
        reached from (``None`` for ``dataset_id`` itself)."""
        seen: dict[int, int | None] = {dataset_id: None}
        todo = [dataset_id]
        while todo:
            current = todo.pop()
            reg = self.registered.get(current)
            if reg is None:
                continue
            for parent in _ancestors(reg):
                if parent not in seen:
                    seen[parent] = current
                    todo.append(parent)
        return seen


#: Actions whose context a rule reads (besides a refused fetch's).
_CONTEXT: Final = frozenset({"register", "grant", "deny"})


def _ancestors(reg: Rec) -> Iterable[int]:
    parents = reg.message.get("parents")
    if isinstance(parents, list):
        yield from (p for p in parents if isinstance(p, int) and not isinstance(p, bool))
    previous = reg.uint("previousVersion")
    if previous:
        yield previous


def parse_time(at: str) -> dt.datetime | None:
    """The broker's ISO-8601 time (UTC when it names no zone); ``None`` if it is not one."""
    try:
        when = dt.datetime.fromisoformat(at.replace("Z", "+00:00"))
    except ValueError:
        return None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def signed_metadata(reg: Rec) -> dict[str, Any] | None:
    """A registration's metadata document, if it hashes to the owner's signed metadataHash."""
    metadata = reg.context.get("metadata")
    if not isinstance(metadata, dict):
        return None
    try:
        digest = "0x" + metadata_hash(metadata).hex()
    except InvalidInput:
        return None
    return metadata if digest == str(reg.message.get("metadataHash", "")).lower() else None


def signed_terms(grant: Rec) -> dict[str, Any] | None:
    """A grant's terms document, if it hashes to the owner's signed termsHash."""
    terms = grant.context.get("terms")
    if not isinstance(terms, dict):
        return None
    try:
        digest = "0x" + hashlib.sha256(canonical(terms)).hexdigest()
    except InvalidInput:
        return None
    return terms if digest == str(grant.message.get("termsHash", "")).lower() else None

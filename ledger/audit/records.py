"""A flow-log record as the member reads it: the leaf bytes, parsed strictly.

Each leaf is the canonical JSON (``ledger.protocol.canonical``) of exactly
``{"v", "seq", "at", "signed", "context"}``: the record's version, its position in the log, the
broker's timestamp, the signed action (``SignedAction.to_json``) and unsigned context. Only the
signed action is the actor's word; ``at`` and ``context`` are the broker's, pinned by the signed
tree heads but not by any member's signature.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from ledger.errors import InvalidInput, InvalidSignature, LogError
from ledger.protocol.actions import SignedAction
from ledger.protocol.canonical import canonical
from ledger.protocol.codes import ErrorCode

#: The record version this reader understands (``ledger.services.flowlog.LEAF_VERSION``).
LEAF_VERSION: Final = 1
#: A leaf longer than this is refused unread (a registration's metadata is the largest part).
MAX_LEAF_BYTES: Final = 4 * 1024 * 1024
LEAF_KEYS: Final = frozenset({"v", "seq", "at", "signed", "context"})


@dataclass(frozen=True)
class LeafRecord:
    """One parsed record. ``signed`` is parsed, not yet verified."""

    seq: int
    at: str
    signed: SignedAction
    context: dict[str, Any]
    leaf: bytes

    @property
    def action(self) -> str:
        return self.signed.action

    @property
    def actor(self) -> str:
        return self.signed.actor


def parse_leaf(leaf: bytes) -> LeafRecord:
    """Parse a leaf; raises LogError (``record_malformed``) unless it is a canonical record.

    A signed part that is not a signed action raises InvalidSignature (``malformed_action``).
    """
    if not isinstance(leaf, bytes | bytearray):
        raise _malformed("a record is bytes")
    leaf = bytes(leaf)
    if len(leaf) > MAX_LEAF_BYTES:
        raise _malformed(f"a record is at most {MAX_LEAF_BYTES} bytes, got {len(leaf)}")
    try:
        doc = json.loads(leaf.decode("utf-8"))
        again = canonical(doc)
    except (UnicodeDecodeError, ValueError, InvalidInput, RecursionError):
        raise _malformed("a record is canonical JSON") from None
    if again != leaf:
        raise _malformed("a record is canonical JSON (RFC 8785 with exact integers)")
    if not isinstance(doc, dict) or set(doc) != LEAF_KEYS:
        raise _malformed(f"a record has exactly the members {sorted(LEAF_KEYS)}")
    version, seq, at, context = doc["v"], doc["seq"], doc["at"], doc["context"]
    if version != LEAF_VERSION or isinstance(version, bool):
        raise _malformed(f"record version {version!r} is not {LEAF_VERSION}")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
        raise _malformed("a record's seq is a non-negative integer")
    if not isinstance(at, str) or not isinstance(context, dict):
        raise _malformed("a record's at is a string and its context an object")
    if not isinstance(doc["signed"], dict):
        raise InvalidSignature("the signed part is not an object", code=ErrorCode.MALFORMED_ACTION)
    return LeafRecord(
        seq=seq, at=at, signed=SignedAction.from_json(doc["signed"]), context=context, leaf=leaf
    )


def carries(record: LeafRecord, signed: SignedAction) -> bool:
    """Whether the record's signed part is exactly ``signed`` (same action, message, signature)."""
    return canonical(record.signed.to_json()) == canonical(signed.to_json())


def _malformed(message: str) -> LogError:
    return LogError(message, code=ErrorCode.RECORD_MALFORMED)

"""Domain types shared by every layer: ids, kinds and classifications in one place."""

from __future__ import annotations

from typing import Final, Literal, NewType

from eth_typing import ChecksumAddress

DatasetId = NewType("DatasetId", int)
TxHash = NewType("TxHash", str)
Address = ChecksumAddress

MemberKind = Literal["department", "enterprise", "regulator"]
Classification = Literal["public", "internal", "sensitive"]
MemberStatus = Literal["none", "active", "suspended"]

# Order matches the Solidity enums (IMemberRegistry.Kind starts with NONE).
MEMBER_KINDS: Final[tuple[MemberKind, ...]] = ("department", "enterprise", "regulator")
CLASSIFICATIONS: Final[tuple[Classification, ...]] = ("public", "internal", "sensitive")
MEMBER_STATUSES: Final[tuple[MemberStatus, ...]] = ("none", "active", "suspended")


def kind_code(kind: MemberKind) -> int:
    """Solidity enum value of a member kind (NONE is 0)."""
    return MEMBER_KINDS.index(kind) + 1


def kind_name(code: int) -> MemberKind | None:
    """Member kind for a Solidity enum value, ``None`` for NONE."""
    return MEMBER_KINDS[code - 1] if 1 <= code <= len(MEMBER_KINDS) else None


def classification_code(classification: Classification) -> int:
    """Solidity enum value of a classification."""
    return CLASSIFICATIONS.index(classification)

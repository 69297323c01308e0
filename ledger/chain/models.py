"""Frozen values the chain layer hands upward: no HexBytes or AttributeDict past this package."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address

from ledger.protocol.actions import Domains
from ledger.types import Address, Classification, DatasetId, MemberKind, MemberStatus, TxHash


@dataclass(frozen=True)
class Deployment:
    """Where the five contracts live on one chain."""

    chain_id: int
    member_registry: Address
    data_registry: Address
    access_ledger: Address
    flow_log: Address
    sharing_credits: Address
    block_number: int

    def address_of(self, contract: str) -> Address:
        """Address of a contract by its Solidity name."""
        attr = {
            "MemberRegistry": "member_registry",
            "DataRegistry": "data_registry",
            "AccessLedger": "access_ledger",
            "FlowLog": "flow_log",
            "SharingCredits": "sharing_credits",
        }[contract]
        address: Address = getattr(self, attr)
        return address

    @cached_property
    def domains(self) -> Domains:
        """The EIP-712 domains of this deployment (built once: every signature check asks)."""
        return Domains(
            chain_id=self.chain_id,
            flow_log=self.flow_log,
            data_registry=self.data_registry,
            access_ledger=self.access_ledger,
        )

    def save(self, path: Path) -> None:
        """Write the deployment record as JSON (atomically)."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        """Read a deployment record written by :meth:`save`."""
        data = json.loads(path.read_text())
        for key in ("member_registry", "data_registry", "access_ledger", "flow_log"):
            data[key] = to_checksum_address(data[key])
        data["sharing_credits"] = to_checksum_address(data["sharing_credits"])
        return cls(**data)


@dataclass(frozen=True)
class Event:
    """A decoded contract event."""

    contract: str
    name: str
    args: dict[str, Any]
    block_number: int
    tx_hash: TxHash
    log_index: int


@dataclass(frozen=True)
class TxResult:
    """A mined, successful transaction."""

    tx_hash: TxHash
    block_number: int
    gas_used: int
    events: tuple[Event, ...] = field(default=())

    def event(self, name: str) -> Event:
        """The first event of that name (raises KeyError if none)."""
        for ev in self.events:
            if ev.name == name:
                return ev
        raise KeyError(name)


@dataclass(frozen=True)
class MemberInfo:
    """A member as the registry holds it."""

    address: Address
    kind: MemberKind | None
    status: MemberStatus
    key_suite: int
    onboarded_at: int
    name_hash: bytes
    encryption_key: bytes

    @property
    def active(self) -> bool:
        return self.status == "active"


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset certificate as the registry holds it."""

    dataset_id: DatasetId
    owner: Address
    content_hash: bytes
    metadata_hash: bytes
    classification: Classification
    parents: tuple[int, ...]
    previous_version: int
    registered_at: int
    retired: bool


@dataclass(frozen=True)
class GrantInfo:
    """The current grant of a dataset to a grantee."""

    dataset_id: int
    grantee: Address
    granted_at: int
    expires_at: int
    max_uses: int
    uses: int
    generation: int
    revoked: bool

    @property
    def exists(self) -> bool:
        return self.granted_at != 0

    @property
    def uses_left(self) -> int:
        return max(self.max_uses - self.uses, 0)


@dataclass(frozen=True)
class TreeHead:
    """An anchored flow-log tree head."""

    tree_size: int
    root_hash: bytes
    anchored_at: int
    head_count: int


@dataclass(frozen=True)
class Credit:
    """One delivery to credit to a dataset owner."""

    dataset_id: int
    consumer: Address
    amount: int
    receipt_id: bytes

"""Frozen values the chain layer hands upward: no HexBytes or AttributeDict past this package."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Final

from eth_utils.address import to_checksum_address

from ledger.errors import ConfigurationError
from ledger.protocol.actions import Domains
from ledger.types import Address, Classification, DatasetId, MemberKind, MemberStatus, TxHash

_ADDRESS_FIELDS: Final = (
    "member_registry",
    "data_registry",
    "access_ledger",
    "flow_log",
    "sharing_credits",
    "admin",
    "broker",
)


@dataclass(frozen=True)
class Deployment:
    """Where the five contracts live on one chain, and who holds ADMIN and BROKER there.

    ``admin`` (the operator: onboarding, suspension, rules, co-signatures) and ``broker`` (the
    hot relayer key: relaying, anchoring, recording signed uses, minting signed credits) are
    different keys; the contracts refuse to give both roles to one account.
    """

    chain_id: int
    member_registry: Address
    data_registry: Address
    access_ledger: Address
    flow_log: Address
    sharing_credits: Address
    admin: Address
    broker: Address
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
            member_registry=self.member_registry,
            data_registry=self.data_registry,
            access_ledger=self.access_ledger,
            sharing_credits=self.sharing_credits,
        )

    def save(self, path: Path) -> None:
        """Write the deployment record as JSON (atomically)."""
        from ledger.keys import write_private  # ledger.keys imports eth_account: load lazily

        write_private(path, (json.dumps(asdict(self), indent=2) + "\n").encode())

    @classmethod
    def load(cls, path: Path) -> Deployment:
        """Read a deployment record written by :meth:`save`."""
        data = json.loads(path.read_text())
        missing = [key for key in ("admin", "broker") if key not in data]
        if missing:
            raise ConfigurationError(
                f"{path} has no {' or '.join(missing)}: it was written before ADMIN and BROKER "
                "became separate keys, and its contracts are the old ones; deploy afresh"
            )
        for key in _ADDRESS_FIELDS:
            data[key] = to_checksum_address(data[key])
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
class CreditRules:
    """How SharingCredits computes a credit (set by ADMIN; the broker sends no amount).

    The first credited delivery of an (owner, consumer) pair in an epoch earns
    ``first_credit``, later ones ``repeat_credit``, clipped so that a pair earns at most
    ``pair_cap`` and an owner at most ``owner_cap`` per epoch of ``epoch_seconds``.
    """

    epoch_seconds: int = 7 * 24 * 3600
    first_credit: int = 6
    repeat_credit: int = 2
    pair_cap: int = 12
    owner_cap: int = 600

    def as_tuple(self) -> tuple[int, int, int, int, int]:
        """The Solidity ``CreditRules`` struct, in field order."""
        return (
            self.epoch_seconds,
            self.first_credit,
            self.repeat_credit,
            self.pair_cap,
            self.owner_cap,
        )


@dataclass(frozen=True)
class SignedReceipt:
    """A consumer's signed DeliveryReceipt as ``SharingCredits.mintBatch`` checks it.

    ``fetch_nonce`` is the nonce of the consumer's Fetch (recorded by ``recordUse``) that the
    receipt acknowledges; ``signature`` is the consumer's over the EIP-712 DeliveryReceipt in the
    SharingCredits domain, whose digest is the receipt id. ``quality`` is not the consumer's: the
    broker sets it to the dataset's score when the receipt was logged
    (``ledger.scoring.credit_quality``), and the contract weighs the credit by it.
    """

    dataset_id: int
    consumer: Address
    content_hash: bytes
    grant_generation: int
    fetch_nonce: int
    nonce: int
    deadline: int
    signature: bytes
    quality: int = 100

    def as_tuple(self) -> tuple[int, str, bytes, int, int, int, int, bytes, int]:
        """The Solidity ``SignedReceipt`` struct, in field order."""
        return (
            self.dataset_id,
            to_checksum_address(self.consumer),
            self.content_hash,
            self.grant_generation,
            self.fetch_nonce,
            self.nonce,
            self.deadline,
            self.signature,
            self.quality,
        )

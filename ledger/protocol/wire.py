"""Wire models: the JSON bodies of the broker's responses and requests (docs/protocol.md).

Bytes travel as ``0x``-hex strings; addresses as EIP-55 checksummed text; times as ISO 8601
UTC. The broker answers with these models and the SDK parses into them, so both sides agree by
construction and /openapi.json describes exactly these.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

Hex = str


class Eip712Domain(BaseModel):
    """An EIP-712 domain exactly as signed (``EIP712Domain`` has these four fields)."""

    model_config = ConfigDict(populate_by_name=True)

    name: str
    version: str
    chainId: int
    verifyingContract: str


class TypeField(BaseModel):
    name: str
    type: str


class ActionPublic(BaseModel):
    """One signed action: its EIP-712 primary type, its domain and its fields in order."""

    primary_type: str
    domain: Literal["broker", "DataRegistry", "AccessLedger"]
    signer_field: str
    fields: list[TypeField]


class Limits(BaseModel):
    """The protocol's limits (docs/protocol.md "Limits")."""

    request_max_skew_seconds: int
    deadline_max_ahead_seconds: int
    deadline_tolerance_seconds: int
    min_broker_nonce: str  # decimal (2**64 does not fit a JavaScript number)
    purpose_chars: tuple[int, int]
    request_days: tuple[int, int]
    request_uses: tuple[int, int]
    max_reason_chars: int
    max_comment_chars: int
    max_name_chars: int
    max_parents: int
    max_metadata_bytes: int
    json_body_bytes: int
    max_upload_bytes: int


class Config(BaseModel):
    """Everything a client needs to sign: chain, contracts, the EIP-712 domains and types."""

    protocol: Literal["DRL-HTTP-1"]
    chain_id: int
    operator: str
    member_registry: str
    data_registry: str
    access_ledger: str
    flow_log: str
    sharing_credits: str
    max_upload_bytes: int
    domains: dict[str, Eip712Domain]
    actions: dict[str, ActionPublic]
    limits: Limits


class Health(BaseModel):
    status: Literal["ok"]
    chain_id: int
    block: int
    log_size: int

"""Request and response models of the HTTP API. Bytes travel as 0x-hex strings."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ledger.errors import InvalidSignature
from ledger.protocol.codes import ErrorCode
from ledger.protocol.actions import ActionName, SignedAction
from ledger.store import models

Hex = str


def hx(value: bytes) -> Hex:
    return "0x" + value.hex()


class SignedActionIn(BaseModel):
    """An EIP-712 signed action (see README "Signed actions")."""

    model_config = ConfigDict(extra="forbid")

    action: ActionName
    actor: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    message: dict[str, Any] = Field(max_length=16)
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")

    def parse(self) -> SignedAction:
        return SignedAction.from_json(self.model_dump())


def message_int(signed: SignedAction, name: str) -> int:
    """An integer field of a signed message, read before its signature is checked.

    Routes compare such a field with the path (``requestId``, ``datasetId``); a value of another
    type can never verify, so it is refused as a malformed signed action (400).
    """
    value = signed.message.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidSignature(
            f"{signed.action}: {name} must be an integer", code=ErrorCode.MALFORMED_ACTION
        )
    return value


class SignedBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signed: SignedActionIn


class UploadIn(BaseModel):
    """First step of a registration: the signed Register action and its metadata document."""

    model_config = ConfigDict(extra="forbid")
    signed: SignedActionIn
    metadata: dict[str, Any]
    owner_wrapped_key: str = Field(pattern=r"^0x([0-9a-fA-F]{2}){1,4096}$")


class ApproveIn(BaseModel):
    """The owner's signed Grant plus the data key wrapped to the requester."""

    model_config = ConfigDict(extra="forbid")
    signed: SignedActionIn
    wrapped_key: str = Field(pattern=r"^0x([0-9a-fA-F]{2}){1,4096}$")
    admin_approval: str = Field(default="0x", pattern=r"^0x([0-9a-fA-F]{130})?$")


class MemberPublic(BaseModel):
    address: str
    kind: str
    name: str
    status: str
    key_suite: int
    encryption_key: Hex
    onboarded_tx: str
    log_seq: int
    created_at: dt.datetime

    @classmethod
    def of(cls, m: models.Member) -> MemberPublic:
        return cls(
            address=m.address,
            kind=m.kind,
            name=m.name,
            status=m.status,
            key_suite=m.key_suite,
            encryption_key=hx(m.encryption_key),
            onboarded_tx=m.onboarded_tx,
            log_seq=m.log_seq,
            created_at=m.created_at,
        )


class MembersPublic(BaseModel):
    data: list[MemberPublic]
    count: int


class Nonces(BaseModel):
    """On-chain EIP-712 nonces for relayed registrations and grants."""

    address: str
    data_registry: int
    access_ledger: int


class Credits(BaseModel):
    address: str
    balance: int
    symbol: str


class DatasetPublic(BaseModel):
    id: int
    owner: str
    title: str
    classification: str
    content_hash: Hex
    metadata_hash: Hex
    metadata: dict[str, Any]
    ciphertext_sha256: Hex
    ciphertext_size: int
    parents: list[int]
    previous_version: int
    registered_tx: str
    retired: bool
    log_seq: int
    created_at: dt.datetime

    @classmethod
    def of(cls, d: models.Dataset) -> DatasetPublic:
        return cls(
            id=d.id,
            owner=d.owner,
            title=d.title,
            classification=d.classification,
            content_hash=hx(d.content_hash),
            metadata_hash=hx(d.metadata_hash),
            metadata=json.loads(d.metadata_json),
            ciphertext_sha256=hx(d.ciphertext_sha256),
            ciphertext_size=d.ciphertext_size,
            parents=json.loads(d.parents),
            previous_version=d.previous_version,
            registered_tx=d.registered_tx,
            retired=d.retired,
            log_seq=d.log_seq,
            created_at=d.created_at,
        )


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int


class UploadIntentPublic(BaseModel):
    upload_id: str
    expires_at: int
    upload_url: str


class WrappedKeyPublic(BaseModel):
    dataset_id: int
    recipient: str
    generation: int
    wrapped_key: Hex


class RequestPublic(BaseModel):
    id: int
    dataset_id: int
    requester: str
    purpose: str
    days: int
    max_uses: int
    status: str
    reason: str | None
    log_seq: int
    created_at: dt.datetime
    decided_at: dt.datetime | None

    @classmethod
    def of(cls, r: models.AccessRequest) -> RequestPublic:
        return cls(
            id=int(r.id or 0),
            dataset_id=r.dataset_id,
            requester=r.requester,
            purpose=r.purpose,
            days=r.days,
            max_uses=r.max_uses,
            status=r.status,
            reason=r.reason,
            log_seq=r.log_seq,
            created_at=r.created_at,
            decided_at=r.decided_at,
        )


class RequestsPublic(BaseModel):
    data: list[RequestPublic]
    count: int


class GrantPublic(BaseModel):
    id: int
    dataset_id: int
    grantee: str
    generation: int
    request_id: int | None
    purpose_hash: Hex
    terms_hash: Hex
    expires_at: int
    max_uses: int
    uses: int
    revoked: bool
    granted_tx: str
    log_seq: int

    @classmethod
    def of(cls, g: models.Grant) -> GrantPublic:
        return cls(
            id=int(g.id or 0),
            dataset_id=g.dataset_id,
            grantee=g.grantee,
            generation=g.generation,
            request_id=g.request_id,
            purpose_hash=hx(g.purpose_hash),
            terms_hash=hx(g.terms_hash),
            expires_at=g.expires_at,
            max_uses=g.max_uses,
            uses=g.uses,
            revoked=g.revoked,
            granted_tx=g.granted_tx,
            log_seq=g.log_seq,
        )


class GrantsPublic(BaseModel):
    data: list[GrantPublic]
    count: int


class DeliveryPublic(BaseModel):
    id: int
    receipt_id: Hex
    dataset_id: int
    consumer: str
    content_hash: Hex
    grant_generation: int
    log_seq: int
    credited: bool
    credit_amount: int

    @classmethod
    def of(cls, d: models.Delivery) -> DeliveryPublic:
        return cls(
            id=int(d.id or 0),
            receipt_id=hx(d.receipt_id),
            dataset_id=d.dataset_id,
            consumer=d.consumer,
            content_hash=hx(d.content_hash),
            grant_generation=d.grant_generation,
            log_seq=d.log_seq,
            credited=d.credited,
            credit_amount=d.credit_amount,
        )


class RatingPublic(BaseModel):
    id: int
    dataset_id: int
    rater: str
    score: int
    comment: str
    log_seq: int


class FlowPublic(BaseModel):
    seq: int
    at: str
    action: str
    actor: str
    dataset_id: int | None
    detail: dict[str, Any]


class DatasetTracePublic(BaseModel):
    dataset_id: int
    title: str
    owner: str
    classification: str
    ancestors: list[int]
    descendants: list[int]
    versions: list[int]
    flows: list[FlowPublic]


class MemberTracePublic(BaseModel):
    address: str
    name: str
    kind: str
    status: str
    owned: list[int]
    received: list[int]
    credits: int
    flows: list[FlowPublic]


class ProblemPublic(BaseModel):
    where: str
    what: str


class VerifyPublic(BaseModel):
    ok: bool
    problems: list[ProblemPublic]
    checked: dict[str, int]


class LogHead(BaseModel):
    """The log's current head and the latest head anchored on chain."""

    size: int
    root: Hex
    anchored_size: int
    anchored_root: Hex
    anchored_at: int


class LogRecordPublic(BaseModel):
    seq: int
    action: str
    actor: str
    dataset_id: int | None
    leaf: str
    leaf_hash: Hex


class LogRecordsPublic(BaseModel):
    data: list[LogRecordPublic]
    count: int


class Proof(BaseModel):
    kind: Literal["inclusion", "consistency"]
    tree_size: int
    old_size: int | None = None
    seq: int | None = None
    root: Hex
    path: list[Hex]


class AnchorPublic(BaseModel):
    tree_size: int
    anchored: bool
    tx_hash: str | None
    credited: int
    minted: int

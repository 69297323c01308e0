"""Wire models: the JSON bodies of the broker's responses and requests (docs/protocol.md).

Bytes travel as ``0x``-hex strings; addresses as EIP-55 checksummed text; times as ISO 8601
UTC. The broker answers with these models and the SDK parses into them, so both sides agree by
construction and /openapi.json describes exactly these.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StringConstraints,
)

from ledger.protocol.actions import ActionName, SignedAction

Hex = str

#: The longest text value of a signed message: a hybrid post-quantum encryption key in hex
#: (about 2,400 characters) fits; purposes and reasons have their own, lower limits.
MAX_MESSAGE_TEXT: Final = 4096
#: The longest list in a signed message (a registration's parents; the protocol allows 32).
MAX_MESSAGE_LIST: Final = 64
MessageText = Annotated[str, StringConstraints(max_length=MAX_MESSAGE_TEXT)]
MessageScalar = StrictBool | StrictInt | StrictFloat | MessageText | None
#: Any JSON scalar, a bounded text, or a small list or object of those. A value of the wrong
#: type for its field is the signed action's own check (400 ``malformed_action``); these
#: bounds only keep every value small (422 ``invalid_request``).
MessageValue = (
    MessageScalar
    | Annotated[list[MessageScalar], Field(max_length=MAX_MESSAGE_LIST)]
    | Annotated[
        dict[Annotated[str, StringConstraints(max_length=32)], MessageScalar],
        Field(max_length=16),
    ]
)


def hx(value: bytes) -> Hex:
    """Bytes as they travel: ``0x`` and lower-case hex."""
    return "0x" + value.hex()


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
    domain: Literal["broker", "MemberRegistry", "DataRegistry", "AccessLedger", "SharingCredits"]
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

    protocol: Literal["DRL-HTTP-2"]
    chain_id: int
    operator: str  # the ADMIN key (the data bureau); same as ``admin``
    admin: str
    broker: str  # the BROKER key: relays, anchors, signs checkpoints
    deployment_block: int  # where event scans of this deployment start
    member_registry: str
    data_registry: str
    access_ledger: str
    flow_log: str
    sharing_credits: str
    max_upload_bytes: int
    domains: dict[str, Eip712Domain]
    actions: dict[str, ActionPublic]
    limits: Limits


class PartHealth(BaseModel):
    """One part the broker depends on: up, or down with an error code and a message."""

    ok: bool
    code: str | None = None
    message: str | None = None


class Health(BaseModel):
    """``ok`` (200) when the database, the chain and the blob store all answer; otherwise
    ``unavailable`` (503) with ``code`` the first failing part's (``database_unavailable``,
    ``chain_unavailable``, ``blob_store_unavailable``). ``block`` and ``log_size`` are ``None``
    when their part is down; ``leader`` says whether this replica is the anchoring leader."""

    status: Literal["ok", "unavailable"]
    code: str | None = None
    chain_id: int
    block: int | None
    log_size: int | None
    database: PartHealth
    chain: PartHealth
    blobs: PartHealth
    replica: str
    leader: bool


# -- request bodies ----------------------------------------------------------------------------


class SignedActionIn(BaseModel):
    """An EIP-712 signed action (see README "Signed actions")."""

    model_config = ConfigDict(extra="forbid")

    action: ActionName
    actor: str = Field(pattern=r"^0x[0-9a-fA-F]{40}$")
    message: dict[Annotated[str, StringConstraints(max_length=32)], MessageValue] = Field(
        max_length=16
    )
    signature: str = Field(pattern=r"^0x[0-9a-fA-F]{130}$")

    @classmethod
    def of(cls, signed: SignedAction) -> SignedActionIn:
        """The wire form of a signed action, as signed (the broker checks it, bounds included)."""
        return cls.model_construct(**signed.to_json())

    def parse(self) -> SignedAction:
        return SignedAction.from_json(self.model_dump())


class SignedBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signed: SignedActionIn


class UploadIn(BaseModel):
    """First step of a registration: the signed Register action and its metadata document."""

    model_config = ConfigDict(extra="forbid")
    signed: SignedActionIn
    metadata: dict[str, Any]
    owner_wrapped_key: str = Field(pattern=r"^0x([0-9a-fA-F]{2}){1,4096}$")


class ReassignIn(BaseModel):
    """The operator's signed Reassign of a certificate and the reason it hashes."""

    model_config = ConfigDict(extra="forbid")
    signed: SignedActionIn
    reason: str = Field(min_length=1, max_length=2000)


class ApproveIn(BaseModel):
    """The owner's signed Grant plus the data key wrapped to the requester.

    ``admin_approval`` is the operator's signed GrantApproval when the owner already holds it;
    without it, a grant that needs one waits (``awaiting_approval``) for ``/cosign``.
    """

    model_config = ConfigDict(extra="forbid")
    signed: SignedActionIn
    wrapped_key: str = Field(pattern=r"^0x([0-9a-fA-F]{2}){1,4096}$")
    admin_approval: SignedActionIn | None = None


class CarryIn(BaseModel):
    """The owner's signed Grant of a dataset's next version, on the terms of a live grant of
    the previous one, plus the new data key wrapped to the grantee."""

    model_config = ConfigDict(extra="forbid")
    signed: SignedActionIn
    wrapped_key: str = Field(pattern=r"^0x([0-9a-fA-F]{2}){1,4096}$")


# -- members -----------------------------------------------------------------------------------


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


class MembersPublic(BaseModel):
    data: list[MemberPublic]
    count: int
    #: Where the next page starts (pass it as ``offset``); ``None`` on the last page.
    next: int | None = None


class Nonces(BaseModel):
    """On-chain EIP-712 nonces for relayed registrations and grants."""

    address: str
    data_registry: int
    access_ledger: int


class Credits(BaseModel):
    address: str
    balance: int
    symbol: str


# -- datasets ----------------------------------------------------------------------------------


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
    #: The dataset registered as this one's next version (``previousVersion`` = this id).
    newer_version: int | None = None


class DatasetsPublic(BaseModel):
    data: list[DatasetPublic]
    count: int
    #: Where the next page starts (pass it as ``offset``); ``None`` on the last page.
    next: int | None = None


class UploadIntentPublic(BaseModel):
    upload_id: str
    expires_at: int
    upload_url: str


class WrappedKeyPublic(BaseModel):
    dataset_id: int
    recipient: str
    generation: int
    wrapped_key: Hex


# -- access requests and grants ----------------------------------------------------------------


class RequestPublic(BaseModel):
    id: int
    dataset_id: int
    requester: str
    purpose: str
    days: int
    max_uses: int
    #: The standard request form (docs/protocol.md, RequestAccess).
    purpose_category: str = "unspecified"
    legal_basis: str = "unspecified"
    retention_days: int = 0
    processing_location: str = "unspecified"
    status: str
    reason: str | None
    log_seq: int
    created_at: dt.datetime
    decided_at: dt.datetime | None
    #: The owner's signed Grant while it awaits the operator's co-signature.
    pending_grant: dict[str, Any] | None = None


class RequestsPublic(BaseModel):
    data: list[RequestPublic]
    count: int
    #: Where the next page starts (pass it as ``offset``); ``None`` on the last page.
    next: int | None = None


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


class ApproveOut(BaseModel):
    """What an approval did: ``granted`` (on chain) or ``awaiting_approval`` (co-signature)."""

    status: Literal["granted", "awaiting_approval"]
    request: RequestPublic
    grant: GrantPublic | None = None


class GrantsPublic(BaseModel):
    data: list[GrantPublic]
    count: int
    #: Where the next page starts (pass it as ``offset``); ``None`` on the last page.
    next: int | None = None


# -- deliveries and ratings --------------------------------------------------------------------


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


class RatingPublic(BaseModel):
    id: int
    dataset_id: int
    rater: str
    score: int
    comment: str
    log_seq: int


# -- quality issues ----------------------------------------------------------------------------


class IssuePublic(BaseModel):
    """A consumer's signed quality issue and the owner's signed answer (if any)."""

    id: int
    dataset_id: int
    reporter: str
    fields: str
    rows: str
    problem: str
    #: open | acknowledged | fixed | rejected
    status: str
    fixed_in: int | None
    reason: str | None
    log_seq: int
    answer_log_seq: int | None
    created_at: dt.datetime
    answered_at: dt.datetime | None


class QualityScorePublic(BaseModel):
    """A dataset's quality score as the broker computed it from the log (``ledger.scoring``);
    members recompute it from the records they verified."""

    dataset_id: int
    score: int
    validation: float
    freshness: float
    issues: float
    as_of: int
    lapsed: bool
    counts: dict[str, int]


class IssuesPublic(BaseModel):
    data: list[IssuePublic]
    count: int
    #: Where the next page starts (pass it as ``offset``); ``None`` on the last page.
    next: int | None = None


# -- audit: trace, verify, the flow log --------------------------------------------------------


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
    #: More flows follow: ask again with ``after`` set to this sequence number.
    next_after: int | None = None


class MemberTracePublic(BaseModel):
    address: str
    name: str
    kind: str
    status: str
    owned: list[int]
    received: list[int]
    credits: int
    flows: list[FlowPublic]
    #: More flows follow: ask again with ``after`` set to this sequence number.
    next_after: int | None = None


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
    #: The last sequence number of this page when more follow (pass it as ``after``).
    next_after: int | None = None


class CheckpointPublic(BaseModel):
    """The log's head as a signed note (C2SP tlog-checkpoint style), signed by the BROKER key.

    A broker that shows two histories leaves two signed notes that cannot both extend one log.
    """

    note: str
    size: int
    root: Hex


class RpcIn(BaseModel):
    """One read-only JSON-RPC call relayed to the chain (embedded chain only)."""

    model_config = ConfigDict(extra="forbid")
    jsonrpc: Literal["2.0"]
    id: int | str
    method: str = Field(max_length=64)
    params: list[Any] = Field(default_factory=list, max_length=8)


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

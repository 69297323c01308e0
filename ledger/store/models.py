"""Tables of the broker's index.

The chain is the source of truth for rights (members, datasets, grants, credits); these tables
index it for fast queries and hold what the chain does not: ciphertext locations, wrapped keys,
access requests, delivery receipts, ratings, and the flow log itself (records and tree nodes).
Everything here can be rebuilt from chain events plus the log.

Conventions: addresses are checksummed strings; hashes, signatures and wrapped keys are raw
bytes; times are timezone-aware UTC; every row that a signed action created names the flow-log
record (``log_seq``) that carries the signature.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Column, DateTime, Index, LargeBinary, UniqueConstraint
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class UtcDateTime(TypeDecorator[dt.datetime]):
    """Timezone-aware UTC on every backend (SQLite returns naive datetimes otherwise)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_result_value(
        self, value: dt.datetime | None, dialect: Dialect
    ) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value


def _big(*, nullable: bool = False, index: bool = False) -> Any:
    """A 64-bit integer column (sizes beyond 2 GiB, times beyond 2038)."""
    return Field(sa_column=Column(BigInteger, nullable=nullable, index=index))


def _ts(*, nullable: bool = False) -> Any:
    """A timezone-aware UTC timestamp column defaulting to now."""
    return Field(default_factory=utcnow, sa_column=Column(UtcDateTime(), nullable=nullable))


def _blob(*, nullable: bool = False) -> Any:
    """A binary column (hashes, signatures, wrapped keys)."""
    return Field(sa_column=Column(LargeBinary, nullable=nullable))


class Member(SQLModel, table=True):
    """A member as onboarded (mirror of MemberRegistry plus its readable name)."""

    __tablename__ = "members"

    address: str = Field(primary_key=True, max_length=42)
    kind: str = Field(max_length=16)
    name: str = Field(max_length=200)
    key_suite: int
    encryption_key: bytes = _blob()
    status: str = Field(default="active", max_length=16)
    onboarded_tx: str = Field(max_length=66)
    log_seq: int
    created_at: dt.datetime = _ts()


class Dataset(SQLModel, table=True):
    """A registered dataset: the certificate's fields plus where its ciphertext is."""

    __tablename__ = "datasets"

    id: int = Field(primary_key=True)
    owner: str = Field(index=True, max_length=42)
    title: str = Field(max_length=300)
    classification: str = Field(max_length=16)
    content_hash: bytes = _blob()
    metadata_hash: bytes = _blob()
    metadata_json: str
    ciphertext_sha256: bytes = _blob()
    ciphertext_size: int = _big()
    parents: str = Field(default="[]")  # JSON list of dataset ids
    previous_version: int = Field(default=0, index=True)  # the newer version's lookup
    registered_tx: str = Field(max_length=66)
    retired: bool = False
    log_seq: int
    created_at: dt.datetime = _ts()


class WrappedKey(SQLModel, table=True):
    """A dataset key wrapped (HPKE) to one recipient by the owner's client; opaque here."""

    __tablename__ = "wrapped_keys"
    __table_args__ = (UniqueConstraint("dataset_id", "recipient", "generation"),)

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(index=True, foreign_key="datasets.id")
    recipient: str = Field(max_length=42)
    generation: int = 0  # 0: the owner's own copy; n: grant generation n
    wrapped: bytes = _blob()
    created_at: dt.datetime = _ts()


class AccessRequest(SQLModel, table=True):
    """A signed request for access, and the owner's decision on it."""

    __tablename__ = "access_requests"

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(index=True, foreign_key="datasets.id")
    requester: str = Field(index=True, max_length=42)
    purpose: str = Field(max_length=2000)
    days: int
    max_uses: int
    # the standard request form (ledger.protocol.labels.check_request_form)
    purpose_category: str = Field(default="unspecified", max_length=40)
    legal_basis: str = Field(default="unspecified", max_length=40)
    retention_days: int = 0
    processing_location: str = Field(default="unspecified", max_length=11)
    # pending | awaiting_approval | approved | denied
    status: str = Field(default="pending", max_length=24)
    reason: str | None = Field(default=None, max_length=2000)
    log_seq: int
    decided_log_seq: int | None = None
    # A SENSITIVE grant to an enterprise waits here for the operator's co-signature.
    pending_grant_json: str | None = None
    pending_wrapped_key: bytes | None = Field(
        default=None, sa_column=Column(LargeBinary, nullable=True)
    )
    created_at: dt.datetime = _ts()
    decided_at: dt.datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )


class Grant(SQLModel, table=True):
    """Index of an on-chain grant (AccessLedger is authoritative)."""

    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("dataset_id", "grantee", "generation"),)

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(index=True, foreign_key="datasets.id")
    grantee: str = Field(index=True, max_length=42)
    generation: int
    request_id: int | None = Field(default=None, foreign_key="access_requests.id")
    purpose_hash: bytes = _blob()
    terms_hash: bytes = _blob()
    expires_at: int = _big()
    max_uses: int
    uses: int = 0
    revoked: bool = False
    granted_tx: str = Field(max_length=66)
    log_seq: int
    created_at: dt.datetime = _ts()


class Delivery(SQLModel, table=True):
    """A consumer-signed delivery receipt: it decrypted and verified the content hash.

    One receipt per fetch: ``(consumer, fetch_nonce)`` is unique, and the fetch it names must
    be recorded on chain (``AccessLedger.fetchRecorded``). ``signed_json`` keeps the signed
    receipt, which ``SharingCredits.mintBatch`` checks again on chain.
    """

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("consumer", "fetch_nonce"),)

    id: int | None = Field(default=None, primary_key=True)
    receipt_id: bytes = Field(sa_column=Column(LargeBinary, nullable=False, unique=True))
    dataset_id: int = Field(index=True, foreign_key="datasets.id")
    consumer: str = Field(index=True, max_length=42)
    content_hash: bytes = _blob()
    grant_generation: int
    fetch_nonce: str = Field(max_length=78)
    signed_json: str
    log_seq: int = Field(index=True)
    credited: bool = False
    credit_amount: int = 0
    credited_tx: str | None = Field(default=None, max_length=66)
    created_at: dt.datetime = _ts()


class Rating(SQLModel, table=True):
    """A signed quality rating (1–5) of a dataset by a member that received it."""

    __tablename__ = "ratings"
    __table_args__ = (UniqueConstraint("dataset_id", "rater"),)

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(index=True, foreign_key="datasets.id")
    rater: str = Field(max_length=42)
    score: int = Field(ge=1, le=5)
    comment: str = Field(default="", max_length=2000)
    log_seq: int
    created_at: dt.datetime = _ts()


class QualityIssue(SQLModel, table=True):
    """A consumer's signed quality issue about a dataset it received, and the owner's answer."""

    __tablename__ = "quality_issues"

    id: int | None = Field(default=None, primary_key=True)
    dataset_id: int = Field(index=True, foreign_key="datasets.id")
    reporter: str = Field(index=True, max_length=42)
    fields: str = Field(default="", max_length=500)
    rows: str = Field(default="", max_length=500)
    problem: str = Field(max_length=2000)
    # open | acknowledged | fixed | rejected
    status: str = Field(default="open", max_length=16)
    fixed_in: int | None = None
    reason: str | None = Field(default=None, max_length=2000)
    log_seq: int
    answer_log_seq: int | None = None
    created_at: dt.datetime = _ts()
    answered_at: dt.datetime | None = Field(
        default=None, sa_column=Column(UtcDateTime(), nullable=True)
    )


class LogRecord(SQLModel, table=True):
    """One signed action in the flow log; ``leaf`` is exactly what the Merkle tree hashed."""

    __tablename__ = "log_records"
    # A trace page is a range of one dataset's (or one actor's) records in sequence order. On
    # SQLite a dataset's range holds the leaves too, so it is read from adjacent pages
    # (migration 0009); PostgreSQL caps index entries below a leaf's size.
    __table_args__ = (
        Index("ix_log_records_dataset_seq", "dataset_id", "seq").ddl_if(dialect="postgresql"),
        Index(
            "ix_log_records_dataset_trace", "dataset_id", "seq", "action", "actor", "leaf"
        ).ddl_if(dialect="sqlite"),
        Index("ix_log_records_actor_seq", "actor", "seq"),
    )

    seq: int = Field(primary_key=True)
    action: str = Field(max_length=32)
    actor: str = Field(max_length=42)
    dataset_id: int | None = Field(default=None)
    leaf: bytes = _blob()
    created_at: dt.datetime = _ts()


class TreeNode(SQLModel, table=True):
    """A perfect-subtree node of the flow log's Merkle tree (see ledger.merkle.tree)."""

    __tablename__ = "tree_nodes"

    level: int = Field(primary_key=True)
    idx: int = Field(primary_key=True)
    hash: bytes = _blob()


class LogState(SQLModel, table=True):
    """Single row: the log's size. Appenders lock it, which serialises appends across replicas."""

    __tablename__ = "log_state"

    id: int = Field(default=1, primary_key=True)
    size: int = 0


class Anchor(SQLModel, table=True):
    """A tree head anchored on FlowLog."""

    __tablename__ = "anchors"

    tree_size: int = Field(primary_key=True)
    root_hash: bytes = _blob()
    tx_hash: str = Field(max_length=66)
    anchored_at: dt.datetime = _ts()


class UsedNonce(SQLModel, table=True):
    """Nonces of off-chain signed actions already accepted (replay protection)."""

    __tablename__ = "used_nonces"

    signer: str = Field(primary_key=True, max_length=42)
    nonce: str = Field(primary_key=True, max_length=78)  # uint256 as decimal text
    created_at: dt.datetime = _ts()


class RequestNonce(SQLModel, table=True):
    """Request-signature nonces seen while their request could still be valid (replay guard).

    Shared by every replica and kept across restarts; rows past ``expires_at`` are pruned.
    Only members' requests are recorded, so unknown keys cannot fill the table.
    """

    __tablename__ = "request_nonces"

    signer: str = Field(primary_key=True, max_length=42)
    nonce: str = Field(primary_key=True, max_length=64)
    expires_at: int = _big(index=True)


class UploadIntent(SQLModel, table=True):
    """A verified, signed registration waiting for its ciphertext upload.

    The broker checks signature, metadata and lineage when the intent is created, then streams
    the ciphertext into the blob store on the second request; the dataset only exists once the
    bytes hashed to the signed digest and the chain accepted the registration. An intent that
    is never completed expires at its signed deadline and leaves nothing behind.
    """

    __tablename__ = "upload_intents"

    __table_args__ = (UniqueConstraint("owner", "nonce", name="uq_upload_intents_owner_nonce"),)

    id: str = Field(primary_key=True, max_length=32)
    owner: str = Field(index=True, max_length=42)
    nonce: str = Field(default="", max_length=78)  # the signed Register's nonce
    signed_json: str
    metadata_json: str
    owner_wrapped_key: bytes = _blob()
    expires_at: int = _big()
    #: A PUT holds the intent until then (one transfer per intent, across replicas).
    claimed_until: int | None = _big(nullable=True)
    created_at: dt.datetime = _ts()


# -- several replicas on one database (migration 0005) ----------------------------------------


class DeploymentRecord(SQLModel, table=True):
    """The deployment this database indexes: one row, written by the first broker to start.

    Every replica compares its own deployment file and BROKER key with it at start and refuses
    to serve another deployment's index (or to deploy a second set of contracts next to it).
    """

    __tablename__ = "deployment"

    id: int = Field(default=1, primary_key=True)
    chain_id: int = _big()
    member_registry: str = Field(max_length=42)
    data_registry: str = Field(max_length=42)
    access_ledger: str = Field(max_length=42)
    flow_log: str = Field(max_length=42)
    sharing_credits: str = Field(max_length=42)
    admin: str = Field(max_length=42)
    broker: str = Field(max_length=42)
    block_number: int = _big()
    recorded_at: dt.datetime = _ts()


class Lease(SQLModel, table=True):
    """A role one replica holds at a time (``anchoring``), until ``expires_ms`` unless renewed.

    Times are the database's clock in milliseconds since the epoch, so replicas on hosts whose
    clocks differ agree on when a lease lapsed. ``requested_ms`` is a follower's request that
    the holder run a pass now (``drl admin anchor`` sent to a follower).
    """

    __tablename__ = "leases"

    name: str = Field(primary_key=True, max_length=32)
    holder: str = Field(max_length=64)
    expires_ms: int = _big()
    requested_ms: int | None = _big(nullable=True)


class ChainSender(SQLModel, table=True):
    """The next nonce of a key that several replicas send transactions from.

    A replica locks the row (``SELECT ... FOR UPDATE``) while it signs and hands one
    transaction to the node, so two replicas never sign the same nonce.
    """

    __tablename__ = "chain_senders"

    address: str = Field(primary_key=True, max_length=42)
    next_nonce: int = _big()

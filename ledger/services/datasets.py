"""Registering a dataset: the owner-encrypted upload and its on-chain certificate.

The owner's client encrypts, computes the content hash and the ciphertext digest, wraps the data
key to itself and signs the on-chain ``Register`` message whose ``metadataHash`` commits to a
metadata document naming the ciphertext digest, size and chunk size. The broker cannot see
plaintext, but it can refuse bytes that are not what the owner signed: the upload must hash to
that digest, and its header must name the signed chunk size (the content hash is defined over
fixed 1 MiB pieces whatever the chunking, so the chunking is no way around uniqueness).
"""

from __future__ import annotations

import json
import secrets
from typing import Any, BinaryIO

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, delete, select

from ledger.crypto.format import HEADER_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE, Header
from ledger.errors import Conflict, InvalidInput, NotFound, ReplayedNonce
from ledger.protocol.actions import SignedAction
from ledger.protocol.canonical import canonical
from ledger.protocol.codes import ErrorCode
from ledger.protocol.documents import MAX_METADATA_BYTES, METADATA_VERSION, metadata_hash
from ledger.protocol.labels import check_labels
from ledger.protocol.messages import Registration
from ledger.services import flowlog, policy
from ledger.services.context import Ledger, check_signed, dataset
from ledger.store.blobs import ByteSource
from ledger.store.models import Dataset, UploadIntent, WrappedKey
from ledger.types import CLASSIFICATIONS

MAX_WRAPPED_KEY = 4096


def _hex32(value: Any, name: str) -> bytes:
    if isinstance(value, str) and value.startswith("0x") and len(value) == 66:
        try:
            return bytes.fromhex(value[2:])
        except ValueError:
            pass
    raise InvalidInput(f"metadata.{name} must be 32 bytes of 0x-hex")


def check_metadata(metadata: dict[str, Any]) -> tuple[str, bytes, int]:
    """Validate the metadata document; returns (title, ciphertext digest, ciphertext size)."""
    if not isinstance(metadata, dict) or metadata.get("v") != METADATA_VERSION:
        raise InvalidInput(f"metadata must be an object with v={METADATA_VERSION}")
    title = metadata.get("title")
    if not isinstance(title, str) or not 1 <= len(title.strip()) <= 300:
        raise InvalidInput("metadata.title must be 1 to 300 characters")
    digest = _hex32(metadata.get("ciphertext_sha256"), "ciphertext_sha256")
    size = metadata.get("ciphertext_size")
    if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
        raise InvalidInput("metadata.ciphertext_size must be a positive integer")
    chunk_size = metadata.get("chunk_size")
    if (
        not isinstance(chunk_size, int)
        or isinstance(chunk_size, bool)
        or not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE
    ):
        raise InvalidInput(
            f"metadata.chunk_size must be an integer from {MIN_CHUNK_SIZE} to {MAX_CHUNK_SIZE}"
        )
    schema = metadata.get("schema")
    if schema is not None and not isinstance(schema, dict):
        raise InvalidInput("metadata.schema must be a Table Schema object or null")
    if len(canonical(metadata)) > MAX_METADATA_BYTES:
        raise InvalidInput("metadata document larger than 256 KiB")
    return title.strip(), digest, size


def registration_of(signed: SignedAction) -> Registration:
    """The on-chain registration a signed ``register`` action describes."""
    msg = signed.message
    classification = int(msg["classification"])
    if not 0 <= classification < len(CLASSIFICATIONS):
        raise InvalidInput(f"unknown classification {classification}")
    return Registration(
        content_hash=bytes.fromhex(str(msg["contentHash"])[2:]),
        metadata_hash=bytes.fromhex(str(msg["metadataHash"])[2:]),
        classification=CLASSIFICATIONS[classification],
        parents=tuple(int(p) for p in msg["parents"]),
        previous_version=int(msg["previousVersion"]),
    )


def _prevalidate(
    ledger: Ledger, signed: SignedAction, metadata: dict[str, Any], owner_wrapped_key: bytes
) -> tuple[str, Registration, str, bytes, int]:
    """Every check that needs no ciphertext: signature, metadata, lineage, nonce, uniqueness."""
    owner = check_signed(ledger, signed, "register")
    reg = registration_of(signed)
    title, digest, size = check_metadata(metadata)
    check_labels(metadata, reg.classification)  # 422 label_unknown / label_rule_broken
    if metadata_hash(metadata) != reg.metadata_hash:
        raise InvalidInput(
            "metadata does not hash to the signed metadataHash", code=ErrorCode.METADATA_MISMATCH
        )
    if size > ledger.max_upload_bytes:
        raise InvalidInput(
            f"ciphertext of {size} bytes exceeds the {ledger.max_upload_bytes} limit",
            code=ErrorCode.UPLOAD_TOO_LARGE,
        )
    if not 0 < len(owner_wrapped_key) <= MAX_WRAPPED_KEY:
        raise InvalidInput("owner_wrapped_key must be 1 to 4096 bytes")
    with ledger.db.session() as session:
        policy.standing(session, owner, operator=ledger.operator).require_writer()
        _check_lineage(session, owner, reg)
        taken = session.exec(
            select(Dataset.id).where(Dataset.content_hash == reg.content_hash)
        ).first()
        if taken is not None:
            raise Conflict(
                f"content already registered as dataset {taken}", code=ErrorCode.ALREADY_REGISTERED
            )
    nonce = int(signed.message["nonce"])
    if nonce != ledger.chain.nonce("DataRegistry", owner):
        raise ReplayedNonce(f"register nonce {nonce} is not the owner's current nonce")
    return owner, reg, title, digest, size


def begin_upload(
    ledger: Ledger,
    signed: SignedAction,
    *,
    metadata: dict[str, Any],
    owner_wrapped_key: bytes,
) -> UploadIntent:
    """Check a signed registration and keep it until its ciphertext arrives.

    One intent per owner and registration nonce (the contract's nonce, so one per owner at a
    time): the same signed registration sent again gets the same intent back, and a new one
    with that nonce replaces the pending intent unless its upload is running right now.
    """
    owner, *_ = _prevalidate(ledger, signed, metadata, owner_wrapped_key)
    nonce = str(signed.message["nonce"])
    intent = UploadIntent(
        id=secrets.token_hex(16),
        owner=owner,
        nonce=nonce,
        signed_json=json.dumps(signed.to_json()),
        metadata_json=json.dumps(metadata),
        owner_wrapped_key=owner_wrapped_key,
        expires_at=int(signed.message["deadline"]),
    )
    now = ledger.now()
    try:
        with ledger.db.transaction() as session:
            session.execute(delete(UploadIntent).where(col(UploadIntent.expires_at) < now))
            pending = session.exec(
                select(UploadIntent)
                .where(UploadIntent.owner == owner, UploadIntent.nonce == nonce)
                .with_for_update()
            ).first()
            if pending is not None:
                if (pending.signed_json, pending.metadata_json, pending.owner_wrapped_key) == (
                    intent.signed_json,
                    intent.metadata_json,
                    intent.owner_wrapped_key,
                ):
                    session.expunge(pending)
                    return pending
                if _claimed(pending, now):
                    raise Conflict(
                        f"the upload of intent {pending.id} (nonce {nonce}) is running",
                        code=ErrorCode.UPLOAD_IN_PROGRESS,
                    )
                session.delete(pending)
                session.flush()
            session.add(intent)
            session.flush()
            session.expunge(intent)
    except IntegrityError:  # a concurrent registration with this nonce came first
        raise Conflict(
            f"another registration with nonce {nonce} is pending", code=ErrorCode.UPLOAD_PENDING
        ) from None
    return intent


def _claimed(intent: UploadIntent, now: int) -> bool:
    return intent.claimed_until is not None and intent.claimed_until >= now


def claim_upload(ledger: Ledger, intent_id: str, uploader: str, *, lease_seconds: int) -> int:
    """Hold a pending intent for one upload; returns the claim (pass it to renew and release).

    Only one upload of an intent runs at a time, on any replica: a second PUT while the first
    is running is refused with ``upload_in_progress``. A claim lapses after ``lease_seconds``
    unless renewed, so an upload cut off by a crash does not hold its intent for good.
    """
    now = ledger.now()
    with ledger.db.transaction() as session:
        intent = session.get(UploadIntent, intent_id, with_for_update=True)
        if intent is None or intent.expires_at < now:
            raise NotFound(f"no pending upload {intent_id}", code=ErrorCode.UPLOAD_NOT_FOUND)
        policy.require_owner(uploader, intent.owner, "only the owner completes its upload")
        if _claimed(intent, now):
            raise Conflict(
                f"another upload of intent {intent_id} is running",
                code=ErrorCode.UPLOAD_IN_PROGRESS,
            )
        intent.claimed_until = now + lease_seconds
        return intent.claimed_until


def renew_upload(ledger: Ledger, intent_id: str, claim: int, *, lease_seconds: int) -> int:
    """Extend a claim; ``Conflict`` if it lapsed and was taken over meanwhile."""
    renewed = ledger.now() + lease_seconds
    with ledger.db.transaction() as session:
        moved = session.connection().execute(
            update(UploadIntent)
            .where(col(UploadIntent.id) == intent_id, col(UploadIntent.claimed_until) == claim)
            .values(claimed_until=renewed)
        )
        if moved.rowcount != 1:
            raise Conflict(
                f"the claim on intent {intent_id} lapsed", code=ErrorCode.UPLOAD_IN_PROGRESS
            )
    return renewed


def release_upload(ledger: Ledger, intent_id: str, claim: int) -> None:
    """Give a claim back (nothing happens if the upload completed and consumed the intent)."""
    with ledger.db.transaction() as session:
        session.execute(
            update(UploadIntent)
            .where(col(UploadIntent.id) == intent_id, col(UploadIntent.claimed_until) == claim)
            .values(claimed_until=None)
        )


def complete_upload(
    ledger: Ledger,
    intent_id: str,
    ciphertext: BinaryIO,
    *,
    uploader: str | None = None,
    declared_sha256: str | None = None,
) -> Dataset:
    """Stream the ciphertext of a pending intent and register it; the intent is consumed.

    ``declared_sha256`` is the body hash the HTTP request signature covers; it must be the
    digest the owner signed, so the authenticated request is bound to exactly these bytes.
    """
    with ledger.db.session() as session:
        intent = session.get(UploadIntent, intent_id)
        if intent is None or intent.expires_at < ledger.now():
            raise NotFound(f"no pending upload {intent_id}", code=ErrorCode.UPLOAD_NOT_FOUND)
        if uploader is not None:
            policy.require_owner(uploader, intent.owner, "only the owner completes its upload")
        signed = SignedAction.from_json(json.loads(intent.signed_json))
        metadata = json.loads(intent.metadata_json)
        expected = str(metadata["ciphertext_sha256"])[2:].lower()
        if declared_sha256 is not None and declared_sha256.lower() != expected:
            raise InvalidInput(
                "X-DRL-Content-SHA256 is not the signed ciphertext digest",
                code=ErrorCode.UPLOAD_DIGEST_MISMATCH,
            )
        wrapped = intent.owner_wrapped_key
    dataset_row = register(
        ledger, signed, metadata=metadata, owner_wrapped_key=wrapped, ciphertext=ciphertext
    )
    with ledger.db.transaction() as session:
        session.execute(delete(UploadIntent).where(col(UploadIntent.id) == intent_id))
    return dataset_row


def register(
    ledger: Ledger,
    signed: SignedAction,
    *,
    metadata: dict[str, Any],
    owner_wrapped_key: bytes,
    ciphertext: BinaryIO,
) -> Dataset:
    """Store the ciphertext, relay the owner-signed registration, index and log it."""
    owner, reg, title, digest, size = _prevalidate(ledger, signed, metadata, owner_wrapped_key)
    nonce = int(signed.message["nonce"])
    source = _check_chunking(ciphertext, int(metadata["chunk_size"]))
    blob = ledger.blobs.write(source, expected_sha256=digest, max_size=size)
    if blob.size != size:
        _drop_unreferenced(ledger, digest)
        raise InvalidInput(
            f"upload is {blob.size} bytes, the signed size is {size}",
            code=ErrorCode.UPLOAD_SIZE_MISMATCH,
        )
    try:
        with ledger.db.transaction() as session:
            dataset_id, tx = ledger.chain.register_for(
                owner,
                reg,
                nonce=nonce,
                deadline=int(signed.message["deadline"]),
                signature=signed.signature,
            )
            seq = flowlog.append(
                session,
                signed,
                dataset_id=dataset_id,
                context={"tx": tx.tx_hash, "dataset_id": dataset_id, "metadata": metadata},
            )
            row = Dataset(
                id=dataset_id,
                owner=owner,
                title=title,
                classification=reg.classification,
                content_hash=reg.content_hash,
                metadata_hash=reg.metadata_hash,
                metadata_json=json.dumps(metadata, sort_keys=True),
                ciphertext_sha256=digest,
                ciphertext_size=size,
                parents=json.dumps(list(reg.parents)),
                previous_version=reg.previous_version,
                registered_tx=tx.tx_hash,
                log_seq=seq,
            )
            session.add(row)
            session.add(
                WrappedKey(
                    dataset_id=dataset_id, recipient=owner, generation=0, wrapped=owner_wrapped_key
                )
            )
            session.flush()
            session.refresh(row)
            session.expunge(row)
    except BaseException:
        _drop_unreferenced(ledger, digest)
        raise
    return row


def _check_chunking(ciphertext: BinaryIO, declared: int) -> ByteSource:
    """Read the upload's header before anything is stored; refuse another chunk size.

    Returns a source that yields the header again and then the rest of the upload.
    """
    head = b""
    while len(head) < HEADER_SIZE and (more := ciphertext.read(HEADER_SIZE - len(head))):
        head += more
    chunk_size = Header.parse(head).chunk_size  # 422 unsupported_format or integrity_error
    if chunk_size != declared:
        raise InvalidInput(
            f"the upload is chunked in {chunk_size}-byte chunks, the signed metadata declares "
            f"chunk_size {declared}",
            code=ErrorCode.CHUNKING_MISMATCH,
        )
    return _Prefixed(head, ciphertext)


class _Prefixed:
    """``head`` followed by what ``rest`` yields, for the blob store's reads."""

    def __init__(self, head: bytes, rest: BinaryIO) -> None:
        self._head, self._rest = head, rest

    def read(self, size: int, /) -> bytes:
        if self._head:
            head, self._head = self._head[:size], self._head[size:]
            return head
        return self._rest.read(size)


def _check_lineage(session: Any, owner: str, reg: Registration) -> None:
    for parent_id in reg.parents:
        parent = dataset(session, parent_id)
        if CLASSIFICATIONS.index(reg.classification) < CLASSIFICATIONS.index(parent.classification):
            raise InvalidInput(
                f"a derivative of {parent.classification} dataset {parent_id} must be at least "
                f"{parent.classification}",
                code=ErrorCode.CLASSIFICATION_BELOW_PARENT,
            )
    if reg.previous_version:
        previous = dataset(session, reg.previous_version)
        if previous.owner != owner:
            raise InvalidInput(
                "the previous version belongs to another owner",
                code=ErrorCode.PREVIOUS_VERSION_NOT_OWNED,
            )


def _drop_unreferenced(ledger: Ledger, digest: bytes) -> None:
    """Remove a blob no registered dataset points at (a failed registration's upload)."""
    with ledger.db.session() as session:
        used = session.exec(
            select(col(Dataset.id)).where(Dataset.ciphertext_sha256 == digest)
        ).first()
    if used is None:
        ledger.blobs.delete(digest)

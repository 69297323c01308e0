"""Everything a member's machine does before and after talking to the broker.

Encrypting and hashing a dataset, wrapping its key, signing every action and opening a delivery
all happen here, with the member's own keys; the broker only ever receives the results. The same
functions serve the in-process tests and the HTTP SDK.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from eth_account.signers.local import LocalAccount
from eth_utils.address import to_checksum_address

from ledger import crypto
from ledger.crypto.files import decrypt_to_path
from ledger.crypto.stream import encrypt
from ledger.protocol.actions import (
    ActionName,
    Domains,
    SignedAction,
    default_deadline,
    new_nonce,
    sign_action,
)
from ledger.protocol.documents import (
    METADATA_VERSION,
    RequestForm,
    key_context,
    metadata_hash,
    purpose_hash,
    terms_hash,
)
from ledger.protocol.labels import check_labels
from ledger.protocol.messages import (
    GrantTerms,
    Registration,
    grant_message,
    register_message,
    revoke_message,
)
from ledger.types import Classification


@dataclass(frozen=True)
class MemberKeys:
    """A member's signing account and HPKE key pair."""

    account: LocalAccount
    hpke: crypto.PrivateKey

    @property
    def address(self) -> str:
        return str(self.account.address)

    @property
    def public_key(self) -> crypto.PublicKey:
        return self.hpke.public_key()


@dataclass(frozen=True)
class PreparedUpload:
    """A dataset ready to upload: ciphertext on disk plus what the broker needs with it."""

    signed: SignedAction
    metadata: dict[str, Any]
    owner_wrapped_key: bytes
    ciphertext_path: Path
    content_hash: bytes
    ciphertext_sha256: bytes
    ciphertext_size: int


def sign(
    keys: MemberKeys, action: ActionName, message: dict[str, Any], domains: Domains
) -> SignedAction:
    """Sign a broker action, adding a random nonce and a deadline when absent."""
    full = {"nonce": new_nonce(), "deadline": default_deadline(), **message}
    return sign_action(keys.account, action, full, domains)


def prepare_upload(
    keys: MemberKeys,
    source: Path,
    *,
    workdir: Path,
    title: str,
    domains: Domains,
    chain_nonce: int,
    classification: Classification = "internal",
    parents: tuple[int, ...] = (),
    previous_version: int = 0,
    description: str = "",
    schema: dict[str, Any] | None = None,
    quality: dict[str, Any] | None = None,
    media_type: str = "text/csv",
    labels: dict[str, Any] | None = None,
) -> PreparedUpload:
    """Encrypt ``source`` under a fresh data key and sign its registration.

    ``labels`` (themes, personal data, keywords, update frequency, coverage) are checked
    against the labelling rules before anything is signed.
    """
    if labels:
        check_labels(labels, classification)
    dek = crypto.generate_data_key()
    ciphertext = workdir / f"{source.name}.drl"
    # A scratch file, uploaded and deleted right after: not fsynced (``encrypt_file`` would
    # make it durable, which holds the upload back until the whole ciphertext is on disk).
    with source.open("rb") as src, ciphertext.open("wb") as dst:
        result = encrypt(src, dst, dek)
    wrapped = crypto.wrap_key(
        dek,
        keys.public_key.to_bytes(),
        suite=keys.hpke.suite,
        info=key_context(result.content_hash, keys.address),
    )
    metadata: dict[str, Any] = {
        "v": METADATA_VERSION,
        "title": title,
        "description": description,
        "media_type": media_type,
        "schema": schema,
        "quality": quality or {},
        "plaintext_size": result.plaintext_size,
        "ciphertext_sha256": "0x" + result.ciphertext_sha256.hex(),
        "ciphertext_size": result.ciphertext_size,
        "chunk_size": result.chunk_size,
        "owner_key_sha256": "0x" + hashlib.sha256(wrapped).hexdigest(),
        **(labels or {}),
    }
    registration = Registration(
        content_hash=result.content_hash,
        metadata_hash=metadata_hash(metadata),
        classification=classification,
        parents=parents,
        previous_version=previous_version,
    )
    message = register_message(
        keys.address, registration, nonce=chain_nonce, deadline=default_deadline()
    )
    signed = sign_action(keys.account, "register", message, domains)
    return PreparedUpload(
        signed=signed,
        metadata=metadata,
        owner_wrapped_key=wrapped,
        ciphertext_path=ciphertext,
        content_hash=result.content_hash,
        ciphertext_sha256=result.ciphertext_sha256,
        ciphertext_size=result.ciphertext_size,
    )


def prepare_grant(
    keys: MemberKeys,
    *,
    request_id: int,
    dataset_id: int,
    content_hash: bytes,
    requester: str,
    requester_suite: int,
    requester_key: bytes,
    purpose: str,
    days: int,
    max_uses: int,
    owner_wrapped_key: bytes,
    chain_nonce: int,
    domains: Domains,
    form: RequestForm,
    now: int | None = None,
    expires_at: int | None = None,
) -> tuple[SignedAction, bytes]:
    """Re-wrap the data key to the requester and sign the grant; returns (signed, wrapped).

    ``form`` is the request's standard form: the terms the grant signs carry it over.
    ``expires_at`` overrides ``now + days`` (a grant carried over to a next version keeps the
    previous grant's expiry).
    """
    dek = crypto.unwrap_key(
        owner_wrapped_key, keys.hpke.to_bytes(), info=key_context(content_hash, keys.address)
    )
    wrapped = crypto.wrap_key(
        dek, requester_key, suite=requester_suite, info=key_context(content_hash, requester)
    )
    start = int(time.time()) if now is None else now
    terms = GrantTerms(
        dataset_id=dataset_id,
        grantee=to_checksum_address(requester),
        purpose_hash=purpose_hash(purpose),
        expires_at=start + days * 86400 if expires_at is None else expires_at,
        max_uses=max_uses,
        terms_hash=terms_hash(request_id, wrapped, form),
    )
    message = grant_message(terms, nonce=chain_nonce, deadline=default_deadline())
    return sign_action(keys.account, "grant", message, domains), wrapped


def sign_revoke(
    keys: MemberKeys, *, dataset_id: int, grantee: str, chain_nonce: int, domains: Domains
) -> SignedAction:
    message = revoke_message(dataset_id, grantee, nonce=chain_nonce, deadline=default_deadline())
    return sign_action(keys.account, "revoke", message, domains)


def open_delivery(
    keys: MemberKeys,
    ciphertext: BinaryIO,
    out: Path,
    *,
    wrapped_key: bytes,
    content_hash: bytes,
    chunk_size: int | None = None,
) -> bytes:
    """Decrypt a delivery to ``out`` and verify it against the registered content hash.

    ``chunk_size``, the signed metadata's (when verified against the chain), refuses a header
    declaring other chunks before any chunk buffer is allocated.
    """
    dek = crypto.unwrap_key(
        wrapped_key, keys.hpke.to_bytes(), info=key_context(content_hash, keys.address)
    )
    result = decrypt_to_path(
        ciphertext, out, dek, expected_content_hash=content_hash, expected_chunk_size=chunk_size
    )
    return result.content_hash

"""Streaming dataset encryption and decryption with the content hash computed on the way.

``encrypt`` produces what the owner registers and uploads: the ciphertext, the content hash
(Merkle root of the plaintext chunks, see :mod:`ledger.merkle.proofs`) and the SHA-256 of every
ciphertext byte (header included), against which the blind broker checks the upload.
``decrypt`` authenticates every chunk and recomputes the content hash, so the recipient can
compare it with the one registered on chain. Both keep only a few chunks in memory.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from ledger.crypto import _pipeline
from ledger.crypto.format import (
    DEFAULT_CHUNK_SIZE,
    HEADER_SIZE,
    KEY_SIZE,
    NONCE_PREFIX_SIZE,
    TAG_SIZE,
    Header,
    check_chunk_size,
)
from ledger.errors import CryptoError, IntegrityError
from ledger.merkle.proofs import root_from_leaf_hashes

_LEAF_PREFIX = b"\x00"  # RFC 6962 leaf prefix, as in ledger.merkle.proofs.leaf_hash


@dataclass(frozen=True)
class EncryptResult:
    """What the owner registers and what the broker checks the upload against."""

    content_hash: bytes
    ciphertext_sha256: bytes
    plaintext_size: int
    ciphertext_size: int


@dataclass(frozen=True)
class DecryptResult:
    """The content hash recomputed from the decrypted plaintext, and its size."""

    content_hash: bytes
    plaintext_size: int


def generate_data_key() -> bytes:
    """A fresh random 256-bit data key (DEK); one per dataset."""
    return os.urandom(KEY_SIZE)


def encrypt(
    src: BinaryIO,
    dst: BinaryIO,
    key: bytes,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    nonce_prefix: bytes | None = None,
) -> EncryptResult:
    """Encrypt ``src`` into ``dst`` under the data key ``key``.

    ``nonce_prefix`` fixes the header's 8-byte nonce prefix, for test vectors only: by default
    it is random, and a prefix must never be reused under one data key.
    """
    aead = AESGCM(_check_key(key))
    header = Header.new(chunk_size)
    if nonce_prefix is not None:
        if len(nonce_prefix) != NONCE_PREFIX_SIZE:
            raise CryptoError(f"a nonce prefix is {NONCE_PREFIX_SIZE} bytes")
        header = Header(chunk_size=chunk_size, nonce_prefix=bytes(nonce_prefix))
    header_bytes = header.pack()
    dst.write(header_bytes)
    ciphertext_hash = hashlib.sha256(header_bytes)
    written = HEADER_SIZE

    def seal(slot: _pipeline.Slot, index: int, last: bool) -> bytes:
        plain = slot.input()
        out = slot.output(len(plain) + TAG_SIZE)
        aead.encrypt_into(header.nonce(index), plain, header.aad(index, last=last), out)
        return _leaf_hash(plain)

    # SHA-256 over the whole ciphertext cannot be split, so one thread hashes it in order
    # beside the chunk workers, and another writes it.
    writer, hasher = _ordered_stage("drl-write"), _ordered_stage("drl-ciphertext-hash")

    def emit(chunk: memoryview) -> tuple[Future[Any], ...]:
        nonlocal written
        written += len(chunk)
        return writer.submit(dst.write, chunk), hasher.submit(ciphertext_hash.update, chunk)

    try:
        leaves, plaintext_size = _pipeline.run(
            src, in_size=chunk_size, out_size=chunk_size + TAG_SIZE, transform=seal, emit=emit
        )
    finally:
        _stop(writer, hasher)
    return EncryptResult(
        content_hash=_root(leaves, plaintext_size),
        ciphertext_sha256=ciphertext_hash.digest(),
        plaintext_size=plaintext_size,
        ciphertext_size=written,
    )


def decrypt(
    src: BinaryIO,
    dst: BinaryIO,
    key: bytes,
    *,
    expected_content_hash: bytes | None = None,
) -> DecryptResult:
    """Decrypt ``src`` into ``dst``, authenticating every chunk and the stream's end.

    Raises :class:`UnsupportedFormat` for an unknown header, and :class:`IntegrityError` for
    altered, truncated, reordered or spliced input, a wrong key, or a content hash other than
    ``expected_content_hash``. ``dst`` may by then hold a prefix of authenticated chunks; use
    :func:`ledger.crypto.files.decrypt_to_path` when nothing may be left behind.
    """
    aead = AESGCM(_check_key(key))
    header_bytes = bytearray(HEADER_SIZE)
    header = Header.parse(bytes(header_bytes[: _pipeline.read_full(src, header_bytes)]))
    size = 0

    def open_chunk(slot: _pipeline.Slot, index: int, last: bool) -> bytes:
        sealed = slot.input()
        if len(sealed) < TAG_SIZE:
            raise IntegrityError(f"encrypted dataset is truncated in chunk {index}")
        if len(sealed) == TAG_SIZE and index > 0:
            # The writer never ends a non-empty plaintext with an empty chunk.
            raise IntegrityError(f"chunk {index} is an empty final chunk after data")
        plain = slot.output(len(sealed) - TAG_SIZE)
        try:
            aead.decrypt_into(header.nonce(index), sealed, header.aad(index, last=last), plain)
        except InvalidTag:
            raise IntegrityError(
                f"chunk {index} failed authentication: wrong key, or altered, truncated, "
                "reordered or spliced data"
            ) from None
        return _leaf_hash(plain)

    writer = _ordered_stage("drl-write")

    def emit(chunk: memoryview) -> tuple[Future[Any]]:
        nonlocal size
        size += len(chunk)
        return (writer.submit(dst.write, chunk),)

    try:
        leaves, _ = _pipeline.run(
            src,
            in_size=header.chunk_size + TAG_SIZE,
            out_size=header.chunk_size,
            transform=open_chunk,
            emit=emit,
        )
    finally:
        _stop(writer)
    digest = _root(leaves, size)
    if expected_content_hash is not None and not hmac.compare_digest(digest, expected_content_hash):
        raise IntegrityError("decrypted content does not match the expected content hash")
    return DecryptResult(content_hash=digest, plaintext_size=size)


def content_hash(src: BinaryIO, *, chunk_size: int = DEFAULT_CHUNK_SIZE) -> bytes:
    """Content hash of a plaintext stream without encrypting it (same chunking as ``encrypt``)."""
    check_chunk_size(chunk_size, error=CryptoError)

    def hash_chunk(slot: _pipeline.Slot, index: int, last: bool) -> bytes:
        return _leaf_hash(slot.input())

    leaves, size = _pipeline.run(
        src, in_size=chunk_size, out_size=0, transform=hash_chunk, emit=lambda _: ()
    )
    return _root(leaves, size)


def _ordered_stage(name: str) -> ThreadPoolExecutor:
    # One worker takes tasks first in, first out: the stage sees chunks in stream order.
    return ThreadPoolExecutor(1, thread_name_prefix=name)


def _stop(*stages: ThreadPoolExecutor) -> None:
    for stage in stages:
        stage.shutdown(wait=True, cancel_futures=True)


def _check_key(key: bytes) -> bytes:
    if len(key) != KEY_SIZE:
        raise CryptoError(f"a data key is {KEY_SIZE} bytes, got {len(key)}")
    return key


def _root(leaves: list[bytes], plaintext_size: int) -> bytes:
    # An empty plaintext has no chunks to hash (its one empty ciphertext chunk only marks the
    # end of the stream), so its content hash is the root of the empty tree.
    return root_from_leaf_hashes(leaves if plaintext_size else [])


def _leaf_hash(chunk: memoryview) -> bytes:
    """:func:`ledger.merkle.proofs.leaf_hash` of a chunk, without copying it.

    ``leaf_hash`` takes ``bytes`` and prepends the 0x00 leaf prefix by concatenation, which
    costs two copies of every chunk on a worker thread, about 15 % of the hashing CPU. The
    result is identical (a test holds the two together).
    """
    digest = hashlib.sha256(_LEAF_PREFIX)
    digest.update(chunk)
    return digest.digest()

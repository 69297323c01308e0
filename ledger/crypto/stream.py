"""Streaming dataset encryption and decryption with the content hash computed on the way.

``encrypt`` produces what the owner registers and uploads: the ciphertext, the content hash and
the SHA-256 of every ciphertext byte (header included), against which the blind broker checks
the upload. ``decrypt`` authenticates every chunk and recomputes the content hash, so the
recipient can compare it with the one registered on chain. Both keep only a few chunks in memory.

The content hash is canonical: the RFC 6962 Merkle root (:mod:`ledger.merkle.proofs`) over the
plaintext cut into fixed 1 MiB pieces (``PIECE_SIZE``; the last may be shorter, an exact
multiple has no empty last piece, the empty plaintext hashes to the empty tree, SHA-256("")),
whatever chunk size the file was encrypted with. So one plaintext has one content hash, and a
registration cannot dodge uniqueness or inherited sensitivity by picking another chunk size.
When the chunk size is a multiple of 1 MiB (the default is exactly 1 MiB) every chunk starts on
a piece boundary and the workers hash its pieces in parallel; otherwise an ordered stage
re-slices the plaintext chunks into pieces as they pass, holding one running SHA-256 and no
copy of the data.
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
    PIECE_SIZE,
    TAG_SIZE,
    Header,
)
from ledger.errors import CryptoError, IntegrityError
from ledger.merkle.proofs import root_from_leaf_hashes
from ledger.protocol.codes import ErrorCode

_LEAF_PREFIX = b"\x00"  # RFC 6962 leaf prefix, as in ledger.merkle.proofs.leaf_hash


@dataclass(frozen=True)
class EncryptResult:
    """What the owner registers and what the broker checks the upload against."""

    content_hash: bytes
    ciphertext_sha256: bytes
    plaintext_size: int
    ciphertext_size: int
    chunk_size: int  # the header's, which the metadata document declares


@dataclass(frozen=True)
class DecryptResult:
    """The content hash recomputed from the decrypted plaintext, and its size."""

    content_hash: bytes
    plaintext_size: int
    chunk_size: int  # the header's


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

    pieces = _Pieces(chunk_size)

    def seal(slot: _pipeline.Slot, index: int, last: bool) -> list[bytes]:
        plain = slot.input()
        out = slot.output(len(plain) + TAG_SIZE)
        aead.encrypt_into(header.nonce(index), plain, header.aad(index, last=last), out)
        return pieces.leaves_of(plain)

    # SHA-256 over the whole ciphertext cannot be split, so one thread hashes it in order
    # beside the chunk workers, and another writes it.
    writer, hasher = _ordered_stage("drl-write"), _ordered_stage("drl-ciphertext-hash")

    def emit(slot: _pipeline.Slot) -> tuple[Future[Any], ...]:
        nonlocal written
        chunk = slot.written()
        written += len(chunk)
        return (
            writer.submit(dst.write, chunk),
            hasher.submit(ciphertext_hash.update, chunk),
            *pieces.submit(slot.input()),
        )

    try:
        leaves, plaintext_size = _pipeline.run(
            src, in_size=chunk_size, out_size=chunk_size + TAG_SIZE, transform=seal, emit=emit
        )
    finally:
        _stop(writer, hasher, *pieces.stages())
    return EncryptResult(
        content_hash=pieces.root(leaves),
        ciphertext_sha256=ciphertext_hash.digest(),
        plaintext_size=plaintext_size,
        ciphertext_size=written,
        chunk_size=chunk_size,
    )


def decrypt(
    src: BinaryIO,
    dst: BinaryIO,
    key: bytes,
    *,
    expected_content_hash: bytes | None = None,
    expected_chunk_size: int | None = None,
) -> DecryptResult:
    """Decrypt ``src`` into ``dst``, authenticating every chunk and the stream's end.

    Raises :class:`UnsupportedFormat` for an unknown header (a chunk size outside the format's
    range included), and :class:`IntegrityError` for altered, truncated, reordered or spliced
    input, a wrong key, or a content hash other than ``expected_content_hash``. A header whose
    chunk size is not ``expected_chunk_size`` (the signed metadata's ``chunk_size``, when the
    caller has it) is refused with code ``chunking_mismatch`` before any chunk buffer is
    allocated. ``dst`` may by then hold a prefix of authenticated chunks; use
    :func:`ledger.crypto.files.decrypt_to_path` when nothing may be left behind.
    """
    aead = AESGCM(_check_key(key))
    header_bytes = bytearray(HEADER_SIZE)
    header = Header.parse(bytes(header_bytes[: _pipeline.read_full(src, header_bytes)]))
    if expected_chunk_size is not None and header.chunk_size != expected_chunk_size:
        raise IntegrityError(
            f"the ciphertext header declares {header.chunk_size}-byte chunks, the signed "
            f"metadata {expected_chunk_size}; refusing it before reading further",
            code=ErrorCode.CHUNKING_MISMATCH,
        )
    pieces = _Pieces(header.chunk_size)
    size = 0

    def open_chunk(slot: _pipeline.Slot, index: int, last: bool) -> list[bytes]:
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
        return pieces.leaves_of(plain)

    writer = _ordered_stage("drl-write")

    def emit(slot: _pipeline.Slot) -> tuple[Future[Any], ...]:
        nonlocal size
        chunk = slot.written()
        size += len(chunk)
        return (writer.submit(dst.write, chunk), *pieces.submit(chunk))

    try:
        leaves, _ = _pipeline.run(
            src,
            in_size=header.chunk_size + TAG_SIZE,
            out_size=header.chunk_size,
            transform=open_chunk,
            emit=emit,
        )
    finally:
        _stop(writer, *pieces.stages())
    digest = pieces.root(leaves)
    if expected_content_hash is not None and not hmac.compare_digest(digest, expected_content_hash):
        raise IntegrityError("decrypted content does not match the expected content hash")
    return DecryptResult(content_hash=digest, plaintext_size=size, chunk_size=header.chunk_size)


def content_hash(src: BinaryIO) -> bytes:
    """Content hash of a plaintext stream without encrypting it (what ``encrypt`` reports)."""

    def hash_piece(slot: _pipeline.Slot, index: int, last: bool) -> list[bytes]:
        return _piece_leaves(slot.input())

    leaves, _ = _pipeline.run(
        src, in_size=PIECE_SIZE, out_size=0, transform=hash_piece, emit=lambda _: ()
    )
    return root_from_leaf_hashes(leaves)


class _Pieces:
    """The content hash's leaves for one stream, from chunks of any size.

    With a chunk size that is a multiple of ``PIECE_SIZE`` every chunk starts on a piece
    boundary, so ``leaves_of`` (on a worker) hashes the chunk's pieces and ``submit`` does
    nothing. Otherwise ``leaves_of`` returns nothing and ``submit`` hands each plaintext chunk,
    in stream order, to one ordered stage that feeds it into the running piece hash and closes
    a leaf at every 1 MiB boundary; the returned future keeps the chunk's buffer alive until
    it was hashed.
    """

    def __init__(self, chunk_size: int) -> None:
        self.aligned = chunk_size % PIECE_SIZE == 0
        self._stage = None if self.aligned else _ordered_stage("drl-content-hash")
        self._leaves: list[bytes] = []
        self._piece = hashlib.sha256(_LEAF_PREFIX)
        self._filled = 0

    def leaves_of(self, plain: memoryview) -> list[bytes]:
        return _piece_leaves(plain) if self.aligned else []

    def submit(self, plain: memoryview) -> tuple[Future[None], ...]:
        if self._stage is None:
            return ()
        return (self._stage.submit(self._update, plain),)

    def stages(self) -> tuple[ThreadPoolExecutor, ...]:
        return () if self._stage is None else (self._stage,)

    def root(self, worker_leaves: list[bytes]) -> bytes:
        """The content hash, once the pipeline and the stage are done."""
        if self.aligned:
            return root_from_leaf_hashes(worker_leaves)
        if self._filled:
            self._close_piece()
        return root_from_leaf_hashes(self._leaves)

    def _update(self, plain: memoryview) -> None:
        while plain:
            take = PIECE_SIZE - self._filled
            self._piece.update(plain[:take])
            self._filled += min(take, len(plain))
            plain = plain[take:]
            if self._filled == PIECE_SIZE:
                self._close_piece()

    def _close_piece(self) -> None:
        self._leaves.append(self._piece.digest())
        self._piece = hashlib.sha256(_LEAF_PREFIX)
        self._filled = 0


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


def _piece_leaves(plain: memoryview) -> list[bytes]:
    """Leaf hashes of ``plain`` cut into 1 MiB pieces, for a chunk starting on a boundary.

    An empty chunk (the one chunk of an empty plaintext, which only marks the end of the
    stream) has no piece: the empty plaintext's content hash is the root of the empty tree.
    """
    return [_leaf_hash(plain[i : i + PIECE_SIZE]) for i in range(0, len(plain), PIECE_SIZE)]


def _leaf_hash(chunk: memoryview) -> bytes:
    """:func:`ledger.merkle.proofs.leaf_hash` of a chunk, without copying it.

    ``leaf_hash`` takes ``bytes`` and prepends the 0x00 leaf prefix by concatenation, which
    costs two copies of every chunk on a worker thread, about 15 % of the hashing CPU. The
    result is identical (a test holds the two together).
    """
    digest = hashlib.sha256(_LEAF_PREFIX)
    digest.update(chunk)
    return digest.digest()

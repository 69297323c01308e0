"""Dataset encryption format, version 1: the header, per-chunk nonces and associated data.

Layout (all integers big-endian)::

    header  = magic b"DRLE" | version u8 (= 1) | chunk_size u32 | nonce_prefix (8 random bytes)
    chunk_i = AES-256-GCM(dek, nonce_i, plaintext_i, aad_i)       # len(plaintext_i) + 16 bytes
    nonce_i = nonce_prefix | i u32
    aad_i   = header | i u32 | last u8 (1 on the final chunk, else 0)

Every chunk but the last holds exactly ``chunk_size`` plaintext bytes and the last holds
``1..chunk_size`` (``0`` only when the whole plaintext is empty, which still gets one final chunk).
So a plaintext has exactly one encoding per header. The content hash does not depend on the
encoding: it is the Merkle root over fixed ``PIECE_SIZE`` (1 MiB) pieces of the plaintext,
whatever ``chunk_size`` the header names (see :mod:`ledger.crypto.stream`).

Why each field is bound where it is:

- The header is in every chunk's associated data, so changing the chunk size or nonce prefix, or
  moving a chunk into another file (whose random prefix differs, even under the same key), fails
  authentication.
- The chunk index is in the nonce and the associated data, so reordering fails.
- The last-chunk flag makes a stream that was cut at a chunk boundary fail: the chunk that is
  now last was sealed as "not last".

A random 64-bit prefix is safe because every dataset gets its own data key; the prefix only has
to keep chunks of different files under one key apart, not to be unique across keys.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

from ledger.errors import CryptoError, IntegrityError, UnsupportedFormat

MAGIC = b"DRLE"
VERSION = 1
KEY_SIZE = 32
TAG_SIZE = 16
NONCE_PREFIX_SIZE = 8
# The content hash's leaves are the plaintext cut into pieces of this size, for every chunk size.
PIECE_SIZE = 1 << 20
DEFAULT_CHUNK_SIZE = PIECE_SIZE
# Bounds keep a hostile header from making a reader allocate gigabytes per chunk, or from
# producing absurd per-chunk overhead.
MIN_CHUNK_SIZE = 64
MAX_CHUNK_SIZE = 16 << 20
MAX_CHUNKS = 1 << 32

_HEADER = struct.Struct(">4sBI8s")
HEADER_SIZE = _HEADER.size
_INDEX = struct.Struct(">I")


@dataclass(frozen=True)
class Header:
    """The fixed header at the start of every encrypted dataset."""

    chunk_size: int
    nonce_prefix: bytes
    version: int = VERSION

    @classmethod
    def new(cls, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Header:
        """A header for a fresh encryption, with a random nonce prefix."""
        check_chunk_size(chunk_size, error=CryptoError)
        return cls(chunk_size=chunk_size, nonce_prefix=os.urandom(NONCE_PREFIX_SIZE))

    @classmethod
    def parse(cls, data: bytes) -> Header:
        """Parse and validate a header; a short one means the stream was truncated."""
        if len(data) < HEADER_SIZE:
            raise IntegrityError("encrypted dataset is truncated inside its header")
        magic, version, chunk_size, prefix = _HEADER.unpack_from(data)
        if magic != MAGIC:
            raise UnsupportedFormat("not an encrypted dataset (bad magic)")
        if version != VERSION:
            raise UnsupportedFormat(f"unsupported dataset format version {version}")
        check_chunk_size(chunk_size, error=UnsupportedFormat)
        return cls(chunk_size=chunk_size, nonce_prefix=prefix, version=version)

    def pack(self) -> bytes:
        """The exact header bytes, also bound into every chunk's associated data."""
        return _HEADER.pack(MAGIC, self.version, self.chunk_size, self.nonce_prefix)

    def nonce(self, index: int) -> bytes:
        """96-bit nonce of chunk ``index``: random prefix || 32-bit counter."""
        return self.nonce_prefix + _pack_index(index)

    def aad(self, index: int, *, last: bool) -> bytes:
        """Associated data of chunk ``index``: header || index || last-chunk flag."""
        return self.pack() + _pack_index(index) + (b"\x01" if last else b"\x00")


def check_chunk_size(chunk_size: int, *, error: type[CryptoError]) -> None:
    """Refuse chunk sizes outside the supported range, raising ``error``."""
    if not MIN_CHUNK_SIZE <= chunk_size <= MAX_CHUNK_SIZE:
        raise error(
            f"chunk size {chunk_size} outside the supported {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}"
        )


def _pack_index(index: int) -> bytes:
    if not 0 <= index < MAX_CHUNKS:
        raise CryptoError("dataset has more chunks than the format can number; use larger chunks")
    return _INDEX.pack(index)

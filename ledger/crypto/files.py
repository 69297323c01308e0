"""Path helpers that never leave a partial or unverified file at the destination.

Output goes to a private temporary file next to the destination and is renamed into place only
after the whole stream was authenticated (and, for decryption, the content hash matched). On
any failure the temporary file is removed, so no unauthenticated plaintext ever appears at the
final path. The rename is atomic because the temporary file lives in the same directory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import BinaryIO

from ledger.crypto.format import DEFAULT_CHUNK_SIZE
from ledger.crypto.stream import DecryptResult, EncryptResult, decrypt, encrypt

StrPath = str | os.PathLike[str]


def encrypt_file(
    src: StrPath, dst: StrPath, key: bytes, *, chunk_size: int = DEFAULT_CHUNK_SIZE
) -> EncryptResult:
    """Encrypt the file ``src`` into ``dst`` (replaced only when encryption completes)."""
    with open(src, "rb") as source, atomic_output(dst) as out:
        return encrypt(source, out, key, chunk_size=chunk_size)


def decrypt_file(
    src: StrPath,
    dst: StrPath,
    key: bytes,
    *,
    expected_content_hash: bytes | None = None,
    expected_chunk_size: int | None = None,
) -> DecryptResult:
    """Decrypt the file ``src`` into ``dst``; see :func:`decrypt_to_path`."""
    with open(src, "rb") as source:
        return decrypt_to_path(
            source,
            dst,
            key,
            expected_content_hash=expected_content_hash,
            expected_chunk_size=expected_chunk_size,
        )


def decrypt_to_path(
    src: BinaryIO,
    path: StrPath,
    key: bytes,
    *,
    expected_content_hash: bytes | None = None,
    expected_chunk_size: int | None = None,
) -> DecryptResult:
    """Decrypt ``src`` to ``path``, which appears only once everything verified.

    Raises :class:`ledger.errors.IntegrityError` (and leaves ``path`` untouched) when a chunk
    fails authentication or the content hash differs from ``expected_content_hash``.
    """
    with atomic_output(path) as out:
        return decrypt(
            src,
            out,
            key,
            expected_content_hash=expected_content_hash,
            expected_chunk_size=expected_chunk_size,
        )


@contextmanager
def atomic_output(path: StrPath) -> Iterator[BinaryIO]:
    """Yield a temporary file in ``path``'s directory; rename it to ``path`` on clean exit.

    The file is created with mode 0600 (it may hold plaintext) and flushed to disk before the
    rename, so a crash cannot leave a renamed but empty file at ``path``.
    """
    target = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            yield out
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise

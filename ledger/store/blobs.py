"""Content-addressed storage for ciphertext, named by SHA-256.

The broker only ever stores ciphertext here; a blob's name is the SHA-256 of its bytes, so a
name proves what the bytes must be and every reader can check it.

``BlobStore`` is the small interface services use; ``FileBlobStore(root)`` keeps each blob in
``root/ab/abcdef...`` (the first byte of the digest in hex as a fan-out folder), and
``ledger.store.s3blobs.S3BlobStore`` the same layout in an S3-compatible object store.
``open_blob_store(DRL_BLOB_STORE)`` picks one: a directory (a shared volume serves several
replicas) or ``s3://bucket/prefix``.

Writing is crash-safe: bytes stream (1 MiB at a time, constant memory) into a temporary file
under ``root/.tmp`` -- the same filesystem -- while being hashed and counted; the file is
fsynced, checked against the expected digest and size limit, made read-only and renamed into
place atomically, and the folder is fsynced. A crash can leave a temporary file behind but
never a partial file under a digest name. ``cleanup_temp()`` (run when the store opens) removes
temporary files no live writer holds: each writer keeps an exclusive ``flock`` on its temporary
file, which the kernel drops when the writer's process dies, so several processes (or broker
replicas on a shared volume with working ``flock``) may share one root.

Reading checks as it goes: ``open(digest)`` returns a stream that hashes what it hands out and
raises ``BlobAltered`` at end-of-file when the bytes do not match the name, so a reader that
consumes a blob to the end always learns of tampering. ``verify(digest)`` reads it all and
answers ``True`` or ``False``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import io
import os
import secrets
import stat
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from ledger.errors import ConfigurationError, StorageError
from ledger.private import private_dir
from ledger.protocol.codes import ErrorCode
from ledger.store.errors import BlobAltered, BlobDigestMismatch, BlobMissing, BlobTooLarge

CHUNK_SIZE = 1 << 20
"""Bytes read or written at a time: memory use does not grow with the blob."""

DIGEST_SIZE = 32
_TEMP_DIR = ".tmp"
_TEMP_SUFFIX = ".part"


class ByteSource(Protocol):
    """What ``write`` reads from: any binary file-like object (``BinaryIO`` and friends)."""

    def read(self, size: int, /) -> bytes:
        """Up to ``size`` bytes; ``b""`` only at the end."""
        ...


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """A stored blob: its SHA-256 (its name) and its size in bytes."""

    sha256: bytes
    size: int

    @property
    def hex(self) -> str:
        return self.sha256.hex()


class BlobStore(ABC):
    """Where ciphertext lives, addressed by the SHA-256 of its bytes."""

    @abstractmethod
    def write(
        self,
        src: ByteSource,
        *,
        expected_sha256: bytes | None = None,
        max_size: int | None = None,
    ) -> BlobInfo:
        """Store everything ``src`` yields; all or nothing.

        Raises ``BlobDigestMismatch`` if the bytes do not hash to ``expected_sha256`` and
        ``BlobTooLarge`` as soon as more than ``max_size`` bytes arrive; nothing is stored
        then. Writing bytes that are already stored is not an error.
        """

    @abstractmethod
    def open(self, sha256: bytes) -> BinaryIO:
        """A reader of the blob that raises ``BlobAltered`` at EOF if the bytes were altered.

        Raises ``BlobMissing`` when there is no such blob. Close it when done.
        """

    @abstractmethod
    def exists(self, sha256: bytes) -> bool:
        """Whether a blob is stored under ``sha256``."""

    @abstractmethod
    def size(self, sha256: bytes) -> int:
        """The stored blob's size in bytes; ``BlobMissing`` if there is none."""

    @abstractmethod
    def delete(self, sha256: bytes) -> bool:
        """Remove the blob; ``False`` if there was none."""

    @abstractmethod
    def iter_digests(self) -> Iterator[bytes]:
        """The digest of every stored blob, in no particular order."""

    def check(self) -> None:  # noqa: B027 - optional: a store with nothing to probe passes
        """Raise ``StorageError`` (``blob_store_unavailable``) if the store cannot be used now."""

    def verify(self, sha256: bytes) -> bool:
        """Whether the stored bytes still hash to ``sha256``; ``BlobMissing`` if absent."""
        try:
            with self.open(sha256) as reader:
                while reader.read(CHUNK_SIZE):
                    pass
        except BlobAltered:
            return False
        return True


class FileBlobStore(BlobStore):
    """Blobs as read-only files under ``root``, named by their SHA-256 in hex."""

    def __init__(self, root: Path | str, *, cleanup: bool = True) -> None:
        self._root = Path(root)
        self._temp = self._root / _TEMP_DIR
        private_dir(self._root)
        private_dir(self._temp)
        if cleanup:
            self.cleanup_temp()

    @property
    def root(self) -> Path:
        return self._root

    def __repr__(self) -> str:
        return f"FileBlobStore({str(self._root)!r})"

    def check(self) -> None:
        if not (self._temp.is_dir() and os.access(self._temp, os.W_OK | os.X_OK)):
            raise StorageError(
                "the blob directory is not there or not writable (a shared volume unmounted?)",
                code=ErrorCode.BLOB_STORE_UNAVAILABLE,
            )

    def path(self, sha256: bytes) -> Path:
        """Where the blob named ``sha256`` lives (whether or not it exists)."""
        name = _checked(sha256).hex()
        return self._root / name[:2] / name

    # -- writing -------------------------------------------------------------------------------

    def write(
        self,
        src: ByteSource,
        *,
        expected_sha256: bytes | None = None,
        max_size: int | None = None,
    ) -> BlobInfo:
        check_write(expected_sha256, max_size)
        fd, temp = self._new_temp()
        try:
            hasher = hashlib.sha256()
            size = 0
            with open(fd, "wb", closefd=False) as out:
                while chunk := src.read(CHUNK_SIZE):
                    size += len(chunk)
                    if max_size is not None and size > max_size:
                        raise BlobTooLarge(max_size=max_size)
                    hasher.update(chunk)
                    out.write(chunk)
            os.fsync(fd)
            digest = hasher.digest()
            if expected_sha256 is not None and digest != expected_sha256:
                raise BlobDigestMismatch(expected=expected_sha256, actual=digest)
            os.fchmod(fd, 0o400)  # read-only, and for the owner only
            final = self.path(digest)
            self._make_shard(final.parent)
            # Replacing an existing blob is harmless: the new bytes were just checked to hash
            # to the same name (and repair a damaged copy).
            os.replace(temp, final)
            _fsync_dir(final.parent)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
        finally:
            os.close(fd)  # also drops the writer's flock
        return BlobInfo(sha256=digest, size=size)

    def _new_temp(self) -> tuple[int, Path]:
        """A new temporary file, exclusively flocked, that ``cleanup_temp`` cannot have taken."""
        while True:
            path = self._temp / f"{os.getpid()}-{secrets.token_hex(8)}{_TEMP_SUFFIX}"
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                # A concurrent cleanup_temp may have locked and unlinked the file between our
                # create and our lock; if so the name no longer leads to our file.
                if _same_file(fd, path):
                    return fd, path
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def _make_shard(self, shard: Path) -> None:
        if not shard.is_dir():
            shard.mkdir(mode=0o700, exist_ok=True)
            _fsync_dir(self._root)

    # -- reading -------------------------------------------------------------------------------

    def open(self, sha256: bytes) -> BinaryIO:
        path = self.path(sha256)
        try:
            raw = io.FileIO(path, "rb")
        except FileNotFoundError:
            raise BlobMissing(sha256) from None
        return io.BufferedReader(_VerifyingReader(raw, sha256), buffer_size=CHUNK_SIZE)

    def exists(self, sha256: bytes) -> bool:
        return self.path(sha256).is_file()

    def size(self, sha256: bytes) -> int:
        try:
            return self.path(sha256).stat().st_size
        except FileNotFoundError:
            raise BlobMissing(sha256) from None

    def delete(self, sha256: bytes) -> bool:
        path = self.path(sha256)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        _fsync_dir(path.parent)
        return True

    def iter_digests(self) -> Iterator[bytes]:
        for shard in sorted(self._root.iterdir()):
            if not (len(shard.name) == 2 and _is_hex(shard.name) and shard.is_dir()):
                continue
            for entry in sorted(shard.iterdir()):
                name = entry.name
                if len(name) == 2 * DIGEST_SIZE and name[:2] == shard.name and _is_hex(name):
                    yield bytes.fromhex(name)

    # -- crash recovery ------------------------------------------------------------------------

    def cleanup_temp(self) -> int:
        """Remove temporary files left by crashed writers; returns how many were removed.

        A temporary file whose ``flock`` can be taken has no live writer (the kernel releases
        the lock when a process dies); files of writers still running are left alone.
        """
        removed = 0
        for entry in self._temp.iterdir():
            if not entry.name.endswith(_TEMP_SUFFIX):
                continue
            try:
                fd = os.open(entry, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                        continue  # a live writer holds it
                    raise
                if _same_file(fd, entry):
                    entry.unlink()
                    removed += 1
            finally:
                os.close(fd)
        return removed


class _VerifyingReader(io.RawIOBase):
    """Raw reader that hashes what it returns and raises ``BlobAltered`` at a bad end.

    The check runs when the bytes read reach the size the file had when opened, and again at
    EOF (should it have grown since).
    """

    def __init__(self, raw: io.FileIO, expected: bytes) -> None:
        super().__init__()
        self._raw = raw
        self._expected = expected
        self._hasher = hashlib.sha256()
        self._remaining = os.fstat(raw.fileno()).st_size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        count = self._raw.readinto(buffer)
        if count is None:  # non-blocking mode; never the case for a regular file
            raise OSError("unexpected non-blocking read")
        if count:
            self._hasher.update(memoryview(buffer)[:count])
            self._remaining -= count
        if count == 0 or self._remaining == 0:
            # Checked on the last byte too, so a reader that stops after exactly ``size``
            # bytes (and never asks for EOF) learns of tampering as well.
            self._check()
        return count

    def _check(self) -> None:
        actual = self._hasher.copy().digest()
        if actual != self._expected:
            raise BlobAltered(self._expected, actual=actual)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


class VerifyingStream(io.RawIOBase):
    """Raw reader over any ``read(n)`` source of ``size`` bytes (an object store's body) that
    hashes what it returns and raises ``BlobAltered`` when the bytes end badly."""

    def __init__(self, raw: Any, expected: bytes, *, size: int) -> None:
        super().__init__()
        self._raw = raw
        self._expected = expected
        self._hasher = hashlib.sha256()
        self._remaining = size
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self._raw.read(len(buffer))
        count = len(data)
        if count:
            buffer[:count] = data
            self._hasher.update(data)
            self._remaining -= count
        if count == 0 or self._remaining <= 0:
            self._check()
        return count

    def _check(self) -> None:
        actual = self._hasher.copy().digest()
        if actual != self._expected:
            raise BlobAltered(self._expected, actual=actual)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()
        super().close()


def open_blob_store(
    where: str | None,
    *,
    default: Path,
    s3_endpoint_url: str | None = None,
    s3_region: str | None = None,
) -> BlobStore:
    """The store ``DRL_BLOB_STORE`` names: a directory (``/path``, ``file:///path``; a shared
    volume for several replicas) or ``s3://bucket[/prefix]``; ``None`` means ``default``."""
    if not where:
        return FileBlobStore(default)
    if where.startswith("s3://"):
        from ledger.store.s3blobs import S3BlobStore

        bucket, _, prefix = where[len("s3://") :].partition("/")
        return S3BlobStore(bucket, prefix, endpoint_url=s3_endpoint_url, region=s3_region)
    if where.startswith("file://"):
        where = where[len("file://") :]
    elif "://" in where:
        raise ConfigurationError(
            f"DRL_BLOB_STORE must be a directory or s3://bucket[/prefix], "
            f"not a {where.split('://', 1)[0]}:// URL"
        )
    return FileBlobStore(Path(where).expanduser())


def check_write(expected_sha256: bytes | None, max_size: int | None) -> None:
    """The arguments of a ``BlobStore.write``, checked alike by every store."""
    if expected_sha256 is not None:
        _checked(expected_sha256)
    if max_size is not None and max_size < 0:
        raise ValueError(f"max_size must not be negative, got {max_size}")


def checked_digest(sha256: bytes) -> bytes:
    """``sha256`` as bytes if it is a 32-byte digest (``ValueError`` otherwise)."""
    return _checked(sha256)


def _checked(sha256: bytes) -> bytes:
    if not isinstance(sha256, bytes | bytearray) or len(sha256) != DIGEST_SIZE:
        raise ValueError(f"a blob name is a {DIGEST_SIZE}-byte SHA-256 digest, got {sha256!r}")
    return bytes(sha256)


def _is_hex(name: str) -> bool:
    return all(ch in "0123456789abcdef" for ch in name)


def _same_file(fd: int, path: Path) -> bool:
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino) and stat.S_ISREG(
        on_disk.st_mode
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

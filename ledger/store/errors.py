"""Errors of the storage layer, under the library's single root (``ledger.errors``)::

    LedgerError
    └── StorageError                            (each also mixes in the error it means)
        ├── DatabaseNotMigrated (ConfigurationError)  log_state row missing: run upgrade()
        ├── BlobDigestMismatch (IntegrityError)  uploaded bytes differ from the digest promised
        ├── BlobAltered (IntegrityError)         stored bytes no longer hash to their name
        ├── BlobMissing (NotFound)               no blob under that digest
        ├── BlobTooLarge (PayloadTooLarge)       upload exceeded the size limit
        ├── DatabaseBusy (TimeoutError)          SQLite write lock not free within busy_timeout
        └── NodeConflict (ValueError)            a different hash at an existing tree node

Each has a stable ``code`` (the class docstring says when it is raised).
"""

from __future__ import annotations

from ledger.errors import (
    ConfigurationError,
    IntegrityError,
    NotFound,
    PayloadTooLarge,
    StorageError,
)
from ledger.protocol.codes import ErrorCode


def _hex(digest: bytes | None) -> str:
    return "(none)" if digest is None else digest.hex()


class BlobDigestMismatch(StorageError, IntegrityError):
    """The bytes written do not hash to the SHA-256 the caller expected; nothing was stored."""

    code = ErrorCode.BLOB_DIGEST_MISMATCH

    def __init__(self, *, expected: bytes, actual: bytes) -> None:
        super().__init__(
            f"blob digest mismatch: expected sha256 {_hex(expected)}, got {_hex(actual)}"
        )
        self.expected = expected
        self.actual = actual


class BlobAltered(StorageError, IntegrityError):
    """A stored blob no longer hashes to the digest it is named by (tampering or bit rot)."""

    code = ErrorCode.BLOB_ALTERED

    def __init__(self, digest: bytes, *, actual: bytes | None = None) -> None:
        super().__init__(
            f"blob {_hex(digest)} is altered: its bytes hash to {_hex(actual)}"
            if actual is not None
            else f"blob {_hex(digest)} is altered"
        )
        self.digest = digest
        self.actual = actual


class BlobMissing(StorageError, NotFound):
    """No blob is stored under the digest asked for."""

    code = ErrorCode.BLOB_MISSING

    def __init__(self, digest: bytes) -> None:
        super().__init__(f"no blob is stored under sha256 {_hex(digest)}")
        self.digest = digest


class BlobTooLarge(StorageError, PayloadTooLarge):
    """An upload went past the size limit; reading stopped there and nothing was stored."""

    code = ErrorCode.BLOB_TOO_LARGE

    def __init__(self, *, max_size: int) -> None:
        super().__init__(f"blob is larger than the limit of {max_size} bytes")
        self.max_size = max_size


class NodeConflict(StorageError, ValueError):
    """A Merkle tree node is already stored with a different hash; stored nodes never change."""

    code = ErrorCode.MERKLE_NODE_CONFLICT

    def __init__(self, level: int, index: int) -> None:
        super().__init__(
            f"Merkle node (level={level}, index={index}) is already stored with another hash"
        )
        self.level = level
        self.index = index


class DatabaseBusy(StorageError, TimeoutError):
    """Another writer held the SQLite database longer than the busy timeout; nothing written."""

    code = ErrorCode.DATABASE_BUSY

    def __init__(self, timeout_seconds: float) -> None:
        super().__init__(
            f"the database stayed locked by another writer for {timeout_seconds:g} s; "
            "nothing was written, try again"
        )
        self.timeout_seconds = timeout_seconds


class DatabaseNotMigrated(StorageError, ConfigurationError):
    """The database lacks the schema (or the log_state row): run ``Database.upgrade()``."""

    code = ErrorCode.DATABASE_NOT_MIGRATED

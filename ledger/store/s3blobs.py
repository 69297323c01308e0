"""Ciphertext in an S3-compatible object store (AWS S3, MinIO, Ceph RGW, ...), through boto3.

``S3BlobStore(bucket, prefix)`` keeps each blob at ``prefix/ab/abcdef...`` (the same layout as
:class:`~ledger.store.blobs.FileBlobStore`), so several broker replicas share one store and a
directory store can be copied into a bucket as it is.

The guarantees are the file store's:

- **Hash while writing, all or nothing.** Bytes stream from the source (constant memory: a
  multipart upload of ``PART_SIZE`` parts, at most two in flight) to a temporary key under
  ``prefix/.tmp/`` while being hashed and counted; only when they hash to the expected digest
  (and stayed under ``max_size``) is the object copied to its digest name, server-side, and
  the temporary key deleted. An object under a digest name is complete (S3 writes an object
  atomically) and was checked; a crash leaves at most a temporary key (or an incomplete
  multipart upload), removed by :meth:`cleanup_temp` once older than ``TEMP_MAX_AGE``.
- **Verify while reading.** ``open`` streams the object and raises ``BlobAltered`` at its end
  if the bytes do not hash to the name.

Credentials come from boto3's usual chain (``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``,
a profile, an instance role); ``endpoint_url`` names a non-AWS service. Errors name no endpoint
and no credential: a store that cannot be reached is ``blob_store_unavailable`` (503).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import secrets
from collections.abc import Iterator
from typing import Any, BinaryIO

from ledger.errors import ConfigurationError, StorageError
from ledger.protocol.codes import ErrorCode
from ledger.redact import scrub_endpoints
from ledger.store.blobs import (
    CHUNK_SIZE,
    DIGEST_SIZE,
    BlobInfo,
    BlobStore,
    ByteSource,
    VerifyingStream,
    check_write,
    checked_digest,
)
from ledger.store.errors import BlobDigestMismatch, BlobMissing, BlobTooLarge

#: Multipart part size: memory per upload is about two parts.
PART_SIZE = 8 * 1024 * 1024
#: Temporary keys and multipart uploads older than this have no live writer.
TEMP_MAX_AGE = dt.timedelta(hours=24)
_TEMP = ".tmp/"


class S3BlobStore(BlobStore):
    """Blobs as objects ``prefix/ab/abcdef...`` in ``bucket``."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str | None = None,
        client: Any | None = None,
        cleanup: bool = True,
    ) -> None:
        if not bucket:
            raise ConfigurationError("an S3 blob store needs a bucket: s3://bucket[/prefix]")
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        if client is None:
            client = _client(endpoint_url, region)
        self._s3 = client
        from boto3.s3.transfer import TransferConfig  # type: ignore[import-untyped]

        self._transfer = TransferConfig(
            multipart_threshold=PART_SIZE,
            multipart_chunksize=PART_SIZE,
            max_concurrency=2,
            use_threads=True,
        )
        if cleanup:
            with self._errors():
                self.cleanup_temp()

    def key(self, sha256: bytes) -> str:
        name = checked_digest(sha256).hex()
        return f"{self.prefix}{name[:2]}/{name}"

    def __repr__(self) -> str:
        return f"S3BlobStore(s3://{self.bucket}/{self.prefix})"

    # -- writing -------------------------------------------------------------------------------

    def write(
        self,
        src: ByteSource,
        *,
        expected_sha256: bytes | None = None,
        max_size: int | None = None,
    ) -> BlobInfo:
        check_write(expected_sha256, max_size)
        temp = f"{self.prefix}{_TEMP}{secrets.token_hex(16)}"
        counted = _Counting(src, max_size)
        try:
            with self._errors():
                self._s3.upload_fileobj(counted, self.bucket, temp, Config=self._transfer)
            digest = counted.hasher.digest()
            if expected_sha256 is not None and digest != expected_sha256:
                raise BlobDigestMismatch(expected=expected_sha256, actual=digest)
            final = self.key(digest)
            with self._errors():
                # Content-addressed: an object already there holds these very bytes (or a
                # damaged copy, which the checked copy below repairs).
                self._s3.copy(
                    {"Bucket": self.bucket, "Key": temp}, self.bucket, final, Config=self._transfer
                )
        finally:
            # cleanup_temp removes a temporary key left here; the first error is the one to show
            with contextlib.suppress(Exception):
                self._s3.delete_object(Bucket=self.bucket, Key=temp)
        return BlobInfo(sha256=digest, size=counted.size)

    # -- reading -------------------------------------------------------------------------------

    def open(self, sha256: bytes) -> BinaryIO:
        key = self.key(sha256)
        with self._errors(missing=sha256):
            answer = self._s3.get_object(Bucket=self.bucket, Key=key)
        body = answer["Body"]
        stream = VerifyingStream(body, sha256, size=int(answer["ContentLength"]))
        return io.BufferedReader(stream, buffer_size=CHUNK_SIZE)

    def exists(self, sha256: bytes) -> bool:
        try:
            self.size(sha256)
        except BlobMissing:
            return False
        return True

    def size(self, sha256: bytes) -> int:
        with self._errors(missing=sha256):
            answer = self._s3.head_object(Bucket=self.bucket, Key=self.key(sha256))
        return int(answer["ContentLength"])

    def delete(self, sha256: bytes) -> bool:
        if not self.exists(sha256):
            return False
        with self._errors():
            self._s3.delete_object(Bucket=self.bucket, Key=self.key(sha256))
        return True

    def iter_digests(self) -> Iterator[bytes]:
        with self._errors():
            pages = self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    rest = str(item["Key"])[len(self.prefix) :]
                    shard, _, name = rest.partition("/")
                    if (
                        len(name) == 2 * DIGEST_SIZE
                        and name[:2] == shard
                        and all(c in "0123456789abcdef" for c in name)
                    ):
                        yield bytes.fromhex(name)

    def check(self) -> None:
        with self._errors():
            self._s3.head_bucket(Bucket=self.bucket)

    # -- crash recovery ------------------------------------------------------------------------

    def cleanup_temp(self, *, older_than: dt.timedelta = TEMP_MAX_AGE) -> int:
        """Remove temporary keys and multipart uploads older than ``older_than``."""
        cutoff = dt.datetime.now(dt.UTC) - older_than
        removed = 0
        pages = self._s3.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix + _TEMP
        )
        for page in pages:
            for item in page.get("Contents", []):
                if item["LastModified"] < cutoff:
                    self._s3.delete_object(Bucket=self.bucket, Key=item["Key"])
                    removed += 1
        uploads = self._s3.list_multipart_uploads(Bucket=self.bucket, Prefix=self.prefix + _TEMP)
        for upload in uploads.get("Uploads", []):
            if upload["Initiated"] < cutoff:
                self._s3.abort_multipart_upload(
                    Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )
                removed += 1
        return removed

    # -- errors --------------------------------------------------------------------------------

    def _errors(self, *, missing: bytes | None = None) -> contextlib.AbstractContextManager[None]:
        return _translated(missing)


@contextlib.contextmanager
def _translated(missing: bytes | None) -> Iterator[None]:
    """boto3's errors as the store's: missing object, or the store unreachable (503)."""
    from botocore.exceptions import (  # type: ignore[import-untyped]
        BotoCoreError,
        ClientError,
    )

    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        if missing is not None and code in ("404", "NoSuchKey", "NotFound"):
            raise BlobMissing(missing) from None
        message = scrub_endpoints(str(error.get("Message", "")))
        raise StorageError(
            f"the object store refused: {code} {message}",
            code=ErrorCode.BLOB_STORE_UNAVAILABLE,
        ) from None
    except BotoCoreError as exc:
        raise StorageError(
            f"the object store is not reachable ({type(exc).__name__})",
            code=ErrorCode.BLOB_STORE_UNAVAILABLE,
        ) from None


class _Counting(io.RawIOBase):
    """Hands the source's bytes to the uploader, hashing and counting them on the way."""

    def __init__(self, src: ByteSource, max_size: int | None) -> None:
        super().__init__()
        self._src = src
        self._max = max_size
        self.hasher = hashlib.sha256()
        self.size = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1, /) -> bytes:
        chunk = self._src.read(CHUNK_SIZE if size is None or size < 0 else size)
        if chunk:
            self.size += len(chunk)
            if self._max is not None and self.size > self._max:
                raise BlobTooLarge(max_size=self._max)
            self.hasher.update(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _client(endpoint_url: str | None, region: str | None) -> Any:
    try:
        import boto3  # type: ignore[import-untyped]
        from botocore.config import Config  # type: ignore[import-untyped]
    except ImportError:
        raise ConfigurationError(
            "an s3:// blob store needs boto3: pip install boto3",
            code=ErrorCode.CONFIGURATION_ERROR,
        ) from None
    return boto3.client(
        "s3",
        endpoint_url=endpoint_url,
        region_name=region,
        config=Config(
            retries={"max_attempts": 3, "mode": "standard"},
            connect_timeout=5,
            read_timeout=60,
            s3={"addressing_style": "path"} if endpoint_url else None,
        ),
    )

"""The S3 blob store against a real S3-protocol server: moto's standalone server (PyPI).

moto's server is a separate HTTP server speaking the S3 REST protocol (signatures, multipart
uploads, server-side copy, ranged and streamed reads), so boto3 runs exactly as against AWS or
MinIO; it installs from PyPI (``moto[server]``), which this machine reaches, where MinIO's own
binary does not. Same guarantees as the file store: all or nothing, hash while writing,
verify while reading, and errors that name no endpoint.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator

import pytest

from ledger.errors import StorageError
from ledger.store.blobs import open_blob_store
from ledger.store.errors import BlobAltered, BlobDigestMismatch, BlobMissing, BlobTooLarge
from ledger.store.s3blobs import PART_SIZE, S3BlobStore
from tests.support.net import free_port

BUCKET = "drl-ciphertext"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        reason = (
            "moto[server] (the S3 test server, PyPI) is not installed: pip install 'moto[server]'"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@pytest.fixture
def store(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> S3BlobStore:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "drl-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "drl-test-secret")
    import boto3

    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
    if BUCKET not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=BUCKET)
    prefix = f"t{os.urandom(4).hex()}"
    chosen = open_blob_store(
        f"s3://{BUCKET}/{prefix}", default=None, s3_endpoint_url=endpoint, s3_region="us-east-1"
    )  # type: ignore[arg-type]
    assert isinstance(chosen, S3BlobStore)
    return chosen


def _keys(store: S3BlobStore) -> list[str]:
    listed = store._s3.list_objects_v2(Bucket=BUCKET, Prefix=store.prefix)
    return [item["Key"] for item in listed.get("Contents", [])]


def test_a_multipart_blob_streams_in_and_out_unchanged(store: S3BlobStore) -> None:
    data = os.urandom(2 * PART_SIZE + 12345)  # three parts
    digest = hashlib.sha256(data).digest()
    info = store.write(io.BytesIO(data), expected_sha256=digest)
    assert (info.sha256, info.size) == (digest, len(data))
    with store.open(digest) as reader:
        assert reader.read() == data
    assert store.exists(digest)
    assert store.size(digest) == len(data)
    assert list(store.iter_digests()) == [digest]
    assert store.verify(digest)
    assert _keys(store) == [store.key(digest)]  # no temporary key left behind


def test_bytes_that_do_not_hash_to_the_promise_leave_nothing(store: S3BlobStore) -> None:
    with pytest.raises(BlobDigestMismatch):
        store.write(io.BytesIO(b"ciphertext"), expected_sha256=b"\x01" * 32)
    assert _keys(store) == []


def test_a_blob_over_the_limit_is_refused_and_leaves_nothing(store: S3BlobStore) -> None:
    with pytest.raises(BlobTooLarge):
        store.write(io.BytesIO(os.urandom(PART_SIZE + 1)), max_size=PART_SIZE)
    assert _keys(store) == []


def test_an_object_altered_in_the_bucket_is_caught_while_reading(store: S3BlobStore) -> None:
    data = os.urandom(3000)
    info = store.write(io.BytesIO(data))
    store._s3.put_object(Bucket=BUCKET, Key=store.key(info.sha256), Body=b"X" + data[1:])
    with pytest.raises(BlobAltered), store.open(info.sha256) as reader:
        reader.read()
    assert not store.verify(info.sha256)


def test_a_missing_blob_is_blob_missing_and_delete_says_so(store: S3BlobStore) -> None:
    absent = b"\x02" * 32
    with pytest.raises(BlobMissing):
        store.open(absent)
    assert not store.exists(absent)
    assert store.delete(absent) is False
    info = store.write(io.BytesIO(b"abc"))
    assert store.delete(info.sha256) is True
    assert not store.exists(info.sha256)


def test_an_unreachable_store_is_503_without_its_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "drl-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "drl-test-secret")
    port = free_port()
    with pytest.raises(StorageError) as info:
        S3BlobStore(
            BUCKET, endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1"
        )  # cleanup at open lists the bucket
    assert info.value.code == "blob_store_unavailable"
    assert str(port) not in info.value.message
    assert "127.0.0.1" not in info.value.message

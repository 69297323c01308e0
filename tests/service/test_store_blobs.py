"""Content-addressed ciphertext files (ledger.store.blobs.FileBlobStore)."""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from ledger.errors import IntegrityError, LedgerError, NotFound
from ledger.store.blobs import CHUNK_SIZE, BlobInfo, BlobStore, FileBlobStore
from ledger.store.errors import BlobAltered, BlobDigestMismatch, BlobMissing, BlobTooLarge

ROOT = Path(__file__).resolve().parents[2]
DATA = os.urandom(3 * CHUNK_SIZE + 12345)  # crosses chunk boundaries, ends mid-chunk
DIGEST = hashlib.sha256(DATA).digest()


@pytest.fixture
def store(tmp_path: Path) -> FileBlobStore:
    return FileBlobStore(tmp_path / "blobs")


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file())


def read_in_chunks(
    store: FileBlobStore, digest: bytes, *, limit: int | None = None, chunk: int = CHUNK_SIZE
) -> int:
    """Read a blob chunk by chunk (up to ``limit`` bytes, never asking past them)."""
    total = 0
    with store.open(digest) as reader:
        while limit is None or total < limit:
            want = chunk if limit is None else min(chunk, limit - total)
            data = reader.read(want)
            if not data:
                break
            total += len(data)
    return total


class CountingReader(io.RawIOBase):
    """A source that yields ``data`` and remembers how much was asked of it."""

    def __init__(self, data: bytes, *, fail_after: int | None = None) -> None:
        self._data = memoryview(data)
        self._pos = 0
        self.handed_out = 0
        self._fail_after = fail_after

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._fail_after is not None and self._pos >= self._fail_after:
            raise OSError("connection reset by peer")
        end = len(self._data) if size < 0 else min(len(self._data), self._pos + size)
        chunk = bytes(self._data[self._pos : end])
        self._pos = end
        self.handed_out += len(chunk)
        return chunk


def test_file_store_is_a_blob_store(store: FileBlobStore) -> None:
    assert isinstance(store, BlobStore)


def test_round_trip_stores_under_the_sha256_and_reads_back(store: FileBlobStore) -> None:
    info = store.write(io.BytesIO(DATA), expected_sha256=DIGEST, max_size=len(DATA))

    assert info == BlobInfo(sha256=DIGEST, size=len(DATA))
    path = store.root / DIGEST.hex()[:2] / DIGEST.hex()
    assert store.path(DIGEST) == path
    assert path.read_bytes() == DATA
    assert path.stat().st_mode & 0o222 == 0  # read-only
    assert store.exists(DIGEST)
    assert store.size(DIGEST) == len(DATA)
    with store.open(DIGEST) as reader:
        assert reader.read() == DATA
    assert store.verify(DIGEST)
    assert list(store.iter_digests()) == [DIGEST]
    assert files_under(store.root) == [path]  # no temporary file left


def test_empty_blob_round_trips(store: FileBlobStore) -> None:
    info = store.write(io.BytesIO(b""))

    assert info == BlobInfo(hashlib.sha256(b"").digest(), 0)
    with store.open(info.sha256) as reader:
        assert reader.read() == b""


def test_digest_mismatch_stores_nothing(store: FileBlobStore) -> None:
    wrong = hashlib.sha256(b"what the owner signed").digest()

    with pytest.raises(BlobDigestMismatch) as info:
        store.write(io.BytesIO(DATA), expected_sha256=wrong)

    assert isinstance(info.value, IntegrityError)
    assert info.value.code == "blob_digest_mismatch"
    assert (info.value.expected, info.value.actual) == (wrong, DIGEST)
    assert files_under(store.root) == []
    assert not store.exists(DIGEST)
    assert not store.exists(wrong)


def test_too_large_stops_reading_and_stores_nothing(store: FileBlobStore) -> None:
    source = CountingReader(DATA)

    with pytest.raises(BlobTooLarge) as info:
        store.write(source, max_size=CHUNK_SIZE + 1)

    assert info.value.code == "blob_too_large"
    assert isinstance(info.value, ValueError)
    assert source.handed_out <= 2 * CHUNK_SIZE  # it did not read the whole upload
    assert files_under(store.root) == []


def test_exactly_max_size_is_accepted(store: FileBlobStore) -> None:
    assert store.write(io.BytesIO(DATA), max_size=len(DATA)).size == len(DATA)


def test_a_source_failing_midway_stores_nothing(store: FileBlobStore) -> None:
    with pytest.raises(OSError, match="reset"):
        store.write(CountingReader(DATA, fail_after=2 * CHUNK_SIZE))

    assert files_under(store.root) == []


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: data[:100] + bytes([data[100] ^ 1]) + data[101:],  # one bit flipped
        lambda data: data[:-1],  # truncated
        lambda data: data + b"\x00",  # extended
    ],
    ids=["bit-flip", "truncated", "extended"],
)
def test_altered_blob_raises_at_the_end_of_reading_and_fails_verify(
    store: FileBlobStore, damage: object
) -> None:
    store.write(io.BytesIO(DATA))
    path = store.path(DIGEST)
    path.chmod(0o644)
    path.write_bytes(damage(DATA))  # type: ignore[operator]

    with pytest.raises(BlobAltered) as info:
        read_in_chunks(store, DIGEST)
    assert info.value.code == "blob_altered"
    assert isinstance(info.value, IntegrityError)
    assert info.value.digest == DIGEST
    assert store.verify(DIGEST) is False
    with store.open(DIGEST) as reader, pytest.raises(BlobAltered):
        reader.read()


def test_a_reader_stopping_at_the_stored_size_still_learns_of_tampering(
    store: FileBlobStore,
) -> None:
    store.write(io.BytesIO(DATA))
    path = store.path(DIGEST)
    path.chmod(0o644)
    with path.open("r+b") as f:
        f.seek(len(DATA) - 1)
        f.write(bytes([DATA[-1] ^ 0xFF]))

    with pytest.raises(BlobAltered):
        read_in_chunks(store, DIGEST, limit=len(DATA), chunk=65536)


def test_missing_blob_raises_blob_missing(store: FileBlobStore) -> None:
    absent = hashlib.sha256(b"never stored").digest()

    with pytest.raises(BlobMissing) as info:
        store.open(absent)
    assert info.value.code == "blob_missing"
    assert isinstance(info.value, NotFound)
    assert isinstance(info.value, LookupError)
    with pytest.raises(BlobMissing):
        store.verify(absent)
    with pytest.raises(BlobMissing):
        store.size(absent)
    assert not store.exists(absent)
    assert store.delete(absent) is False


def test_delete_removes_the_blob(store: FileBlobStore) -> None:
    store.write(io.BytesIO(DATA))

    assert store.delete(DIGEST) is True
    assert not store.exists(DIGEST)
    assert list(store.iter_digests()) == []


def test_iter_digests_lists_every_blob_and_nothing_else(store: FileBlobStore) -> None:
    blobs = [os.urandom(100) for _ in range(5)]
    for blob in blobs:
        store.write(io.BytesIO(blob))
    (store.root / "README").write_text("not a blob")
    (store.root / "zz").mkdir()

    assert sorted(store.iter_digests()) == sorted(hashlib.sha256(b).digest() for b in blobs)


def test_malformed_digests_are_refused(store: FileBlobStore) -> None:
    with pytest.raises(ValueError, match="32-byte"):
        store.open(b"\x00" * 31)
    with pytest.raises(ValueError, match="32-byte"):
        store.write(io.BytesIO(b"x"), expected_sha256=DIGEST.hex().encode())


def test_concurrent_writes_of_the_same_content_all_succeed(store: FileBlobStore) -> None:
    barrier = threading.Barrier(8)

    def write(_: int) -> BlobInfo:
        barrier.wait()
        return store.write(io.BytesIO(DATA), expected_sha256=DIGEST)

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(write, range(8)))

    assert set(results) == {BlobInfo(DIGEST, len(DATA))}
    assert files_under(store.root) == [store.path(DIGEST)]
    assert store.verify(DIGEST)


def test_errors_share_the_library_root() -> None:
    for error in (BlobAltered, BlobDigestMismatch, BlobMissing, BlobTooLarge):
        assert issubclass(error, LedgerError)


# -- crash safety --------------------------------------------------------------------------

CRASHING_WRITER = """
import sys
from pathlib import Path
from ledger.store.blobs import FileBlobStore

class Stalls:
    def __init__(self):
        self.sent = False
    def read(self, size=-1):
        if not self.sent:
            self.sent = True
            return b"x" * 1000
        print("writing", flush=True)
        sys.stdin.readline()  # blocks until the parent kills us
        return b""

FileBlobStore(Path(sys.argv[1])).write(Stalls())
"""


def test_a_crashed_writer_leaves_only_a_temp_file_which_startup_removes(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    writer = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER, str(root)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "writing"
        temps = files_under(root)
        assert len(temps) == 1
        assert temps[0].parent.name == ".tmp"
        # While the writer lives, a starting store leaves its file alone.
        assert FileBlobStore(root).cleanup_temp() == 0
        assert temps[0].exists()
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(timeout=10)

    assert files_under(root) == temps  # only the temporary file, never a digest name
    store = FileBlobStore(root)  # startup cleans up
    assert files_under(root) == []
    assert list(store.iter_digests()) == []


def test_cleanup_spares_a_live_writer_in_this_process(store: FileBlobStore) -> None:
    read_fd, write_fd = os.pipe()
    result: list[BlobInfo] = []
    with open(read_fd, "rb", buffering=0) as source:
        writer = threading.Thread(target=lambda: result.append(store.write(source)))
        writer.start()
        os.write(write_fd, b"first part ")
        deadline = time.monotonic() + 10
        while not any((store.root / ".tmp").iterdir()) and time.monotonic() < deadline:
            time.sleep(0.01)

        assert store.cleanup_temp() == 0

        os.write(write_fd, b"second part")
        os.close(write_fd)
        writer.join(timeout=10)

    assert result == [BlobInfo(hashlib.sha256(b"first part second part").digest(), 22)]
    assert store.verify(result[0].sha256)


# -- memory --------------------------------------------------------------------------------

STREAMER = """
import hashlib, json, resource, sys
from pathlib import Path
from ledger.store.blobs import FileBlobStore

TOTAL = 256 * 1024 * 1024
BLOCK = bytes(range(256)) * 4096  # 1 MiB

class Source:
    def __init__(self):
        self.left = TOTAL
    def read(self, size=-1):
        n = min(self.left, len(BLOCK) if size < 0 else min(size, len(BLOCK)))
        self.left -= n
        return BLOCK[:n]

def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

store = FileBlobStore(Path(sys.argv[1]))
expected = hashlib.sha256()
for _ in range(TOTAL // len(BLOCK)):
    expected.update(BLOCK)
before = peak()
info = store.write(Source(), expected_sha256=expected.digest(), max_size=TOTAL)
read = 0
with store.open(info.sha256) as reader:
    while chunk := reader.read(1024 * 1024):
        read += len(chunk)
ok = store.verify(info.sha256)
print(json.dumps({"before": before, "after": peak(), "size": info.size, "read": read, "ok": ok}))
"""


def test_memory_stays_flat_streaming_256_mib(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", STREAMER, str(tmp_path / "blobs")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    report = json.loads(result.stdout)

    assert report["size"] == report["read"] == 256 * 1024 * 1024
    assert report["ok"] is True
    assert report["after"] - report["before"] < 64 * 1024 * 1024, report

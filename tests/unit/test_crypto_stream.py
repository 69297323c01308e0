"""Streaming dataset encryption: round trips, content hash, and every way to tamper failing."""

from __future__ import annotations

import hashlib
import io
import os
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.crypto import (
    DEFAULT_CHUNK_SIZE,
    content_hash,
    decrypt,
    decrypt_to_path,
    encrypt,
    generate_data_key,
)
from ledger.crypto.format import (
    HEADER_SIZE,
    MAX_CHUNK_SIZE,
    MIN_CHUNK_SIZE,
    PIECE_SIZE,
    TAG_SIZE,
    Header,
)
from ledger.crypto.stream import _leaf_hash
from ledger.errors import CryptoError, IntegrityError, UnsupportedFormat
from ledger.merkle.proofs import EMPTY_ROOT, leaf_hash, root

CHUNK = 1024
KEY = bytes(range(32))


def seal(data: bytes, *, key: bytes = KEY, chunk_size: int = CHUNK) -> bytes:
    out = io.BytesIO()
    encrypt(io.BytesIO(data), out, key, chunk_size=chunk_size)
    return out.getvalue()


def open_sealed(blob: bytes, *, key: bytes = KEY) -> bytes:
    out = io.BytesIO()
    decrypt(io.BytesIO(blob), out, key)
    return out.getvalue()


def chunks_of(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def canonical_hash(data: bytes) -> bytes:
    """The content hash by its definition: Merkle root over 1 MiB pieces, any chunk size."""
    return root(chunks_of(data, PIECE_SIZE))


def sealed_chunks(blob: bytes, chunk_size: int = CHUNK) -> tuple[bytes, list[bytes]]:
    """Split a sealed blob into its header and sealed chunks."""
    return blob[:HEADER_SIZE], chunks_of(blob[HEADER_SIZE:], chunk_size + TAG_SIZE)


def assert_refused_without_output(
    blob: bytes, tmp_path: Path, error: type[CryptoError] = IntegrityError, *, key: bytes = KEY
) -> None:
    target = tmp_path / "out.csv"
    with pytest.raises(error):
        decrypt_to_path(io.BytesIO(blob), target, key)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


SIZES = [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK, 3 * CHUNK + 7]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_restores_the_plaintext(size: int) -> None:
    data = os.urandom(size)
    out = io.BytesIO()
    result = encrypt(io.BytesIO(data), out, KEY, chunk_size=CHUNK)
    back = io.BytesIO()
    opened = decrypt(io.BytesIO(out.getvalue()), back, KEY)

    assert back.getvalue() == data
    assert opened.plaintext_size == result.plaintext_size == size
    assert opened.content_hash == result.content_hash


@pytest.mark.parametrize("size", SIZES)
def test_content_hash_is_the_merkle_root_of_1_mib_pieces_not_of_the_chunks(size: int) -> None:
    data = os.urandom(size)
    result = encrypt(io.BytesIO(data), io.BytesIO(), KEY, chunk_size=CHUNK)
    assert result.content_hash == canonical_hash(data)
    assert content_hash(io.BytesIO(data)) == result.content_hash


def test_empty_plaintext_hashes_to_the_empty_tree_and_still_has_a_final_chunk() -> None:
    blob = seal(b"")
    assert len(blob) == HEADER_SIZE + TAG_SIZE
    assert encrypt(io.BytesIO(b""), io.BytesIO(), KEY).content_hash == EMPTY_ROOT
    assert open_sealed(blob) == b""


@pytest.mark.parametrize("size", SIZES)
def test_ciphertext_digest_and_sizes_describe_exactly_the_bytes_written(size: int) -> None:
    data = os.urandom(size)
    out = io.BytesIO()
    result = encrypt(io.BytesIO(data), out, KEY, chunk_size=CHUNK)
    blob = out.getvalue()
    n_chunks = max(1, -(-size // CHUNK))

    assert result.ciphertext_sha256 == hashlib.sha256(blob).digest()
    assert result.ciphertext_size == len(blob) == HEADER_SIZE + size + n_chunks * TAG_SIZE


def test_default_chunk_size_round_trip_over_several_chunks() -> None:
    data = os.urandom(2 * DEFAULT_CHUNK_SIZE + 12345)
    out = io.BytesIO()
    result = encrypt(io.BytesIO(data), out, KEY)
    assert Header.parse(out.getvalue()).chunk_size == DEFAULT_CHUNK_SIZE
    assert result.content_hash == root(chunks_of(data, DEFAULT_CHUNK_SIZE))
    assert result.content_hash == canonical_hash(data)
    assert open_sealed(out.getvalue()) == data


def test_same_plaintext_encrypts_differently_each_time() -> None:
    data = b"x" * 3000
    first, second = seal(data), seal(data)
    assert first != second
    assert Header.parse(first).nonce_prefix != Header.parse(second).nonce_prefix


class ShortReads(io.RawIOBase):
    """A source that hands out at most 100 bytes per call, like a slow socket."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        chunk = self._data.read(min(100, len(buffer)))
        buffer[: len(chunk)] = chunk
        return len(chunk)


class ReadOnly:
    """A source with ``read`` only (no ``readinto``)."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def read(self, n: int = -1) -> bytes:
        return self._data.read(min(n, 333))


@pytest.mark.parametrize("source", [ShortReads, ReadOnly])
def test_sources_with_short_reads_give_the_same_chunking(source: Callable[[bytes], object]) -> None:
    data = os.urandom(5 * CHUNK + 3)
    out = io.BytesIO()
    result = encrypt(source(data), out, KEY, chunk_size=CHUNK)  # type: ignore[arg-type]
    assert result.content_hash == canonical_hash(data)
    back = io.BytesIO()
    decrypt(source(out.getvalue()), back, KEY)  # type: ignore[arg-type]
    assert back.getvalue() == data


def test_leaf_hash_without_copy_matches_the_merkle_module() -> None:
    for data in (b"", b"\x00", os.urandom(CHUNK)):
        assert _leaf_hash(memoryview(data)) == leaf_hash(data)


# --- tampering --------------------------------------------------------------------------------

BODY = os.urandom(3 * CHUNK + 100)
BLOB = seal(BODY)


def flip(blob: bytes, position: int) -> bytes:
    return blob[:position] + bytes([blob[position] ^ 0x01]) + blob[position + 1 :]


@pytest.mark.parametrize("position", range(4))
def test_altered_magic_is_refused_as_unsupported(position: int, tmp_path: Path) -> None:
    assert_refused_without_output(flip(BLOB, position), tmp_path, UnsupportedFormat)


def test_altered_version_is_refused_as_unsupported(tmp_path: Path) -> None:
    assert_refused_without_output(flip(BLOB, 4), tmp_path, UnsupportedFormat)


@pytest.mark.parametrize("position", range(5, 9))
def test_altered_chunk_size_is_refused(position: int, tmp_path: Path) -> None:
    # Out-of-range sizes are unsupported; in-range ones break every chunk's authentication.
    assert_refused_without_output(flip(BLOB, position), tmp_path, CryptoError)


@pytest.mark.parametrize("position", range(9, HEADER_SIZE))
def test_altered_nonce_prefix_fails_authentication(position: int, tmp_path: Path) -> None:
    assert_refused_without_output(flip(BLOB, position), tmp_path)


SEALED_CHUNK = CHUNK + TAG_SIZE
BODY_POSITIONS = [
    HEADER_SIZE,  # first ciphertext byte
    HEADER_SIZE + CHUNK - 1,  # last ciphertext byte of chunk 0
    HEADER_SIZE + CHUNK,  # first tag byte of chunk 0
    HEADER_SIZE + SEALED_CHUNK + 500,  # middle of chunk 1
    HEADER_SIZE + 2 * SEALED_CHUNK + SEALED_CHUNK - 1,  # last tag byte of chunk 2
    len(BLOB) - TAG_SIZE - 1,  # last ciphertext byte of the final chunk
    len(BLOB) - 1,  # last byte of the final tag
]


@pytest.mark.parametrize("position", BODY_POSITIONS)
def test_altered_body_byte_fails_authentication(position: int, tmp_path: Path) -> None:
    assert_refused_without_output(flip(BLOB, position), tmp_path)


@pytest.mark.parametrize(
    "length",
    [
        0,
        3,
        HEADER_SIZE - 1,
        HEADER_SIZE,  # header only: no final chunk
        HEADER_SIZE + 5,  # shorter than a tag
        HEADER_SIZE + SEALED_CHUNK,  # cut at a chunk boundary
        HEADER_SIZE + SEALED_CHUNK + 100,  # cut inside a chunk
        len(BLOB) - 1,
    ],
)
def test_truncated_ciphertext_is_refused(length: int, tmp_path: Path) -> None:
    assert_refused_without_output(BLOB[:length], tmp_path)


def test_dropping_the_last_chunk_is_refused(tmp_path: Path) -> None:
    header, chunks = sealed_chunks(BLOB)
    assert_refused_without_output(header + b"".join(chunks[:-1]), tmp_path)


def test_dropping_the_last_chunk_of_an_exact_multiple_is_refused(tmp_path: Path) -> None:
    header, chunks = sealed_chunks(seal(os.urandom(3 * CHUNK)))
    assert len(chunks) == 3
    assert_refused_without_output(header + b"".join(chunks[:-1]), tmp_path)


def test_reordered_chunks_are_refused(tmp_path: Path) -> None:
    header, chunks = sealed_chunks(BLOB)
    chunks[0], chunks[1] = chunks[1], chunks[0]
    assert_refused_without_output(header + b"".join(chunks), tmp_path)


def test_duplicated_chunk_is_refused(tmp_path: Path) -> None:
    header, chunks = sealed_chunks(BLOB)
    assert_refused_without_output(header + chunks[0] + b"".join(chunks), tmp_path)


def test_chunk_spliced_from_another_dataset_under_the_same_key_is_refused(
    tmp_path: Path,
) -> None:
    header, chunks = sealed_chunks(BLOB)
    other_header, other_chunks = sealed_chunks(seal(os.urandom(len(BODY))))
    assert other_header != header
    chunks[1] = other_chunks[1]
    assert_refused_without_output(header + b"".join(chunks), tmp_path)
    # Nor does the other dataset's header adopt this one's chunks.
    assert_refused_without_output(other_header + b"".join(sealed_chunks(BLOB)[1]), tmp_path)


def test_trailing_bytes_after_the_final_chunk_are_refused(tmp_path: Path) -> None:
    assert_refused_without_output(BLOB + b"\x00", tmp_path)


def test_wrong_key_is_refused(tmp_path: Path) -> None:
    assert_refused_without_output(BLOB, tmp_path, key=generate_data_key())


def test_empty_final_chunk_after_data_is_refused_as_non_canonical(tmp_path: Path) -> None:
    # Hand-build a stream that authenticates but ends a full chunk with an extra empty one,
    # which would give the same plaintext a second content hash.
    header = Header.new(CHUNK)
    aead = AESGCM(KEY)
    data = os.urandom(CHUNK)
    blob = (
        header.pack()
        + aead.encrypt(header.nonce(0), data, header.aad(0, last=False))
        + aead.encrypt(header.nonce(1), b"", header.aad(1, last=True))
    )
    assert_refused_without_output(blob, tmp_path)


# --- parameters -------------------------------------------------------------------------------


@pytest.mark.parametrize("key", [b"", bytes(16), bytes(31), bytes(33)])
def test_data_keys_must_be_256_bits(key: bytes) -> None:
    with pytest.raises(CryptoError):
        encrypt(io.BytesIO(b"data"), io.BytesIO(), key)
    with pytest.raises(CryptoError):
        decrypt(io.BytesIO(BLOB), io.BytesIO(), key)


def test_generated_data_keys_are_random_256_bit_keys() -> None:
    keys = {generate_data_key() for _ in range(8)}
    assert len(keys) == 8
    assert all(len(k) == 32 for k in keys)


@pytest.mark.parametrize("chunk_size", [0, MIN_CHUNK_SIZE - 1, MAX_CHUNK_SIZE + 1])
def test_chunk_sizes_outside_the_supported_range_are_refused(chunk_size: int) -> None:
    with pytest.raises(CryptoError):
        encrypt(io.BytesIO(b"data"), io.BytesIO(), KEY, chunk_size=chunk_size)


def test_header_announcing_huge_chunks_is_refused_before_allocating(tmp_path: Path) -> None:
    magic, version, _, prefix = struct.unpack(">4sBI8s", BLOB[:HEADER_SIZE])
    forged = struct.pack(">4sBI8s", magic, version, 0xFFFFFFFF, prefix) + BLOB[HEADER_SIZE:]
    assert_refused_without_output(forged, tmp_path, UnsupportedFormat)


ZERO_CHUNK = memoryview(bytes(DEFAULT_CHUNK_SIZE))


class Zeros(io.RawIOBase):
    """``size`` zero bytes, produced on demand so the test itself holds no big buffer."""

    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left)
        buffer[:n] = ZERO_CHUNK[:n]
        self._left -= n
        return n


class Discard(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        return len(memoryview(data))  # type: ignore[arg-type]


class BrokenPipe(io.RawIOBase):
    """A destination that fails after a few writes, like a dropped upload."""

    def __init__(self) -> None:
        self.writes = 0

    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        self.writes += 1
        if self.writes > 3:
            raise BrokenPipeError("upload dropped")
        return len(memoryview(data))  # type: ignore[arg-type]


def test_a_failing_destination_surfaces_its_error() -> None:
    with pytest.raises(BrokenPipeError):
        encrypt(Zeros(20 * CHUNK), BrokenPipe(), KEY, chunk_size=CHUNK)  # type: ignore[arg-type]
    with pytest.raises(BrokenPipeError):
        decrypt(io.BytesIO(BLOB), BrokenPipe(), KEY)  # type: ignore[arg-type]


def test_memory_stays_a_few_chunks_whatever_the_size() -> None:
    size = 48 * DEFAULT_CHUNK_SIZE
    tracemalloc.start()
    try:
        encrypt(Zeros(size), Discard(), KEY)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * DEFAULT_CHUNK_SIZE


# --- properties -------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=3000), chunk_size=st.integers(MIN_CHUNK_SIZE, 700))
def test_any_plaintext_and_chunk_size_round_trip_with_the_canonical_content_hash(
    data: bytes, chunk_size: int
) -> None:
    out = io.BytesIO()
    result = encrypt(io.BytesIO(data), out, KEY, chunk_size=chunk_size)
    back = io.BytesIO()
    opened = decrypt(io.BytesIO(out.getvalue()), back, KEY)
    assert back.getvalue() == data
    assert result.content_hash == opened.content_hash == canonical_hash(data)
    assert result.ciphertext_sha256 == hashlib.sha256(out.getvalue()).digest()


@settings(max_examples=40, deadline=None)
@given(data=st.binary(min_size=1, max_size=600), position=st.integers(min_value=0))
def test_any_single_flipped_bit_is_refused(data: bytes, position: int) -> None:
    blob = seal(data, chunk_size=MIN_CHUNK_SIZE)
    with pytest.raises(CryptoError):
        open_sealed(flip(blob, position % len(blob)))


def test_decrypt_checks_the_expected_content_hash() -> None:
    """The recipient passes the hash registered on chain; anything else is refused."""
    data = os.urandom(3 * CHUNK + 5)
    blob = seal(data)
    out = io.BytesIO()
    result = decrypt(io.BytesIO(blob), out, KEY, expected_content_hash=canonical_hash(data))
    assert (out.getvalue(), result.content_hash) == (data, canonical_hash(data))
    with pytest.raises(IntegrityError) as caught:
        decrypt(io.BytesIO(blob), io.BytesIO(), KEY, expected_content_hash=b"\x00" * 32)
    assert caught.value.message == "decrypted content does not match the expected content hash"


def test_chunks_are_written_in_stream_order_by_one_writer_thread() -> None:
    """Each ordered stage has one thread: a slow write must not let a later chunk overtake."""
    import threading
    import time

    class SlowFirstChunk(io.BytesIO):
        def __init__(self) -> None:
            super().__init__()
            self.threads: list[str] = []

        def write(self, data: Any) -> int:
            self.threads.append(threading.current_thread().name)
            if len(self.threads) == 2:  # the first chunk, after the header
                time.sleep(0.05)
            return super().write(data)

    data = os.urandom(40 * 64)
    out = SlowFirstChunk()
    result = encrypt(io.BytesIO(data), out, KEY, chunk_size=64)
    assert result.ciphertext_sha256 == hashlib.sha256(out.getvalue()).digest()
    assert open_sealed(out.getvalue()) == data
    assert len(set(out.threads[1:])) == 1
    assert out.threads[1].startswith("drl-write")


# --- what a refusal says ------------------------------------------------------------------------

FAILED = "failed authentication: wrong key, or altered, truncated, reordered or spliced data"


def _empty_final_chunk_after_data() -> bytes:
    header = Header.new(CHUNK)
    aead = AESGCM(KEY)
    return (
        header.pack()
        + aead.encrypt(header.nonce(0), bytes(CHUNK), header.aad(0, last=False))
        + aead.encrypt(header.nonce(1), b"", header.aad(1, last=True))
    )


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda h, c: h + c[0][:5], "encrypted dataset is truncated in chunk 0"),
        (lambda h, c: h + c[0] + c[1][: TAG_SIZE - 1], "encrypted dataset is truncated in chunk 1"),
        (lambda h, c: h + c[1] + c[0] + b"".join(c[2:]), f"chunk 0 {FAILED}"),
        (lambda h, c: h + b"".join(c[:-1]), f"chunk 2 {FAILED}"),
        (
            lambda h, c: _empty_final_chunk_after_data(),
            "chunk 1 is an empty final chunk after data",
        ),
    ],
    ids=["short-first", "short-second", "reordered", "last-dropped", "empty-final"],
)
def test_each_refusal_names_the_chunk_and_the_reason(
    tamper: Callable[[bytes, list[bytes]], bytes], message: str
) -> None:
    header, chunks = sealed_chunks(BLOB)
    with pytest.raises(IntegrityError) as caught:
        decrypt(io.BytesIO(tamper(header, chunks)), io.BytesIO(), KEY)
    assert caught.value.message == message


def test_decrypted_chunks_are_written_by_the_one_writer_thread() -> None:
    import threading

    class Recording(io.BytesIO):
        def __init__(self) -> None:
            super().__init__()
            self.threads: list[str] = []

        def write(self, data: Any) -> int:
            self.threads.append(threading.current_thread().name)
            return super().write(data)

    out = Recording()
    decrypt(io.BytesIO(BLOB), out, KEY)
    assert out.getvalue() == BODY
    assert len(out.threads) == 4
    assert len(set(out.threads)) == 1
    assert out.threads[0].startswith("drl-write")


def test_a_key_of_the_wrong_length_is_refused_with_its_length() -> None:
    for call in (
        lambda: encrypt(io.BytesIO(b"data"), io.BytesIO(), bytes(16)),
        lambda: decrypt(io.BytesIO(BLOB), io.BytesIO(), bytes(33)),
    ):
        with pytest.raises(CryptoError) as caught:
            call()
        assert caught.value.message in (
            "a data key is 32 bytes, got 16",
            "a data key is 32 bytes, got 33",
        )
    with pytest.raises(CryptoError) as short:
        encrypt(io.BytesIO(b"data"), io.BytesIO(), bytes(31))
    assert short.value.message == "a data key is 32 bytes, got 31"


def test_a_fixed_nonce_prefix_is_the_one_in_the_header() -> None:
    prefix = bytes(range(10, 18))
    out = io.BytesIO()
    result = encrypt(io.BytesIO(BODY), out, KEY, chunk_size=CHUNK, nonce_prefix=prefix)
    blob = out.getvalue()
    assert blob[:HEADER_SIZE] == b"DRLE\x01" + CHUNK.to_bytes(4, "big") + prefix
    assert result.chunk_size == CHUNK
    assert (result.plaintext_size, result.ciphertext_size) == (len(BODY), len(blob))
    header = Header(chunk_size=CHUNK, nonce_prefix=prefix)
    first = AESGCM(KEY).decrypt(
        header.nonce(0), blob[HEADER_SIZE:][:SEALED_CHUNK], header.aad(0, last=False)
    )
    assert first == BODY[:CHUNK]
    opened = decrypt(io.BytesIO(blob), io.BytesIO(), KEY)
    assert opened.chunk_size == CHUNK
    assert opened.plaintext_size == len(BODY)


@pytest.mark.parametrize("prefix", [b"", bytes(7), bytes(9)])
def test_a_nonce_prefix_is_8_bytes(prefix: bytes) -> None:
    with pytest.raises(CryptoError) as caught:
        encrypt(io.BytesIO(b"data"), io.BytesIO(), KEY, nonce_prefix=prefix)
    assert caught.value.message == "a nonce prefix is 8 bytes"


_STAGES = ("drl-write", "drl-ciphertext-hash", "drl-content-hash", "drl-crypto")


def _stage_threads() -> list[str]:
    """Live threads of the crypto stages (other parts of the ledger name threads drl-* too)."""
    import threading

    return sorted(t.name for t in threading.enumerate() if t.name.startswith(_STAGES))


def test_each_stage_runs_on_its_own_named_thread_and_none_outlives_the_call() -> None:
    """Writer, ciphertext hash and (for chunks not aligned to 1 MiB) content hash: one named
    thread each while running, all stopped by the time the call returns, even on failure."""

    class Recording(io.BytesIO):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[list[str]] = []

        def write(self, data: Any) -> int:
            self.seen.append(sorted({n.rsplit("_", 1)[0] for n in _stage_threads()}))
            return super().write(data)

    assert _stage_threads() == []
    sealed = Recording()
    encrypt(io.BytesIO(BODY), sealed, KEY, chunk_size=CHUNK)
    assert sealed.seen[-1] == ["drl-ciphertext-hash", "drl-content-hash", "drl-crypto", "drl-write"]
    assert _stage_threads() == []
    opened = Recording()
    decrypt(io.BytesIO(sealed.getvalue()), opened, KEY)
    assert opened.getvalue() == BODY
    assert opened.seen[-1] == ["drl-content-hash", "drl-crypto", "drl-write"]
    assert _stage_threads() == []
    header, chunks = sealed_chunks(sealed.getvalue())
    with pytest.raises(IntegrityError):
        decrypt(io.BytesIO(header + b"".join(chunks[:-1])), io.BytesIO(), KEY)
    assert _stage_threads() == []


def test_chunks_aligned_to_1_mib_are_hashed_on_the_workers_without_an_ordered_stage() -> None:
    class Recording(io.BytesIO):
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[list[str]] = []

        def write(self, data: Any) -> int:
            self.seen.append(sorted({n.rsplit("_", 1)[0] for n in _stage_threads()}))
            return super().write(data)

    data = os.urandom(2 * PIECE_SIZE + 5)
    sealed = Recording()
    result = encrypt(io.BytesIO(data), sealed, KEY, chunk_size=PIECE_SIZE)
    assert result.content_hash == canonical_hash(data)
    assert sealed.seen[-1] == ["drl-ciphertext-hash", "drl-crypto", "drl-write"]
    opened = Recording()
    assert decrypt(io.BytesIO(sealed.getvalue()), opened, KEY).content_hash == result.content_hash
    assert opened.seen[-1] == ["drl-crypto", "drl-write"]
    assert _stage_threads() == []

"""The content hash is canonical: one plaintext, one hash, whatever chunk size encrypts it.

It is the RFC 6962 Merkle root over the plaintext cut into fixed 1 MiB pieces (issue 8, item 6:
the same file registered with 1 MiB and with 64 KiB chunks used to get two hashes, which
sidestepped uniqueness and inherited sensitivity). Owner (``encrypt``) and recipient
(``decrypt``) compute it from any chunking, and ``decrypt`` checks it.
"""

from __future__ import annotations

import io
import json
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.crypto import content_hash, decrypt, decrypt_to_path, encrypt, stream
from ledger.crypto.format import DEFAULT_CHUNK_SIZE, MIN_CHUNK_SIZE, PIECE_SIZE, Header
from ledger.errors import IntegrityError
from ledger.merkle.proofs import EMPTY_ROOT, leaf_hash, root

KEY = bytes(range(32))
MIB = 1 << 20
VECTORS = Path(__file__).resolve().parents[1] / "vectors" / "protocol.json"
# 64 KiB and 100,000 bytes do not start every piece on a chunk boundary (100,000 does not even
# divide 1 MiB); 2 MiB and 3 MiB - 7 hold several pieces per chunk (aligned or not).
CHUNK_SIZES = [64 * 1024, 100_000, DEFAULT_CHUNK_SIZE, 2 * MIB, 3 * MIB - 7]
BOUNDARY_SIZES = [0, 1, MIB - 1, MIB, MIB + 1, 2 * MIB, 2 * MIB + 1]


def pieces(data: bytes, size: int = PIECE_SIZE) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def defined_hash(data: bytes) -> bytes:
    """The definition, from the Merkle module alone: root over SHA-256(0x00 ‖ 1 MiB piece)."""
    return root(pieces(data))


def sealed(data: bytes, chunk_size: int) -> bytes:
    out = io.BytesIO()
    encrypt(io.BytesIO(data), out, KEY, chunk_size=chunk_size)
    return out.getvalue()


def rule_bytes(length: int) -> bytes:
    """``byte i = i mod 251``, as the protocol vectors define their inputs."""
    return (bytes(range(251)) * (length // 251 + 1))[:length]


def test_one_plaintext_has_one_content_hash_at_64_kib_1_mib_and_an_odd_chunk_size() -> None:
    data = os.urandom(3 * MIB + 12_345)
    hashes = set()
    for chunk_size in (64 * 1024, DEFAULT_CHUNK_SIZE, 100_000):
        out = io.BytesIO()
        made = encrypt(io.BytesIO(data), out, KEY, chunk_size=chunk_size)
        assert made.chunk_size == Header.parse(out.getvalue()).chunk_size == chunk_size
        back = io.BytesIO()
        opened = decrypt(
            io.BytesIO(out.getvalue()), back, KEY, expected_content_hash=made.content_hash
        )
        assert back.getvalue() == data
        assert opened.chunk_size == chunk_size
        assert opened.content_hash == made.content_hash
        hashes.add(made.content_hash)
    assert hashes == {defined_hash(data)} == {content_hash(io.BytesIO(data))}


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES, ids=lambda c: f"chunk{c}")
@pytest.mark.parametrize("size", BOUNDARY_SIZES, ids=lambda s: f"size{s}")
def test_piece_and_chunk_boundaries(size: int, chunk_size: int) -> None:
    data = os.urandom(size)
    expected = defined_hash(data)
    out = io.BytesIO()
    made = encrypt(io.BytesIO(data), out, KEY, chunk_size=chunk_size)
    assert made.content_hash == expected
    assert made.plaintext_size == size
    back = io.BytesIO()
    opened = decrypt(io.BytesIO(out.getvalue()), back, KEY, expected_content_hash=expected)
    assert back.getvalue() == data
    assert opened.content_hash == expected
    assert content_hash(io.BytesIO(data)) == expected


def test_leaves_are_whole_1_mib_pieces_and_a_multiple_has_no_empty_last_leaf() -> None:
    data = os.urandom(2 * MIB)
    two = root([data[:MIB], data[MIB:]])
    made = encrypt(io.BytesIO(data), io.BytesIO(), KEY, chunk_size=100_000)
    assert made.content_hash == two != root([data[:MIB], data[MIB:], b""])
    one_byte = encrypt(io.BytesIO(b"x"), io.BytesIO(), KEY, chunk_size=64 * 1024)
    assert one_byte.content_hash == leaf_hash(b"x")


@pytest.mark.parametrize("chunk_size", [MIN_CHUNK_SIZE, 64 * 1024, 100_000, DEFAULT_CHUNK_SIZE])
def test_the_empty_plaintext_hashes_to_the_empty_tree_at_any_chunk_size(chunk_size: int) -> None:
    made = encrypt(io.BytesIO(b""), io.BytesIO(), KEY, chunk_size=chunk_size)
    assert made.content_hash == EMPTY_ROOT == content_hash(io.BytesIO(b""))


def content_hash_vectors() -> Iterator[dict[str, object]]:
    yield from json.loads(VECTORS.read_text())["content_hash"]["cases"]


@pytest.mark.parametrize("case", list(content_hash_vectors()), ids=lambda c: str(c["name"]))
@pytest.mark.parametrize("chunk_size", [64 * 1024, 100_000, DEFAULT_CHUNK_SIZE])
def test_the_pinned_1_mib_vectors_hold_for_every_chunking(
    case: dict[str, object], chunk_size: int
) -> None:
    """Content hashes registered before (1 MiB chunks) are unchanged, and others now agree."""
    length = case["length"]
    assert isinstance(length, int)
    data = rule_bytes(length)
    out = io.BytesIO()
    made = encrypt(io.BytesIO(data), out, KEY, chunk_size=chunk_size)
    assert "0x" + made.content_hash.hex() == case["content_hash"]
    opened = decrypt(io.BytesIO(out.getvalue()), io.BytesIO(), KEY)
    assert opened.content_hash == made.content_hash


@pytest.mark.parametrize("chunk_size", [64 * 1024, 100_000, DEFAULT_CHUNK_SIZE])
def test_decrypt_refuses_another_content_hash_and_leaves_no_output(
    chunk_size: int, tmp_path: Path
) -> None:
    data = os.urandom(MIB + 1)
    blob = sealed(data, chunk_size)
    # The root over the file's own chunks (the old, chunking-dependent definition) is refused.
    own_chunks = root(pieces(data, chunk_size))
    if chunk_size != DEFAULT_CHUNK_SIZE:
        assert own_chunks != defined_hash(data)
    for wrong in (own_chunks, defined_hash(data[:-1] + b"\x00"), EMPTY_ROOT):
        if wrong == defined_hash(data):
            continue
        target = tmp_path / "out.bin"
        with pytest.raises(IntegrityError, match="expected content hash"):
            decrypt_to_path(io.BytesIO(blob), target, KEY, expected_content_hash=wrong)
        assert list(tmp_path.iterdir()) == []
    target = tmp_path / "out.bin"
    decrypt_to_path(io.BytesIO(blob), target, KEY, expected_content_hash=defined_hash(data))
    assert target.read_bytes() == data


ZERO = memoryview(bytes(MIB))


class Zeros(io.RawIOBase):
    """``size`` zero bytes made on demand, so the test holds no large buffer of its own."""

    def __init__(self, size: int) -> None:
        self._left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._left, len(ZERO))
        buffer[:n] = ZERO[:n]
        self._left -= n
        return n


class Discard(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: object) -> int:
        return len(memoryview(data))  # type: ignore[arg-type]


@pytest.mark.parametrize("chunk_size", [64 * 1024, 100_000])
def test_re_slicing_into_pieces_keeps_memory_flat(chunk_size: int) -> None:
    size = 24 * MIB + 5
    expected = defined_hash(bytes(size))
    tracemalloc.start()
    try:
        made = encrypt(Zeros(size), Discard(), KEY, chunk_size=chunk_size)  # type: ignore[arg-type]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert made.content_hash == expected
    # A few chunks in flight and one running SHA-256; no 1 MiB piece is ever assembled.
    assert peak < 2 * MIB


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.binary(max_size=2500),
    piece=st.integers(MIN_CHUNK_SIZE, 400),
    chunk_size=st.integers(MIN_CHUNK_SIZE, 900),
)
def test_re_slicing_matches_the_definition_for_any_piece_and_chunk_size(
    data: bytes, piece: int, chunk_size: int
) -> None:
    """With the piece size shrunk, small inputs cross many piece and chunk boundaries."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stream, "PIECE_SIZE", piece)
        out = io.BytesIO()
        made = encrypt(io.BytesIO(data), out, KEY, chunk_size=chunk_size)
        back = io.BytesIO()
        opened = decrypt(io.BytesIO(out.getvalue()), back, KEY)
        hashed = content_hash(io.BytesIO(data))
    assert back.getvalue() == data
    assert made.content_hash == opened.content_hash == hashed == root(pieces(data, piece))

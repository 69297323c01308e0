"""A hostile ciphertext header cannot make the reader allocate what it declares (issue 9).

A fetch whose header declared 16 MiB chunks made the client preallocate six in/out buffer pairs
(~200 MB) before reading a byte of the first chunk. Now a chunk size the caller did not expect
is refused before any chunk buffer exists, one outside the format's range as before, and the
pipeline's buffers are bounded whatever the chunk size.
"""

from __future__ import annotations

import io
import struct
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger.crypto import _pipeline, decrypt, decrypt_to_path, encrypt
from ledger.crypto.format import (
    DEFAULT_CHUNK_SIZE,
    MAGIC,
    MAX_CHUNK_SIZE,
    TAG_SIZE,
    VERSION,
)
from ledger.errors import IntegrityError, UnsupportedFormat
from ledger.protocol.codes import ErrorCode

KEY = bytes(range(32))
MiB = 1 << 20


def hostile(chunk_size: int, body: bytes = b"\x00" * 100) -> bytes:
    return struct.pack(">4sBI8s", MAGIC, VERSION, chunk_size, b"\x01" * 8) + body


def peak_of(call: Callable[[], Any]) -> tuple[int, Exception | None]:
    """Peak traced allocation while ``call`` runs, and what it raised (if anything)."""
    raised: Exception | None = None
    tracemalloc.start()
    try:
        try:
            call()
        except Exception as exc:  # the caller inspects what was raised
            raised = exc
        return tracemalloc.get_traced_memory()[1], raised
    finally:
        tracemalloc.stop()


def test_a_chunk_size_beyond_the_format_is_refused_before_allocation() -> None:
    blob = hostile(0xFFFFFFFF)
    peak, raised = peak_of(lambda: decrypt(io.BytesIO(blob), io.BytesIO(), KEY))
    assert isinstance(raised, UnsupportedFormat)
    assert raised.code == ErrorCode.UNSUPPORTED_FORMAT
    assert peak < MiB


def test_an_unexpected_chunk_size_is_refused_before_allocation() -> None:
    blob = hostile(MAX_CHUNK_SIZE)  # within the format, but not what the owner signed
    peak, raised = peak_of(
        lambda: decrypt(io.BytesIO(blob), io.BytesIO(), KEY, expected_chunk_size=DEFAULT_CHUNK_SIZE)
    )
    assert isinstance(raised, IntegrityError)
    assert raised.code == ErrorCode.CHUNKING_MISMATCH
    assert str(MAX_CHUNK_SIZE) in raised.message
    assert peak < MiB


def test_decrypt_to_path_passes_the_expected_chunk_size_and_leaves_no_file(
    tmp_path: Path,
) -> None:
    target = tmp_path / "out.csv"
    with pytest.raises(IntegrityError) as caught:
        decrypt_to_path(io.BytesIO(hostile(MAX_CHUNK_SIZE)), target, KEY, expected_chunk_size=MiB)
    assert caught.value.code == ErrorCode.CHUNKING_MISMATCH
    assert list(tmp_path.iterdir()) == []


def test_the_expected_chunk_size_lets_an_honest_stream_through() -> None:
    sealed = io.BytesIO()
    encrypt(io.BytesIO(b"ward,roofs\n" * 500), sealed, KEY, chunk_size=4096)
    out = io.BytesIO()
    decrypt(io.BytesIO(sealed.getvalue()), out, KEY, expected_chunk_size=4096)
    assert out.getvalue() == b"ward,roofs\n" * 500


def test_a_large_declared_chunk_with_a_tiny_body_allocates_one_slot_not_six() -> None:
    # Without an expected size the header is within the format: the reader must hold one
    # chunk to authenticate it, but no longer preallocates every slot (6 x 32 MiB before).
    blob = hostile(MAX_CHUNK_SIZE)
    peak, raised = peak_of(lambda: decrypt(io.BytesIO(blob), io.BytesIO(), KEY))
    assert isinstance(raised, IntegrityError)  # the 100-byte "chunk" fails authentication
    assert peak < 2 * MAX_CHUNK_SIZE + 2 * MiB


def test_buffers_stay_within_the_budget_for_the_largest_chunks() -> None:
    assert _pipeline.slot_count(DEFAULT_CHUNK_SIZE + TAG_SIZE, DEFAULT_CHUNK_SIZE) == (
        _pipeline.SLOTS
    )
    assert _pipeline.slot_count(MAX_CHUNK_SIZE + TAG_SIZE, MAX_CHUNK_SIZE) == 2
    plain = bytes(range(256)) * (3 * MAX_CHUNK_SIZE // 256 + 7)  # four chunks, the last short
    sealed = io.BytesIO()
    encrypt(io.BytesIO(plain), sealed, KEY, chunk_size=MAX_CHUNK_SIZE)
    blob = sealed.getvalue()
    out = io.BytesIO()
    peak, raised = peak_of(
        lambda: decrypt(io.BytesIO(blob), out, KEY, expected_chunk_size=MAX_CHUNK_SIZE)
    )
    assert raised is None
    assert out.getvalue() == plain
    # Two slots of (16 MiB + tag) in and 16 MiB out (~70 MiB measured beside the output
    # BytesIO); without the budget the same stream took four slots (~112 MiB).
    assert peak - len(plain) < 3 * (2 * MAX_CHUNK_SIZE + TAG_SIZE)

"""The dataset format's header, nonces and associated data (``ledger.crypto.format``), byte by
byte, and the exact bounds on chunk size and chunk count."""

from __future__ import annotations

import pytest

from ledger.crypto.format import (
    HEADER_SIZE,
    MAX_CHUNK_SIZE,
    MAX_CHUNKS,
    MIN_CHUNK_SIZE,
    Header,
    check_chunk_size,
)
from ledger.errors import CryptoError, IntegrityError, UnsupportedFormat

PREFIX = bytes(range(1, 9))


def test_the_header_is_magic_version_chunk_size_and_prefix() -> None:
    header = Header(chunk_size=0x00100000, nonce_prefix=PREFIX)
    assert HEADER_SIZE == 17
    assert header.pack() == b"DRLE" + b"\x01" + b"\x00\x10\x00\x00" + PREFIX
    assert Header.parse(header.pack() + b"chunk bytes follow") == header


def test_nonces_and_associated_data_bind_index_and_last_flag() -> None:
    header = Header(chunk_size=64, nonce_prefix=PREFIX)
    assert header.nonce(0) == PREFIX + b"\x00\x00\x00\x00"
    assert header.nonce(258) == PREFIX + b"\x00\x00\x01\x02"
    assert header.aad(3, last=False) == header.pack() + b"\x00\x00\x00\x03" + b"\x00"
    assert header.aad(3, last=True) == header.pack() + b"\x00\x00\x00\x03" + b"\x01"


def test_the_chunk_count_limit_is_the_32_bit_counter() -> None:
    header = Header(chunk_size=64, nonce_prefix=PREFIX)
    assert MAX_CHUNKS == 4294967296
    assert header.nonce(4294967295) == PREFIX + b"\xff\xff\xff\xff"
    for index in (4294967296, -1):
        with pytest.raises(CryptoError) as caught:
            header.nonce(index)
        assert caught.value.message == (
            "dataset has more chunks than the format can number; use larger chunks"
        )
        with pytest.raises(CryptoError):
            header.aad(index, last=True)


@pytest.mark.parametrize("size", [64, 65, 1 << 20, 16 << 20])
def test_chunk_sizes_inside_the_bounds_are_accepted(size: int) -> None:
    check_chunk_size(size, error=CryptoError)
    assert Header.new(size).chunk_size == size
    assert Header.parse(Header(chunk_size=size, nonce_prefix=PREFIX).pack()).chunk_size == size


@pytest.mark.parametrize("size", [0, 63, (16 << 20) + 1])
def test_chunk_sizes_outside_the_bounds_are_refused(size: int) -> None:
    assert (MIN_CHUNK_SIZE, MAX_CHUNK_SIZE) == (64, 16777216)
    message = f"chunk size {size} outside the supported 64..16777216"
    with pytest.raises(CryptoError) as made:
        Header.new(size)
    assert made.value.message == message
    with pytest.raises(UnsupportedFormat) as read:
        Header.parse(Header(chunk_size=size, nonce_prefix=PREFIX).pack())
    assert read.value.message == message


def test_a_header_cut_short_is_a_truncation() -> None:
    whole = Header(chunk_size=64, nonce_prefix=PREFIX).pack()
    assert Header.parse(whole[:17]).nonce_prefix == PREFIX
    with pytest.raises(IntegrityError) as caught:
        Header.parse(whole[:16])
    assert caught.value.message == "encrypted dataset is truncated inside its header"


def test_a_foreign_magic_or_version_is_unsupported() -> None:
    whole = Header(chunk_size=64, nonce_prefix=PREFIX).pack()
    with pytest.raises(UnsupportedFormat) as magic:
        Header.parse(b"DRLF" + whole[4:])
    assert magic.value.message == "not an encrypted dataset (bad magic)"
    with pytest.raises(UnsupportedFormat) as version:
        Header.parse(whole[:4] + b"\x02" + whole[5:])
    assert version.value.message == "unsupported dataset format version 2"


def test_fresh_headers_get_a_fresh_random_prefix() -> None:
    first, second = Header.new(), Header.new()
    assert first.chunk_size == 1 << 20
    assert len(first.nonce_prefix) == 8
    assert first.nonce_prefix != second.nonce_prefix

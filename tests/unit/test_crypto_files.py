"""Path helpers: output appears at the destination only after everything verified."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from ledger.crypto import decrypt_file, decrypt_to_path, encrypt, encrypt_file
from ledger.crypto.format import PIECE_SIZE
from ledger.errors import CryptoError, IntegrityError
from ledger.merkle.proofs import root

CHUNK = 1024
KEY = bytes(range(32))
BODY = os.urandom(3 * CHUNK + 100)


def sealed(data: bytes = BODY) -> bytes:
    out = io.BytesIO()
    encrypt(io.BytesIO(data), out, KEY, chunk_size=CHUNK)
    return out.getvalue()


def flip_last_byte(blob: bytes) -> bytes:
    return blob[:-1] + bytes([blob[-1] ^ 0x01])


def expected_hash(data: bytes = BODY) -> bytes:
    # Over 1 MiB pieces whatever the chunk size (here one piece).
    return root([data[i : i + PIECE_SIZE] for i in range(0, len(data), PIECE_SIZE)])


def test_file_round_trip_with_the_registered_content_hash(tmp_path: Path) -> None:
    plain, enc, out = tmp_path / "data.csv", tmp_path / "data.enc", tmp_path / "copy.csv"
    plain.write_bytes(BODY)
    sealed_result = encrypt_file(plain, enc, KEY, chunk_size=CHUNK)
    opened = decrypt_file(enc, out, KEY, expected_content_hash=sealed_result.content_hash)

    assert out.read_bytes() == BODY
    assert sealed_result.content_hash == opened.content_hash == expected_hash()
    assert enc.stat().st_size == sealed_result.ciphertext_size
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.csv", "data.csv", "data.enc"]


def test_decrypt_to_path_writes_verified_plaintext(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    result = decrypt_to_path(
        io.BytesIO(sealed()), target, KEY, expected_content_hash=expected_hash()
    )
    assert target.read_bytes() == BODY
    assert result.plaintext_size == len(BODY)
    assert list(tmp_path.iterdir()) == [target]


def test_decrypted_file_is_private_to_its_owner(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    decrypt_to_path(io.BytesIO(sealed()), target, KEY)
    assert stat.S_IMODE(target.stat().st_mode) == 0o600


def test_tampered_last_chunk_leaves_no_plaintext_and_no_temporary_file(tmp_path: Path) -> None:
    # Every chunk but the last authenticates and is written to the temporary file first.
    target = tmp_path / "out.csv"
    with pytest.raises(IntegrityError):
        decrypt_to_path(io.BytesIO(flip_last_byte(sealed())), target, KEY)
    assert list(tmp_path.iterdir()) == []


def test_unexpected_content_hash_is_refused_and_nothing_is_written(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    with pytest.raises(IntegrityError):
        decrypt_to_path(io.BytesIO(sealed()), target, KEY, expected_content_hash=bytes(32))
    assert list(tmp_path.iterdir()) == []


def test_failed_decryption_leaves_an_existing_file_untouched(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(b"previous version")
    with pytest.raises(IntegrityError):
        decrypt_to_path(io.BytesIO(flip_last_byte(sealed())), target, KEY)
    assert target.read_bytes() == b"previous version"
    assert list(tmp_path.iterdir()) == [target]


def test_decrypt_file_refuses_a_tampered_file_without_output(tmp_path: Path) -> None:
    enc, out = tmp_path / "data.enc", tmp_path / "out.csv"
    enc.write_bytes(flip_last_byte(sealed()))
    with pytest.raises(IntegrityError):
        decrypt_file(enc, out, KEY)
    assert list(tmp_path.iterdir()) == [enc]


def test_failed_encryption_leaves_no_ciphertext(tmp_path: Path) -> None:
    plain, enc = tmp_path / "data.csv", tmp_path / "data.enc"
    plain.write_bytes(BODY)
    with pytest.raises(CryptoError):
        encrypt_file(plain, enc, b"short key")
    assert list(tmp_path.iterdir()) == [plain]

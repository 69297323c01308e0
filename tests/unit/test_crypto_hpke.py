"""HPKE data-key wrapping to members' public keys, in both suites."""

from __future__ import annotations

import hashlib

import pytest

from ledger.crypto import (
    DEFAULT_SUITE,
    MLKEM768_X25519,
    X25519,
    Suite,
    generate_data_key,
    generate_keypair,
    get_suite,
    load_private_key,
    load_public_key,
    unwrap_key,
    wrap_key,
)
from ledger.errors import CryptoError, IntegrityError, UnsupportedFormat

INFO = b"dataset:42|grantee:0xabc"
SUITE_NAMES = ["x25519", "mlkem768-x25519"]


@pytest.fixture(params=SUITE_NAMES)
def suite(request: pytest.FixtureRequest) -> Suite:
    return get_suite(request.param)


def flip(blob: bytes, position: int) -> bytes:
    return blob[:position] + bytes([blob[position] ^ 0x01]) + blob[position + 1 :]


def test_wrapped_key_unwraps_with_the_recipients_private_key(suite: Suite) -> None:
    private, public = generate_keypair(suite.name)
    dek = generate_data_key()
    wrapped = wrap_key(dek, public.to_bytes(), suite=suite.name, info=INFO)
    assert unwrap_key(wrapped, private.to_bytes(), info=INFO) == dek


def test_envelope_names_its_version_and_suite(suite: Suite) -> None:
    _, public = generate_keypair(suite)
    wrapped = wrap_key(generate_data_key(), public.to_bytes(), suite=suite.id, info=INFO)
    assert wrapped[:2] == bytes([1, suite.id])
    # version + suite, the KEM's encapsulation, the 32-byte DEK and a 16-byte tag.
    assert len(wrapped) == 2 + suite.kem.enc_length() + 32 + 16


def test_wrapping_is_randomised(suite: Suite) -> None:
    _, public = generate_keypair(suite)
    dek = generate_data_key()
    first = wrap_key(dek, public.to_bytes(), suite=suite, info=INFO)
    assert first != wrap_key(dek, public.to_bytes(), suite=suite, info=INFO)


def test_another_members_private_key_cannot_unwrap(suite: Suite) -> None:
    _, public = generate_keypair(suite)
    other_private, _ = generate_keypair(suite)
    wrapped = wrap_key(generate_data_key(), public.to_bytes(), suite=suite, info=INFO)
    with pytest.raises(IntegrityError):
        unwrap_key(wrapped, other_private.to_bytes(), info=INFO)


def test_a_different_context_cannot_unwrap(suite: Suite) -> None:
    private, public = generate_keypair(suite)
    wrapped = wrap_key(generate_data_key(), public.to_bytes(), suite=suite, info=INFO)
    for info in (b"", INFO + b"x", b"dataset:43|grantee:0xabc"):
        with pytest.raises(IntegrityError):
            unwrap_key(wrapped, private.to_bytes(), info=info)


def test_altered_envelope_is_refused(suite: Suite) -> None:
    private, public = generate_keypair(suite)
    wrapped = wrap_key(generate_data_key(), public.to_bytes(), suite=suite, info=INFO)
    enc_end = 2 + suite.kem.enc_length()
    for position in (2, enc_end - 1, enc_end, len(wrapped) - 17, len(wrapped) - 1):
        with pytest.raises(IntegrityError):
            unwrap_key(flip(wrapped, position), private.to_bytes(), info=INFO)
    for length in (0, 1, 2, enc_end, len(wrapped) - 1):
        with pytest.raises(IntegrityError):
            unwrap_key(wrapped[:length], private.to_bytes(), info=INFO)


def test_envelope_relabelled_as_the_other_suite_is_refused(suite: Suite) -> None:
    private, public = generate_keypair(suite)
    wrapped = wrap_key(generate_data_key(), public.to_bytes(), suite=suite, info=INFO)
    other = MLKEM768_X25519 if suite is X25519 else X25519
    with pytest.raises(IntegrityError):
        unwrap_key(bytes([1, other.id]) + wrapped[2:], private.to_bytes(), info=INFO)


def test_unknown_envelope_version_or_suite_is_unsupported() -> None:
    private, public = generate_keypair()
    wrapped = wrap_key(generate_data_key(), public.to_bytes(), info=INFO)
    with pytest.raises(UnsupportedFormat):
        unwrap_key(bytes([2]) + wrapped[1:], private.to_bytes(), info=INFO)
    with pytest.raises(UnsupportedFormat):
        unwrap_key(bytes([1, 99]) + wrapped[2:], private.to_bytes(), info=INFO)


@pytest.mark.parametrize("ref", ["x25519", 1, X25519])
def test_suites_resolve_by_name_id_or_value(ref: str | int | Suite) -> None:
    assert get_suite(ref) is X25519  # type: ignore[arg-type]


def test_suite_ids_and_names_are_stable() -> None:
    assert (X25519.id, X25519.name) == (1, "x25519")
    assert (MLKEM768_X25519.id, MLKEM768_X25519.name) == (2, "mlkem768-x25519")
    assert get_suite(DEFAULT_SUITE) is X25519
    assert generate_keypair()[1].suite is X25519


@pytest.mark.parametrize("ref", ["kyber", 0, 3, "X25519"])
def test_unknown_suites_are_unsupported(ref: str | int) -> None:
    with pytest.raises(UnsupportedFormat):
        get_suite(ref)  # type: ignore[arg-type]
    with pytest.raises(UnsupportedFormat):
        generate_keypair(ref)  # type: ignore[arg-type]


def test_keys_serialise_and_load_back(suite: Suite) -> None:
    private, public = generate_keypair(suite)
    assert len(public.to_bytes()) == suite.public_key_size
    assert len(private.to_bytes()) == suite.private_key_size
    assert load_public_key(suite.id, public.to_bytes()) == public
    reloaded = load_private_key(suite.name, private.to_bytes())
    assert reloaded == private
    assert reloaded.public_key() == public


def test_private_key_bytes_stay_out_of_repr(suite: Suite) -> None:
    private, _ = generate_keypair(suite)
    assert private.to_bytes().hex() not in repr(private)
    assert repr(private.to_bytes())[2:-1] not in repr(private)


def test_malformed_public_keys_are_refused(suite: Suite) -> None:
    _, public = generate_keypair(suite)
    for raw in (b"", public.to_bytes()[:-1], public.to_bytes() + b"\x00"):
        with pytest.raises(CryptoError):
            load_public_key(suite, raw)
        with pytest.raises(CryptoError):
            wrap_key(generate_data_key(), raw, suite=suite, info=INFO)


def test_malformed_private_keys_are_refused(suite: Suite) -> None:
    with pytest.raises(CryptoError):
        load_private_key(suite, bytes(31))


@pytest.mark.parametrize("dek", [b"", bytes(16), bytes(33)])
def test_only_256_bit_data_keys_are_wrapped(dek: bytes) -> None:
    _, public = generate_keypair()
    with pytest.raises(CryptoError):
        wrap_key(dek, public.to_bytes(), info=INFO)


def test_hybrid_keys_follow_the_x_wing_seed_expansion() -> None:
    # draft-connolly-cfrg-xwing-kem, appendix C, first vector: seed -> 1216-byte public key.
    seed = bytes.fromhex("7f9c2ba4e88f827d616045507605853ed73b8093f6efbc88eb1a6eacfa66ef26")
    public = load_private_key("mlkem768-x25519", seed).public_key().to_bytes()
    assert public[:8].hex() == "e2236b35a8c24b39"
    assert public[-8:].hex() == "c8cd049040ef6534"
    assert hashlib.sha256(public).hexdigest() == (
        "2e816deebcd76c5c80d0cd2d174478871658e8e2ff42bc9d4a6e486372e856bb"
    )


# -- refusals, each with its exact reason ---------------------------------------------------------


@pytest.mark.parametrize(
    ("envelope", "error", "message"),
    [
        (b"", IntegrityError, "wrapped key is truncated"),
        (b"\x01", IntegrityError, "wrapped key is truncated"),
        (
            b"\x01\x01",
            IntegrityError,
            "wrapped key does not open: wrong private key, wrong context, or altered envelope",
        ),
        (b"\x02\x01", UnsupportedFormat, "unsupported wrapped-key version 2"),
        (b"\x01\x63", UnsupportedFormat, "unsupported HPKE suite 99"),
    ],
)
def test_short_or_foreign_envelopes_are_refused_by_name(
    envelope: bytes, error: type[Exception], message: str
) -> None:
    private, _ = generate_keypair("x25519")
    with pytest.raises(error) as caught:
        unwrap_key(envelope, private.to_bytes(), info=INFO)
    assert caught.value.message == message  # type: ignore[attr-defined]


def test_an_envelope_under_another_key_is_refused_by_name(suite: Suite) -> None:
    _, public = generate_keypair(suite)
    other, _ = generate_keypair(suite)
    wrapped = wrap_key(generate_data_key(), public.to_bytes(), suite=suite, info=INFO)
    with pytest.raises(IntegrityError) as caught:
        unwrap_key(wrapped, other.to_bytes(), info=INFO)
    assert caught.value.message == (
        "wrapped key does not open: wrong private key, wrong context, or altered envelope"
    )


def test_an_envelope_holding_anything_but_a_256_bit_key_is_refused() -> None:
    """Sealed by hand (``wrap_key`` refuses short keys): what opens must still be a DEK."""
    from ledger.crypto import hpke

    private, public = generate_keypair("x25519")
    header = b"\x01\x01"
    sealed = hpke._HPKE[1].encrypt(
        b"k" * 16, hpke._load_public(X25519, public.to_bytes()), info=hpke._info(header, INFO)
    )
    with pytest.raises(IntegrityError) as caught:
        unwrap_key(header + sealed, private.to_bytes(), info=INFO)
    assert caught.value.message == "wrapped key holds 16 bytes, not a 32-byte DEK"


def test_key_and_suite_refusals_name_the_suite_and_the_size() -> None:
    refusals = [
        (lambda: get_suite("kyber"), "unsupported HPKE suite 'kyber'"),
        (lambda: get_suite(3), "unsupported HPKE suite 3"),
        (lambda: wrap_key(bytes(16), bytes(32), info=INFO), "a data key is 32 bytes, got 16"),
        (lambda: load_public_key("x25519", bytes(31)), "x25519 public keys are 32 bytes"),
        (
            lambda: load_public_key("mlkem768-x25519", bytes(1215)),
            "mlkem768-x25519 public keys are 1216 bytes",
        ),
        (lambda: load_private_key("x25519", bytes(33)), "x25519 private keys are 32 bytes"),
        (
            lambda: load_private_key("mlkem768-x25519", bytes(31)),
            "mlkem768-x25519 private keys are 32 bytes",
        ),
    ]
    for call, message in refusals:
        with pytest.raises((CryptoError, UnsupportedFormat)) as caught:
            call()
        assert caught.value.message == message


def test_a_malformed_hybrid_public_key_is_refused_with_the_reason() -> None:
    with pytest.raises(CryptoError) as caught:
        load_public_key("mlkem768-x25519", b"\xff" * 1216)
    assert caught.value.message.startswith("malformed mlkem768-x25519 public key: ")
    assert len(caught.value.message) > len("malformed mlkem768-x25519 public key: ")

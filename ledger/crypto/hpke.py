"""HPKE (RFC 9180) wrapping of data keys to a member's public encryption key.

The owner's client wraps a dataset's DEK to its own key at upload and to each grantee's key at
approval, so the broker only ever stores wrapped keys. Two suites, chosen per member:

=====  ===================  =========================================  ============  ==========
id     name                 KEM                                        public key    private key
=====  ===================  =========================================  ============  ==========
1      ``x25519``           DHKEM(X25519, HKDF-SHA256)                 32 bytes      32 bytes
2      ``mlkem768-x25519``  ML-KEM-768 + X25519 hybrid (X-Wing)        1216 bytes    32 bytes
=====  ===================  =========================================  ============  ==========

Both use HKDF-SHA256 and AES-256-GCM. Raw public keys are the standard KEM encodings (the
hybrid one is ``pk_mlkem || pk_x25519``, as in X-Wing), which is what the member registry
stores on chain next to the numeric suite id. A hybrid private key is the 32-byte X-Wing seed,
expanded with SHAKE256 into the ML-KEM-768 seed and the X25519 scalar, so it is small and
portable to other X-Wing implementations.

Envelope: ``version u8 (= 1) | suite id u8 | HPKE enc | AEAD ciphertext of the DEK``. The two
header bytes are folded into the HPKE ``info`` together with the caller's context (for example
dataset id and grantee), so an envelope opens only for the context it was made for.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke as _hpke
from cryptography.hazmat.primitives.asymmetric import mlkem, x25519

from ledger.crypto.format import KEY_SIZE
from ledger.errors import CryptoError, IntegrityError, UnsupportedFormat

SuiteName: TypeAlias = Literal["x25519", "mlkem768-x25519"]
_HpkePublic: TypeAlias = x25519.X25519PublicKey | _hpke.MLKEM768X25519PublicKey
_HpkePrivate: TypeAlias = x25519.X25519PrivateKey | _hpke.MLKEM768X25519PrivateKey

ENVELOPE_VERSION = 1
_INFO_LABEL = b"drl/dek-wrap/v1"
_MLKEM768_PUBLIC_SIZE = 1184
_X25519_SIZE = 32
_XWING_SEED_SIZE = 32


@dataclass(frozen=True)
class Suite:
    """An HPKE suite the ledger supports; ``id`` is what goes on chain and into envelopes."""

    id: int
    name: SuiteName
    public_key_size: int
    private_key_size: int
    kem: _hpke.KEM = field(repr=False)


SuiteRef: TypeAlias = SuiteName | int | Suite

X25519 = Suite(1, "x25519", _X25519_SIZE, _X25519_SIZE, _hpke.KEM.X25519)
MLKEM768_X25519 = Suite(
    2,
    "mlkem768-x25519",
    _MLKEM768_PUBLIC_SIZE + _X25519_SIZE,
    _XWING_SEED_SIZE,
    _hpke.KEM.MLKEM768_X25519,
)
SUITES: tuple[Suite, ...] = (X25519, MLKEM768_X25519)
DEFAULT_SUITE: SuiteName = "x25519"
_BY_ID = {s.id: s for s in SUITES}
_BY_NAME = {s.name: s for s in SUITES}
_HPKE = {s.id: _hpke.Suite(s.kem, _hpke.KDF.HKDF_SHA256, _hpke.AEAD.AES_256_GCM) for s in SUITES}


def get_suite(suite: SuiteRef) -> Suite:
    """Resolve a suite by name or numeric id; unknown ones raise :class:`UnsupportedFormat`."""
    if isinstance(suite, Suite):
        return suite
    found = _BY_ID.get(suite) if isinstance(suite, int) else _BY_NAME.get(suite)
    if found is None:
        raise UnsupportedFormat(f"unsupported HPKE suite {suite!r}")
    return found


@dataclass(frozen=True)
class PublicKey:
    """A member's public encryption key; ``raw`` is what the member registry stores."""

    suite: Suite
    raw: bytes

    def to_bytes(self) -> bytes:
        """Raw public key bytes (store the suite id beside them)."""
        return self.raw


@dataclass(frozen=True)
class PrivateKey:
    """A member's private decryption key; ``to_bytes`` is meant for an encrypted keystore."""

    suite: Suite
    raw: bytes = field(repr=False)

    def to_bytes(self) -> bytes:
        """Raw private key bytes: secret, keep them encrypted at rest."""
        return self.raw

    def public_key(self) -> PublicKey:
        """The matching public key."""
        return PublicKey(self.suite, _public_raw(self.suite, self.raw))


def generate_keypair(suite: SuiteRef = DEFAULT_SUITE) -> tuple[PrivateKey, PublicKey]:
    """A fresh key pair for ``suite``: ``(private, public)``."""
    resolved = get_suite(suite)
    # Any 32 random bytes are a valid key for both suites: an X25519 scalar (clamped when
    # used, RFC 7748) or an X-Wing seed.
    private = PrivateKey(resolved, os.urandom(resolved.private_key_size))
    return private, private.public_key()


def load_public_key(suite: SuiteRef, raw: bytes) -> PublicKey:
    """Validate raw public key bytes for ``suite``; malformed ones raise :class:`CryptoError`."""
    resolved = get_suite(suite)
    _load_public(resolved, raw)
    return PublicKey(resolved, bytes(raw))


def load_private_key(suite: SuiteRef, raw: bytes) -> PrivateKey:
    """Validate raw private key bytes for ``suite``; malformed ones raise :class:`CryptoError`."""
    resolved = get_suite(suite)
    _load_private(resolved, raw)
    return PrivateKey(resolved, bytes(raw))


def wrap_key(
    dek: bytes, recipient_public_raw: bytes, *, suite: SuiteRef = DEFAULT_SUITE, info: bytes
) -> bytes:
    """Seal ``dek`` to the recipient's raw public key; ``info`` names the context it is for."""
    resolved = get_suite(suite)
    if len(dek) != KEY_SIZE:
        raise CryptoError(f"a data key is {KEY_SIZE} bytes, got {len(dek)}")
    header = bytes((ENVELOPE_VERSION, resolved.id))
    public = _load_public(resolved, recipient_public_raw)
    return header + _HPKE[resolved.id].encrypt(dek, public, info=_info(header, info))


def unwrap_key(wrapped: bytes, private_raw: bytes, *, info: bytes) -> bytes:
    """Open an envelope from :func:`wrap_key` with the recipient's raw private key.

    Raises :class:`UnsupportedFormat` for an unknown envelope version or suite, and
    :class:`IntegrityError` for a wrong key, a different ``info`` or an altered envelope.
    """
    if len(wrapped) < 2:
        raise IntegrityError("wrapped key is truncated")
    version, suite_id = wrapped[0], wrapped[1]
    if version != ENVELOPE_VERSION:
        raise UnsupportedFormat(f"unsupported wrapped-key version {version}")
    resolved = get_suite(suite_id)
    private = _load_private(resolved, private_raw)
    try:
        dek = _HPKE[resolved.id].decrypt(wrapped[2:], private, info=_info(wrapped[:2], info))
    except (InvalidTag, ValueError):
        raise IntegrityError(
            "wrapped key does not open: wrong private key, wrong context, or altered envelope"
        ) from None
    if len(dek) != KEY_SIZE:
        raise IntegrityError(f"wrapped key holds {len(dek)} bytes, not a {KEY_SIZE}-byte DEK")
    return dek


def _info(header: bytes, info: bytes) -> bytes:
    # Fixed-length label and header first, caller context last: no two inputs collide.
    return _INFO_LABEL + header + info


def _xwing_expand(seed: bytes) -> tuple[mlkem.MLKEM768PrivateKey, x25519.X25519PrivateKey]:
    # X-Wing's expandDecapsulationKey: SHAKE256(seed, 96) = ML-KEM-768 seed (d || z) || X25519.
    expanded = hashlib.shake_256(seed).digest(64 + _X25519_SIZE)
    return (
        mlkem.MLKEM768PrivateKey.from_seed_bytes(expanded[:64]),
        x25519.X25519PrivateKey.from_private_bytes(expanded[64:]),
    )


def _public_raw(suite: Suite, private_raw: bytes) -> bytes:
    if suite is X25519:
        return (
            x25519.X25519PrivateKey.from_private_bytes(private_raw).public_key().public_bytes_raw()
        )
    pq, classic = _xwing_expand(private_raw)
    return pq.public_key().public_bytes_raw() + classic.public_key().public_bytes_raw()


def _load_public(suite: Suite, raw: bytes) -> _HpkePublic:
    if len(raw) != suite.public_key_size:
        raise CryptoError(f"{suite.name} public keys are {suite.public_key_size} bytes")
    try:
        if suite is X25519:
            return x25519.X25519PublicKey.from_public_bytes(raw)
        return _hpke.MLKEM768X25519PublicKey(
            mlkem.MLKEM768PublicKey.from_public_bytes(raw[:_MLKEM768_PUBLIC_SIZE]),
            x25519.X25519PublicKey.from_public_bytes(raw[_MLKEM768_PUBLIC_SIZE:]),
        )
    except ValueError as exc:
        raise CryptoError(f"malformed {suite.name} public key: {exc}") from None


def _load_private(suite: Suite, raw: bytes) -> _HpkePrivate:
    if len(raw) != suite.private_key_size:
        raise CryptoError(f"{suite.name} private keys are {suite.private_key_size} bytes")
    if suite is X25519:
        return x25519.X25519PrivateKey.from_private_bytes(raw)
    return _hpke.MLKEM768X25519PrivateKey(*_xwing_expand(raw))

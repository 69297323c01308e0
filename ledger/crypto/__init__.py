"""Client-side cryptography: streaming dataset encryption, content hashing, HPKE key wrapping.

Everything here runs on a member's machine; the broker only sees ciphertext, digests and
wrapped keys. See :mod:`ledger.crypto.format` for the versioned dataset format and
:mod:`ledger.crypto.hpke` for the key-wrapping envelope.
"""

from ledger.crypto.files import decrypt_file, decrypt_to_path, encrypt_file
from ledger.crypto.format import DEFAULT_CHUNK_SIZE, KEY_SIZE
from ledger.crypto.hpke import (
    DEFAULT_SUITE,
    MLKEM768_X25519,
    SUITES,
    X25519,
    PrivateKey,
    PublicKey,
    Suite,
    SuiteName,
    generate_keypair,
    get_suite,
    load_private_key,
    load_public_key,
    unwrap_key,
    wrap_key,
)
from ledger.crypto.stream import (
    DecryptResult,
    EncryptResult,
    content_hash,
    decrypt,
    encrypt,
    generate_data_key,
)

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_SUITE",
    "KEY_SIZE",
    "MLKEM768_X25519",
    "SUITES",
    "X25519",
    "DecryptResult",
    "EncryptResult",
    "PrivateKey",
    "PublicKey",
    "Suite",
    "SuiteName",
    "content_hash",
    "decrypt",
    "decrypt_file",
    "decrypt_to_path",
    "encrypt",
    "encrypt_file",
    "generate_data_key",
    "generate_keypair",
    "get_suite",
    "load_private_key",
    "load_public_key",
    "unwrap_key",
    "wrap_key",
]

"""The small documents the protocol hashes, and the byte strings it binds keys to.

Each hash here is what a signature or a contract commits to, so both sides must compute it
byte for byte alike (docs/protocol.md "Documents and hashes"; the vectors pin every one):

- ``metadataHash`` (signed in Register): SHA-256 of the canonical JSON metadata document, which
  names the ciphertext's SHA-256 and size, so one owner signature binds plaintext content hash
  and ciphertext digest;
- ``purposeHash`` (in a grant): SHA-256 of the purpose text as requested (UTF-8);
- ``termsHash`` (in a grant): SHA-256 of the canonical JSON terms document;
- the receipt id (what SharingCredits records as credited): SHA-256 of ``drl-receipt:`` and the
  consumer's 65-byte receipt signature;
- the HPKE ``info`` of a wrapped data key: ``drl/dek/v1|`` || content hash || recipient address.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from ledger.protocol.canonical import canonical

METADATA_VERSION: Final = 1
TERMS_VERSION: Final = 1
MAX_METADATA_BYTES: Final = 256 * 1024
KEY_CONTEXT_PREFIX: Final = b"drl/dek/v1|"

#: The conditions every grant's terms document carries.
STANDARD_CONDITIONS: Final = (
    "Use only for the stated purpose; no onward sharing; no re-identification of persons; "
    "delete at expiry; report incidents to the data owner within 72 hours."
)


def metadata_hash(metadata: dict[str, Any]) -> bytes:
    """What the owner signs as ``metadataHash``: SHA-256 of the canonical JSON document."""
    return hashlib.sha256(canonical(metadata)).digest()


def purpose_hash(purpose: str) -> bytes:
    """A grant's ``purposeHash``: SHA-256 of the purpose text exactly as requested."""
    return hashlib.sha256(purpose.encode("utf-8")).digest()


def terms_document(request_id: int, wrapped_key: bytes) -> dict[str, Any]:
    """The terms a grant's ``termsHash`` commits to: the request, the key handed over, the rules."""
    return {
        "v": TERMS_VERSION,
        "request_id": request_id,
        "wrapped_key_sha256": "0x" + hashlib.sha256(wrapped_key).hexdigest(),
        "conditions": STANDARD_CONDITIONS,
    }


def terms_hash(request_id: int, wrapped_key: bytes) -> bytes:
    """A grant's ``termsHash``: SHA-256 of the canonical JSON terms document."""
    return hashlib.sha256(canonical(terms_document(request_id, wrapped_key))).digest()


def key_context(content_hash: bytes, recipient: str) -> bytes:
    """HPKE ``info`` binding a wrapped data key to one dataset and one recipient address."""
    return KEY_CONTEXT_PREFIX + content_hash + bytes.fromhex(recipient[2:])

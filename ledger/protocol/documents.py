"""The small documents the protocol hashes, and the byte strings it binds keys to.

Each hash here is what a signature or a contract commits to, so both sides must compute it
byte for byte alike (docs/protocol.md "Documents and hashes"; the vectors pin every one):

- ``metadataHash`` (signed in Register): SHA-256 of the canonical JSON metadata document, which
  names the ciphertext's SHA-256 and size, so one owner signature binds plaintext content hash
  and ciphertext digest;
- ``purposeHash`` (in a grant): SHA-256 of the purpose text as requested (UTF-8);
- ``termsHash`` (in a grant): SHA-256 of the canonical JSON terms document, which carries the
  request's standard form (purpose category, legal basis, retention, processing location);
- the receipt id (what SharingCredits records as credited): SHA-256 of ``drl-receipt:`` and the
  consumer's 65-byte receipt signature;
- the HPKE ``info`` of a wrapped data key: ``drl/dek/v1|`` || content hash || recipient address.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Final

from ledger.protocol.canonical import canonical

METADATA_VERSION: Final = 1
TERMS_VERSION: Final = 2
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


@dataclass(frozen=True)
class RequestForm:
    """The standard request form a grant's terms carry over from the signed RequestAccess."""

    purpose_category: str = "unspecified"
    legal_basis: str = "unspecified"
    retention_days: int = 0
    processing_location: str = "unspecified"

    @classmethod
    def of(cls, message: dict[str, Any]) -> RequestForm:
        """The form of a signed RequestAccess message."""
        return cls(
            purpose_category=str(message["purposeCategory"]),
            legal_basis=str(message["legalBasis"]),
            retention_days=int(message["retentionDays"]),
            processing_location=str(message["processingLocation"]),
        )

    @classmethod
    def of_request(cls, request: dict[str, Any]) -> RequestForm:
        """The form of a request as the broker serves it (``RequestPublic`` as JSON)."""
        return cls(
            purpose_category=str(request.get("purpose_category", "unspecified")),
            legal_basis=str(request.get("legal_basis", "unspecified")),
            retention_days=int(request.get("retention_days", 0)),
            processing_location=str(request.get("processing_location", "unspecified")),
        )

    def message(self) -> dict[str, Any]:
        """The form's members of a RequestAccess message."""
        return {
            "purposeCategory": self.purpose_category,
            "legalBasis": self.legal_basis,
            "retentionDays": self.retention_days,
            "processingLocation": self.processing_location,
        }


def terms_document(request_id: int, wrapped_key: bytes, form: RequestForm) -> dict[str, Any]:
    """The terms a grant's ``termsHash`` commits to: the request and its form, the key handed
    over, the rules."""
    return {
        "v": TERMS_VERSION,
        "request_id": request_id,
        "purpose_category": form.purpose_category,
        "legal_basis": form.legal_basis,
        "retention_days": form.retention_days,
        "processing_location": form.processing_location,
        "wrapped_key_sha256": "0x" + hashlib.sha256(wrapped_key).hexdigest(),
        "conditions": STANDARD_CONDITIONS,
    }


def terms_hash(request_id: int, wrapped_key: bytes, form: RequestForm) -> bytes:
    """A grant's ``termsHash``: SHA-256 of the canonical JSON terms document."""
    return hashlib.sha256(canonical(terms_document(request_id, wrapped_key, form))).digest()


def key_context(content_hash: bytes, recipient: str) -> bytes:
    """HPKE ``info`` binding a wrapped data key to one dataset and one recipient address."""
    return KEY_CONTEXT_PREFIX + content_hash + bytes.fromhex(recipient[2:])

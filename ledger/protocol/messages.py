"""What the contracts take, and the EIP-712 messages that sign it (contract domain).

The broker relays these signatures on chain (``registerFor``, ``grantFor``, ``revokeFor``,
``recordUse``, ``mintBatch``, ``onboardFor`` ...); the contracts recompute the same struct hash,
so a member's (or the operator's) signature is checked by the chain itself, not by the broker.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address

from ledger.protocol.actions import Domains
from ledger.protocol.eip712 import typed_message
from ledger.types import Address, Classification, classification_code


@dataclass(frozen=True)
class Registration:
    """What an owner registers (and signs when relayed)."""

    content_hash: bytes
    metadata_hash: bytes
    classification: Classification
    parents: tuple[int, ...] = ()
    previous_version: int = 0


@dataclass(frozen=True)
class GrantTerms:
    """The terms an owner grants."""

    dataset_id: int
    grantee: Address
    purpose_hash: bytes
    expires_at: int
    max_uses: int
    terms_hash: bytes

    def as_tuple(self) -> tuple[int, str, bytes, int, int, bytes]:
        return (
            self.dataset_id,
            self.grantee,
            self.purpose_hash,
            self.expires_at,
            self.max_uses,
            self.terms_hash,
        )


def register_message(
    owner: str, registration: Registration, *, nonce: int, deadline: int
) -> dict[str, Any]:
    return {
        "owner": owner,
        "contentHash": registration.content_hash,
        "metadataHash": registration.metadata_hash,
        "classification": classification_code(registration.classification),
        "parents": list(registration.parents),
        "previousVersion": registration.previous_version,
        "nonce": nonce,
        "deadline": deadline,
    }


def terms_message(terms: GrantTerms) -> dict[str, Any]:
    return {
        "datasetId": terms.dataset_id,
        "grantee": terms.grantee,
        "purposeHash": terms.purpose_hash,
        "expiresAt": terms.expires_at,
        "maxUses": terms.max_uses,
        "termsHash": terms.terms_hash,
    }


def terms_of(message: dict[str, Any]) -> GrantTerms:
    """The grant terms a signed Grant or GrantApproval message names (JSON-form values)."""
    return GrantTerms(
        dataset_id=int(message["datasetId"]),
        grantee=to_checksum_address(str(message["grantee"])),
        purpose_hash=bytes.fromhex(str(message["purposeHash"])[2:]),
        expires_at=int(message["expiresAt"]),
        max_uses=int(message["maxUses"]),
        terms_hash=bytes.fromhex(str(message["termsHash"])[2:]),
    )


def grant_message(terms: GrantTerms, *, nonce: int, deadline: int) -> dict[str, Any]:
    return {**terms_message(terms), "nonce": nonce, "deadline": deadline}


def revoke_message(dataset_id: int, grantee: str, *, nonce: int, deadline: int) -> dict[str, Any]:
    return {"datasetId": dataset_id, "grantee": grantee, "nonce": nonce, "deadline": deadline}


def typed_register(
    domains: Domains, owner: str, registration: Registration, *, nonce: int, deadline: int
) -> dict[str, Any]:
    """The full EIP-712 structure an owner signs to have a registration relayed."""
    message = register_message(
        to_checksum_address(owner), registration, nonce=nonce, deadline=deadline
    )
    return typed_message("Register", message, domains.for_action("register"))


def typed_grant(
    domains: Domains, terms: GrantTerms, *, nonce: int, deadline: int
) -> dict[str, Any]:
    """The full EIP-712 structure an owner signs to have a grant relayed."""
    message = grant_message(terms, nonce=nonce, deadline=deadline)
    return typed_message("Grant", message, domains.for_action("grant"))


def approval_message(
    terms: GrantTerms, *, generation: int, nonce: int, deadline: int
) -> dict[str, Any]:
    """ADMIN's co-signature for a SENSITIVE grant to an enterprise: single use, for the one
    grant generation it creates, until ``deadline``."""
    return {**terms_message(terms), "generation": generation, "nonce": nonce, "deadline": deadline}


def typed_approval(
    domains: Domains, terms: GrantTerms, *, generation: int, nonce: int, deadline: int
) -> dict[str, Any]:
    """The EIP-712 structure ADMIN co-signs for a SENSITIVE grant to an enterprise."""
    message = approval_message(terms, generation=generation, nonce=nonce, deadline=deadline)
    return typed_message("GrantApproval", message, domains.for_action("approval"))


def typed_revoke(
    domains: Domains, dataset_id: int, grantee: str, *, nonce: int, deadline: int
) -> dict[str, Any]:
    """The full EIP-712 structure an owner signs to have a revocation relayed."""
    message = revoke_message(
        dataset_id, to_checksum_address(grantee), nonce=nonce, deadline=deadline
    )
    return typed_message("Revoke", message, domains.for_action("revoke"))

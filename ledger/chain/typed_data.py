"""EIP-712 typed data for actions the broker relays on chain.

The type strings here must match the TYPEHASH constants in the contracts exactly; the contract
test suite signs with these builders and the contracts verify, so a drift fails the tests.
"""

from __future__ import annotations

from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_account.signers.local import LocalAccount

from ledger.chain.models import GrantTerms, Registration
from ledger.types import classification_code

DOMAIN_NAME = "DataRightsLedger"
DOMAIN_VERSION = "1"

_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]
_TERMS = [
    {"name": "datasetId", "type": "uint256"},
    {"name": "grantee", "type": "address"},
    {"name": "purposeHash", "type": "bytes32"},
    {"name": "expiresAt", "type": "uint64"},
    {"name": "maxUses", "type": "uint32"},
    {"name": "termsHash", "type": "bytes32"},
]
_NONCE_DEADLINE = [
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]
TYPES: dict[str, list[dict[str, str]]] = {
    "Register": [
        {"name": "owner", "type": "address"},
        {"name": "contentHash", "type": "bytes32"},
        {"name": "metadataHash", "type": "bytes32"},
        {"name": "classification", "type": "uint8"},
        {"name": "parents", "type": "uint256[]"},
        {"name": "previousVersion", "type": "uint256"},
        *_NONCE_DEADLINE,
    ],
    "Grant": [*_TERMS, *_NONCE_DEADLINE],
    "GrantApproval": list(_TERMS),
    "Revoke": [
        {"name": "datasetId", "type": "uint256"},
        {"name": "grantee", "type": "address"},
        *_NONCE_DEADLINE,
    ],
}


def domain(chain_id: int, verifying_contract: str) -> dict[str, Any]:
    """The EIP-712 domain every contract uses."""
    return {
        "name": DOMAIN_NAME,
        "version": DOMAIN_VERSION,
        "chainId": chain_id,
        "verifyingContract": verifying_contract,
    }


def typed_message(
    primary: str, message: dict[str, Any], *, chain_id: int, verifying_contract: str
) -> dict[str, Any]:
    """A complete EIP-712 message ready to sign or show."""
    return {
        "types": {"EIP712Domain": _DOMAIN_TYPE, primary: TYPES[primary]},
        "primaryType": primary,
        "domain": domain(chain_id, verifying_contract),
        "message": message,
    }


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


def grant_message(terms: GrantTerms, *, nonce: int, deadline: int) -> dict[str, Any]:
    return {**terms_message(terms), "nonce": nonce, "deadline": deadline}


def revoke_message(dataset_id: int, grantee: str, *, nonce: int, deadline: int) -> dict[str, Any]:
    return {"datasetId": dataset_id, "grantee": grantee, "nonce": nonce, "deadline": deadline}


def sign(account: LocalAccount, full_message: dict[str, Any]) -> bytes:
    """65-byte signature (r, s, v) over an EIP-712 message."""
    signed = account.sign_message(encode_typed_data(full_message=full_message))
    return bytes(signed.signature)


def recover(full_message: dict[str, Any], signature: bytes) -> str:
    """Address that signed an EIP-712 message."""
    return str(
        Account.recover_message(encode_typed_data(full_message=full_message), signature=signature)
    )

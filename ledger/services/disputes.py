"""The dispute path: the operator reassigns a data-rights certificate, with a reason on record.

First registration proves that a content hash was new, not who authored the data: anyone who
holds the plaintext can register it first. When a department shows the operator that a
certificate belongs to it, the operator signs a Reassign (ADMIN key, off the broker host if it
likes) naming the dataset, the rightful holder and the SHA-256 of a written reason; the broker
relays it (``DataRegistry.reassignFor`` checks the ADMIN signature), logs it with the reason
text, and updates the index. The ciphertext and its key stay as they were: the new holder
proves its claim by holding the plaintext, not by decrypting the old registration.
"""

from __future__ import annotations

import hashlib

from eth_utils.address import to_checksum_address

from ledger.errors import InvalidInput
from ledger.protocol.actions import SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.protocol.limits import MAX_REASON_CHARS
from ledger.services import flowlog, policy
from ledger.services.context import Ledger, check_signed, consume_nonce, dataset
from ledger.store.models import Dataset


def reason_hash(reason: str) -> bytes:
    """What a Reassign signs for its reason: SHA-256 of the UTF-8 text."""
    return hashlib.sha256(reason.encode()).digest()


def reassign(ledger: Ledger, signed: SignedAction, *, reason: str) -> Dataset:
    """Relay the operator's signed Reassign of a certificate and record the reason."""
    signer = check_signed(ledger, signed, "reassign")
    policy.require_operator(signer, ledger.operator, "only the operator reassigns certificates")
    if not 1 <= len(reason) <= MAX_REASON_CHARS:
        raise InvalidInput(
            f"a reassignment needs a reason of 1 to {MAX_REASON_CHARS} characters",
            code=ErrorCode.INVALID_FIELD,
        )
    msg = signed.message
    if bytes.fromhex(str(msg["reasonHash"])[2:]) != reason_hash(reason):
        raise InvalidInput(
            "the reason is not the one the Reassign signed", code=ErrorCode.INVALID_FIELD
        )
    dataset_id = int(msg["datasetId"])
    to = to_checksum_address(str(msg["to"]))
    with ledger.db.transaction() as session:
        target = dataset(session, dataset_id)
        policy.standing(session, to, operator=ledger.operator).require_writer()
        consume_nonce(session, signed)
        tx = ledger.chain.reassign_for(
            dataset_id,
            to,
            reason_hash(reason),
            nonce=int(msg["nonce"]),
            deadline=int(msg["deadline"]),
            signature=signed.signature,
        )
        flowlog.append(
            session,
            signed,
            dataset_id=dataset_id,
            context={"tx": tx.tx_hash, "from": target.owner, "reason": reason},
        )
        target.owner = to
        session.add(target)
        session.flush()
        session.refresh(target)
        session.expunge(target)
    return target

"""Access requests and the owner's decisions: approve (grant), deny, revoke."""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

from eth_utils.address import to_checksum_address
from sqlmodel import Session, col, select

from ledger.chain.models import GrantTerms
from ledger.errors import Conflict, Forbidden, InvalidInput, NotFound, ReplayedNonce
from ledger.log import flowlog
from ledger.services.actions import SignedAction, canonical
from ledger.services.context import (
    MAX_ROW_ID,
    Ledger,
    active_member,
    check_signed,
    consume_nonce,
    dataset,
    producer,
)
from ledger.store.models import AccessRequest, Grant, WrappedKey

MAX_DAYS = 3650
MAX_USES = 1_000_000
STANDARD_CONDITIONS = (
    "Use only for the stated purpose; no onward sharing; no re-identification of persons; "
    "delete at expiry; report incidents to the data owner within 72 hours."
)


def purpose_hash(purpose: str) -> bytes:
    return hashlib.sha256(purpose.encode()).digest()


def terms_document(request_id: int, wrapped_key: bytes) -> dict[str, Any]:
    """The terms a grant's ``termsHash`` commits to: the request, the key handed over, the rules."""
    return {
        "v": 1,
        "request_id": request_id,
        "wrapped_key_sha256": "0x" + hashlib.sha256(wrapped_key).hexdigest(),
        "conditions": STANDARD_CONDITIONS,
    }


def terms_hash(request_id: int, wrapped_key: bytes) -> bytes:
    return hashlib.sha256(canonical(terms_document(request_id, wrapped_key))).digest()


def request_access(ledger: Ledger, signed: SignedAction) -> AccessRequest:
    """Record a signed request (standard form: purpose, duration, uses)."""
    requester = check_signed(ledger, signed, "request")
    msg = signed.message
    purpose = str(msg["purpose"]).strip()
    days, uses = int(msg["days"]), int(msg["maxUses"])
    if not 10 <= len(purpose) <= 2000:
        raise InvalidInput("purpose must be 10 to 2000 characters")
    if not 1 <= days <= MAX_DAYS:
        raise InvalidInput(f"days must be 1 to {MAX_DAYS}")
    if not 1 <= uses <= MAX_USES:
        raise InvalidInput(f"maxUses must be 1 to {MAX_USES}")
    with ledger.db.transaction() as session:
        producer(session, requester)
        target = dataset(session, int(msg["datasetId"]))
        if target.retired:
            raise Conflict(f"dataset {target.id} is retired", code="dataset_retired")
        if target.owner == requester:
            raise InvalidInput("a member cannot request its own dataset", code="own_dataset")
        consume_nonce(session, signed)
        seq = flowlog.append(session, signed, dataset_id=target.id)
        row = AccessRequest(
            dataset_id=target.id,
            requester=requester,
            purpose=purpose,
            days=days,
            max_uses=uses,
            log_seq=seq,
        )
        session.add(row)
        session.flush()
        session.refresh(row)
        session.expunge(row)
    return row


def _pending(session: Session, request_id: int) -> AccessRequest:
    request = session.get(AccessRequest, request_id) if 0 <= request_id <= MAX_ROW_ID else None
    if request is None:
        raise NotFound(f"no access request {request_id}", code="request_not_found")
    if request.status != "pending":
        raise Conflict(f"request {request_id} is already {request.status}", code="request_decided")
    return request


def approve(
    ledger: Ledger,
    request_id: int,
    signed: SignedAction,
    *,
    wrapped_key: bytes,
    admin_approval: bytes = b"",
) -> Grant:
    """Relay the owner-signed grant for a pending request and store the wrapped key."""
    owner = check_signed(ledger, signed, "grant")
    msg = signed.message
    if not 0 < len(wrapped_key) <= 4096:
        raise InvalidInput("wrapped_key must be 1 to 4096 bytes")
    with ledger.db.session() as session:
        request = _pending(session, request_id)
        target = dataset(session, request.dataset_id)
        if target.owner != owner:
            raise Forbidden("only the dataset's owner approves its requests", code="not_owner")
        active_member(session, owner, role="owner")
        active_member(session, request.requester, role="requester")
        terms = GrantTerms(
            dataset_id=int(msg["datasetId"]),
            grantee=to_checksum_address(str(msg["grantee"])),
            purpose_hash=bytes.fromhex(str(msg["purposeHash"])[2:]),
            expires_at=int(msg["expiresAt"]),
            max_uses=int(msg["maxUses"]),
            terms_hash=bytes.fromhex(str(msg["termsHash"])[2:]),
        )
        _check_terms(ledger, request, terms, wrapped_key)
    nonce = int(msg["nonce"])
    if nonce != ledger.chain.nonce("AccessLedger", owner):
        raise ReplayedNonce(f"grant nonce {nonce} is not the owner's current nonce")
    with ledger.db.transaction() as session:
        request = _pending(session, request_id)
        tx = ledger.chain.grant_for(
            terms,
            nonce=nonce,
            deadline=int(msg["deadline"]),
            signature=signed.signature,
            admin_approval=admin_approval,
        )
        generation = int(tx.event("AccessGranted").args["generation"])
        seq = flowlog.append(
            session,
            signed,
            dataset_id=terms.dataset_id,
            context={
                "tx": tx.tx_hash,
                "request_id": request_id,
                "generation": generation,
                "terms": terms_document(request_id, wrapped_key),
            },
        )
        grant = Grant(
            dataset_id=terms.dataset_id,
            grantee=terms.grantee,
            generation=generation,
            request_id=request_id,
            purpose_hash=terms.purpose_hash,
            terms_hash=terms.terms_hash,
            expires_at=terms.expires_at,
            max_uses=terms.max_uses,
            granted_tx=tx.tx_hash,
            log_seq=seq,
        )
        session.add(grant)
        session.add(
            WrappedKey(
                dataset_id=terms.dataset_id,
                recipient=terms.grantee,
                generation=generation,
                wrapped=wrapped_key,
            )
        )
        request.status = "approved"
        request.decided_log_seq = seq
        request.decided_at = dt.datetime.now(dt.UTC)
        session.add(request)
        session.flush()
        session.refresh(grant)
        session.expunge(grant)
    return grant


def _check_terms(
    ledger: Ledger, request: AccessRequest, terms: GrantTerms, wrapped_key: bytes
) -> None:
    """The signed grant must be what was requested, and commit to the wrapped key handed over."""
    problems = []
    if terms.dataset_id != request.dataset_id:
        problems.append("datasetId differs from the request")
    if terms.grantee != request.requester:
        problems.append("grantee is not the requester")
    if terms.max_uses != request.max_uses:
        problems.append("maxUses differs from the request")
    if terms.purpose_hash != purpose_hash(request.purpose):
        problems.append("purposeHash is not the request's purpose")
    if terms.terms_hash != terms_hash(int(request.id or 0), wrapped_key):
        problems.append("termsHash does not commit to this request and wrapped key")
    latest = ledger.now() + request.days * 86400 + 3600
    if not ledger.now() < terms.expires_at <= latest:
        problems.append("expiresAt is outside the requested duration")
    if problems:
        raise InvalidInput(
            "grant does not match the request: " + "; ".join(problems), code="grant_mismatch"
        )


def deny(ledger: Ledger, signed: SignedAction) -> AccessRequest:
    """Record the owner's signed refusal of a pending request."""
    owner = check_signed(ledger, signed, "deny")
    request_id = int(signed.message["requestId"])
    with ledger.db.transaction() as session:
        request = _pending(session, request_id)
        if dataset(session, request.dataset_id).owner != owner:
            raise Forbidden("only the dataset's owner denies its requests", code="not_owner")
        active_member(session, owner, role="owner")
        consume_nonce(session, signed)
        seq = flowlog.append(session, signed, dataset_id=request.dataset_id)
        request.status = "denied"
        request.reason = str(signed.message["reason"])[:2000]
        request.decided_log_seq = seq
        request.decided_at = dt.datetime.now(dt.UTC)
        session.add(request)
        session.flush()
        session.refresh(request)
        session.expunge(request)
    return request


def current_grant(session: Session, dataset_id: int, grantee: str) -> Grant | None:
    return session.exec(
        select(Grant)
        .where(Grant.dataset_id == dataset_id, Grant.grantee == grantee)
        .order_by(col(Grant.generation).desc())
    ).first()


def revoke(ledger: Ledger, signed: SignedAction) -> Grant:
    """Relay the owner-signed revocation of a grant."""
    owner = check_signed(ledger, signed, "revoke")
    msg = signed.message
    dataset_id, grantee = int(msg["datasetId"]), str(msg["grantee"])
    with ledger.db.session() as session:
        if dataset(session, dataset_id).owner != owner:
            raise Forbidden("only the dataset's owner revokes its grants", code="not_owner")
        grant = current_grant(session, dataset_id, grantee)
        if grant is None:
            raise NotFound(f"no grant of dataset {dataset_id} to {grantee}", code="grant_not_found")
        if grant.revoked:
            raise Conflict("grant already revoked", code="grant_revoked")
    nonce = int(msg["nonce"])
    if nonce != ledger.chain.nonce("AccessLedger", owner):
        raise ReplayedNonce(f"revoke nonce {nonce} is not the owner's current nonce")
    with ledger.db.transaction() as session:
        grant = current_grant(session, dataset_id, grantee)
        assert grant is not None
        tx = ledger.chain.revoke_for(
            dataset_id,
            grantee,
            nonce=nonce,
            deadline=int(msg["deadline"]),
            signature=signed.signature,
        )
        flowlog.append(
            session,
            signed,
            dataset_id=dataset_id,
            context={"tx": tx.tx_hash, "generation": grant.generation},
        )
        grant.revoked = True
        session.add(grant)
        session.flush()
        session.refresh(grant)
        session.expunge(grant)
    return grant

"""The owner's decisions on access requests: approve (grant), deny, revoke."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from eth_utils.address import to_checksum_address
from sqlmodel import Session, col, select

from ledger.chain.client import encode_approval
from ledger.chain.models import TxResult
from ledger.errors import (
    Conflict,
    InvalidInput,
    NotFound,
    ReplayedNonce,
)
from ledger.protocol.actions import SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.protocol.documents import RequestForm, purpose_hash, terms_document, terms_hash
from ledger.protocol.messages import GrantTerms, terms_of
from ledger.services import flowlog, policy
from ledger.services.context import (
    MAX_ROW_ID,
    Ledger,
    check_signed,
    consume_nonce,
    dataset,
)
from ledger.services.requests import owner_suspended
from ledger.store.models import AccessRequest, Grant, Member, WrappedKey


def _pending(session: Session, request_id: int, *, awaiting: bool = False) -> AccessRequest:
    """A request still to decide; with ``awaiting``, also one whose grant awaits co-signature
    (its owner may sign the grant again, e.g. when another grant used the nonce it named)."""
    request = session.get(AccessRequest, request_id) if 0 <= request_id <= MAX_ROW_ID else None
    if request is None:
        raise NotFound(f"no access request {request_id}", code=ErrorCode.REQUEST_NOT_FOUND)
    if request.status != "pending" and not (awaiting and request.status == "awaiting_approval"):
        raise Conflict(
            f"request {request_id} is already {request.status}", code=ErrorCode.REQUEST_DECIDED
        )
    return request


def needs_cosignature(session: Session, dataset_id: int, grantee: str) -> bool:
    """A SENSITIVE dataset granted to an enterprise needs the operator's GrantApproval."""
    target = dataset(session, dataset_id)
    requester = session.get(Member, grantee)
    return target.classification == "sensitive" and (
        requester is not None and requester.kind == "enterprise"
    )


def approve(
    ledger: Ledger,
    request_id: int,
    signed: SignedAction,
    *,
    wrapped_key: bytes,
    admin_approval: SignedAction | None = None,
) -> Grant | AccessRequest:
    """Relay the owner-signed grant for a pending request and store the wrapped key.

    A grant that needs the operator's co-signature and comes without one is kept with the
    request (``awaiting_approval``) until :func:`cosign`; nothing reaches the chain before.
    """
    owner = check_signed(ledger, signed, "grant")
    if not 0 < len(wrapped_key) <= 4096:
        raise InvalidInput("wrapped_key must be 1 to 4096 bytes")
    if admin_approval is not None:  # checked as /cosign checks it, before anything is relayed
        _check_approver(ledger, admin_approval)
        _check_approved_terms(admin_approval, signed)
    with ledger.db.session() as session:
        request = _pending(session, request_id, awaiting=True)
        target = dataset(session, request.dataset_id)
        policy.require_owner(owner, target.owner, "only the dataset's owner approves its requests")
        policy.standing(session, owner, operator=ledger.operator).require_member(label="owner")
        policy.standing(session, request.requester, operator=ledger.operator).require_member(
            label="requester"
        )
        terms = terms_of(signed.message)
        _check_terms(ledger, request, terms, wrapped_key)
        cosign_needed = needs_cosignature(session, request.dataset_id, request.requester)
    _check_owner_nonce(ledger, signed, owner)
    if cosign_needed and admin_approval is None:
        with ledger.db.transaction() as session:
            request = _pending(session, request_id, awaiting=True)
            request.status = "awaiting_approval"
            request.pending_grant_json = json.dumps(signed.to_json())
            request.pending_wrapped_key = wrapped_key
            session.add(request)
            session.flush()
            session.refresh(request)
            session.expunge(request)
        return request
    return _relay_grant(ledger, request_id, signed, terms, wrapped_key, admin_approval)


def cosign(ledger: Ledger, request_id: int, approval: SignedAction) -> Grant:
    """Relay a grant awaiting the operator's co-signature with its signed GrantApproval.

    AccessLedger checks the approval itself (ADMIN signer, deadline, the generation it creates,
    single use); the broker only checks that it names the terms the owner signed.
    """
    _check_approver(ledger, approval)
    with ledger.db.session() as session:
        request = _awaiting(session, request_id)
        signed = SignedAction.from_json(json.loads(request.pending_grant_json or "{}"))
        wrapped_key = bytes(request.pending_wrapped_key or b"")
        if not policy.standing(session, signed.actor, operator=ledger.operator).active:
            raise owner_suspended(request.dataset_id, signed.actor)
    terms = terms_of(signed.message)
    _check_approved_terms(approval, signed)
    return _relay_grant(ledger, request_id, signed, terms, wrapped_key, approval)


def _check_approver(ledger: Ledger, approval: SignedAction) -> None:
    """A GrantApproval, validly signed by the operator (the chain checks it holds ADMIN)."""
    signer = check_signed(ledger, approval, "approval")
    policy.require_operator(signer, ledger.operator, "only the operator co-signs grants")


def _check_approved_terms(approval: SignedAction, grant: SignedAction) -> None:
    """The approval names exactly the terms of the owner's signed ``grant``."""
    # Compared as values: an address or hex in any case names the same terms.
    if terms_of(approval.message) != terms_of(grant.message):
        raise InvalidInput(
            "the approval names other terms than the owner's grant",
            code=ErrorCode.GRANT_MISMATCH,
        )


def _check_owner_nonce(ledger: Ledger, signed: SignedAction, owner: str) -> None:
    nonce = int(signed.message["nonce"])
    if nonce != ledger.chain.nonce("AccessLedger", owner):
        raise ReplayedNonce(f"grant nonce {nonce} is not the owner's current nonce")


def _awaiting(session: Session, request_id: int) -> AccessRequest:
    request = session.get(AccessRequest, request_id) if 0 <= request_id <= MAX_ROW_ID else None
    if request is None:
        raise NotFound(f"no access request {request_id}", code=ErrorCode.REQUEST_NOT_FOUND)
    if request.status != "awaiting_approval":
        raise Conflict(
            f"request {request_id} is {request.status}, not awaiting approval",
            code=ErrorCode.REQUEST_DECIDED,
        )
    return request


def _relay_grant(
    ledger: Ledger,
    request_id: int,
    signed: SignedAction,
    terms: GrantTerms,
    wrapped_key: bytes,
    approval: SignedAction | None,
) -> Grant:
    msg = signed.message
    with ledger.db.transaction() as session:
        request = session.get(AccessRequest, request_id)
        if request is None or request.status not in ("pending", "awaiting_approval"):
            raise Conflict(
                f"request {request_id} is already decided", code=ErrorCode.REQUEST_DECIDED
            )
        if approval is not None:
            consume_nonce(session, approval)
        tx = ledger.chain.grant_for(
            terms,
            nonce=int(msg["nonce"]),
            deadline=int(msg["deadline"]),
            signature=signed.signature,
            admin_approval=b""
            if approval is None
            else encode_approval(
                int(approval.message["generation"]),
                int(approval.message["nonce"]),
                int(approval.message["deadline"]),
                approval.signature,
            ),
        )
        if approval is not None:
            flowlog.append(
                session,
                approval,
                dataset_id=terms.dataset_id,
                context={"tx": tx.tx_hash, "request_id": request_id},
            )
        grant = _record_grant(session, signed, terms, tx, wrapped_key, request)
        request.status = "approved"
        request.pending_grant_json = None
        request.pending_wrapped_key = None
        request.decided_log_seq = grant.log_seq
        request.decided_at = dt.datetime.now(dt.UTC)
        session.add(request)
        session.flush()
        session.refresh(grant)
        session.expunge(grant)
    return grant


def _record_grant(
    session: Session,
    signed: SignedAction,
    terms: GrantTerms,
    tx: TxResult,
    wrapped_key: bytes,
    request: AccessRequest,
    *,
    carried_from: int | None = None,
) -> Grant:
    """Log a relayed grant and keep its row and wrapped key (an approval's or a carried one's)."""
    request_id = int(request.id or 0)
    generation = int(tx.event("AccessGranted").args["generation"])
    context: dict[str, Any] = {
        "tx": tx.tx_hash,
        "request_id": request_id,
        "generation": generation,
        "terms": terms_document(request_id, wrapped_key, form_of(request)),
    }
    if carried_from is not None:
        context["carried_from"] = carried_from
    seq = flowlog.append(session, signed, dataset_id=terms.dataset_id, context=context)
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
    return grant


def form_of(request: AccessRequest) -> RequestForm:
    """The standard request form a request was made with."""
    return RequestForm(
        purpose_category=request.purpose_category,
        legal_basis=request.legal_basis,
        retention_days=request.retention_days,
        processing_location=request.processing_location,
    )


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
    if terms.terms_hash != terms_hash(int(request.id or 0), wrapped_key, form_of(request)):
        problems.append("termsHash does not commit to this request and wrapped key")
    latest = ledger.now() + request.days * 86400 + 3600
    if not ledger.now() < terms.expires_at <= latest:
        problems.append("expiresAt is outside the requested duration")
    if problems:
        raise InvalidInput(
            "grant does not match the request: " + "; ".join(problems),
            code=ErrorCode.GRANT_MISMATCH,
        )


def deny(ledger: Ledger, signed: SignedAction) -> AccessRequest:
    """Record the owner's signed refusal of a pending request."""
    owner = check_signed(ledger, signed, "deny")
    request_id = int(signed.message["requestId"])
    with ledger.db.transaction() as session:
        request = _pending(session, request_id)
        policy.require_owner(
            owner,
            dataset(session, request.dataset_id).owner,
            "only the dataset's owner denies its requests",
        )
        policy.standing(session, owner, operator=ledger.operator).require_member(label="owner")
        consume_nonce(session, signed)
        # The Deny names a request id only: the context says which signed request that is
        # (member-side warnings attribute the refusal to its requester through it).
        seq = flowlog.append(
            session,
            signed,
            dataset_id=request.dataset_id,
            context={
                "dataset_id": request.dataset_id,
                "request_id": request_id,
                "request_seq": request.log_seq,
            },
        )
        request.status = "denied"
        request.reason = str(signed.message["reason"])  # within MAX_REASON_CHARS (check_limits)
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
    # Stored checksummed; the signature covers the address's bytes, so any case verifies.
    dataset_id, grantee = int(msg["datasetId"]), to_checksum_address(str(msg["grantee"]))
    with ledger.db.session() as session:
        policy.require_owner(
            owner, dataset(session, dataset_id).owner, "only the dataset's owner revokes its grants"
        )
        grant = current_grant(session, dataset_id, grantee)
        if grant is None:
            raise NotFound(
                f"no grant of dataset {dataset_id} to {grantee}", code=ErrorCode.GRANT_NOT_FOUND
            )
        if grant.revoked:
            raise Conflict("grant already revoked", code=ErrorCode.GRANT_REVOKED)
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


def carry(ledger: Ledger, grant_id: int, signed: SignedAction, *, wrapped_key: bytes) -> Grant:
    """Relay the owner's grant of a dataset's next version to a live grantee of the previous one.

    The owner's policy on a new version: live grants carry over (this) or the grantees request
    again. A carried grant keeps the old one's terms exactly — same grantee, purpose and request
    form, the expiry and the uses left **as the chain holds them** — and commits to the new
    wrapped key; a grant that needed the operator's co-signature is not carried (the grantee
    requests the new version). Logged as a ``grant`` whose context names ``carried_from``.
    """
    owner = check_signed(ledger, signed, "grant")
    if not 0 < len(wrapped_key) <= 4096:
        raise InvalidInput("wrapped_key must be 1 to 4096 bytes")
    terms = terms_of(signed.message)
    with ledger.db.session() as session:
        old = session.get(Grant, grant_id) if 0 < grant_id <= MAX_ROW_ID else None
        if old is None:
            raise NotFound(f"no grant {grant_id}", code=ErrorCode.GRANT_NOT_FOUND)
        previous = dataset(session, old.dataset_id)
        target = dataset(session, terms.dataset_id)
        policy.require_owner(owner, previous.owner, "only the dataset's owner carries its grants")
        if target.previous_version != old.dataset_id or target.owner != previous.owner:
            raise InvalidInput(
                f"dataset {terms.dataset_id} is not the next version of dataset {old.dataset_id}",
                code=ErrorCode.NOT_NEXT_VERSION,
            )
        policy.standing(session, owner, operator=ledger.operator).require_member(label="owner")
        policy.standing(session, old.grantee, operator=ledger.operator).require_member(
            label="grantee"
        )
        if current_grant(session, target.id or 0, old.grantee) is not None:
            raise Conflict(
                f"{old.grantee} already holds a grant of dataset {target.id}",
                code=ErrorCode.ALREADY_GRANTED,
            )
        if needs_cosignature(session, target.id or 0, old.grantee):
            raise Conflict(
                f"a grant of SENSITIVE dataset {target.id} to {old.grantee} needs the operator's "
                "co-signature: the grantee requests the new version",
                code=ErrorCode.CARRY_NEEDS_APPROVAL,
            )
        request = session.get(AccessRequest, old.request_id) if old.request_id else None
        if request is None:
            raise Conflict(
                f"grant {grant_id} has no request to carry the terms of",
                code=ErrorCode.GRANT_NOT_LIVE,
            )
        session.expunge(request)
    live = ledger.chain.grant_of(old.dataset_id, old.grantee)
    if (
        live.revoked
        or live.generation != old.generation
        or live.expires_at <= ledger.now()
        or live.uses >= live.max_uses
    ):
        raise Conflict(
            f"grant {grant_id} is revoked, expired or used up on chain",
            code=ErrorCode.GRANT_NOT_LIVE,
        )
    _check_carried_terms(
        old, live.expires_at, live.max_uses - live.uses, request, terms, wrapped_key
    )
    _check_owner_nonce(ledger, signed, owner)
    return _relay_carried(ledger, old, request, signed, terms, wrapped_key)


def _check_carried_terms(
    old: Grant,
    expires_at: int,
    uses_left: int,
    request: AccessRequest,
    terms: GrantTerms,
    wrapped_key: bytes,
) -> None:
    problems = []
    if terms.grantee != old.grantee:
        problems.append("grantee is not the previous grant's")
    if terms.purpose_hash != old.purpose_hash:
        problems.append("purposeHash is not the previous grant's")
    if terms.expires_at != expires_at:
        problems.append(f"expiresAt is not the previous grant's ({expires_at})")
    if terms.max_uses != uses_left:
        problems.append(f"maxUses is not the uses left ({uses_left})")
    if terms.terms_hash != terms_hash(int(request.id or 0), wrapped_key, form_of(request)):
        problems.append("termsHash does not commit to the original request and this wrapped key")
    if problems:
        raise InvalidInput(
            "the carried grant does not keep the previous terms: " + "; ".join(problems),
            code=ErrorCode.GRANT_MISMATCH,
        )


def _relay_carried(
    ledger: Ledger,
    old: Grant,
    request: AccessRequest,
    signed: SignedAction,
    terms: GrantTerms,
    wrapped_key: bytes,
) -> Grant:
    msg = signed.message
    with ledger.db.transaction() as session:
        if current_grant(session, terms.dataset_id, terms.grantee) is not None:
            raise Conflict(
                f"{terms.grantee} already holds a grant of dataset {terms.dataset_id}",
                code=ErrorCode.ALREADY_GRANTED,
            )
        tx = ledger.chain.grant_for(
            terms,
            nonce=int(msg["nonce"]),
            deadline=int(msg["deadline"]),
            signature=signed.signature,
        )
        grant = _record_grant(session, signed, terms, tx, wrapped_key, request, carried_from=old.id)
        session.flush()
        session.refresh(grant)
        session.expunge(grant)
    return grant

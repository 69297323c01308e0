"""Access requests, the owner's decisions, and grants."""

from __future__ import annotations

from fastapi import APIRouter, Query, status
from sqlmodel import Session, col, or_, select

from api.auth import Caller
from api.deps import CallerDep, LedgerDep, PathId, QueryId
from api.errors import error_responses
from api.schemas import (
    ApproveIn,
    GrantPublic,
    GrantsPublic,
    RequestPublic,
    RequestsPublic,
    SignedBody,
    message_int,
)
from ledger.errors import Forbidden, InvalidInput, NotFound
from ledger.protocol.codes import ErrorCode
from ledger.services import access
from ledger.store.models import AccessRequest, Dataset, Grant

router = APIRouter(tags=["access"])


def _owned(session: Session, address: str) -> list[int]:
    return list(session.exec(select(Dataset.id).where(Dataset.owner == address)))


def _visible_request(session: Session, caller: Caller, request: AccessRequest) -> None:
    if caller.oversees or request.requester == caller.address:
        return
    if request.dataset_id in _owned(session, caller.address):
        return
    raise Forbidden(
        "only the requester, the owner, the operator and regulators see a request",
        code=ErrorCode.NOT_VISIBLE,
    )


@router.post(
    "/requests",
    response_model=RequestPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def create_request(body: SignedBody, caller: CallerDep, ledger: LedgerDep) -> RequestPublic:
    """Request access with a purpose, a duration and a number of uses (standard form)."""
    return RequestPublic.of(access.request_access(ledger, caller.own(body.signed)))


@router.get("/requests", response_model=RequestsPublic, responses=error_responses(401, 403, 422))
def list_requests(
    caller: CallerDep,
    ledger: LedgerDep,
    dataset_id: QueryId = None,
    request_status: str | None = Query(default=None, alias="status", max_length=16),
    limit: int = Query(default=200, ge=1, le=1000),
) -> RequestsPublic:
    """Requests the caller may see: its own, those to its datasets, or all for overseers."""
    caller.require_member()
    with ledger.db.session() as session:
        query = select(AccessRequest).order_by(col(AccessRequest.id))
        if not caller.oversees:
            owned = _owned(session, caller.address)
            query = query.where(
                or_(
                    col(AccessRequest.requester) == caller.address,
                    col(AccessRequest.dataset_id).in_(owned or [-1]),
                )
            )
        if dataset_id is not None:
            query = query.where(AccessRequest.dataset_id == dataset_id)
        if request_status is not None:
            query = query.where(AccessRequest.status == request_status)
        rows = list(session.exec(query.limit(limit)))
    return RequestsPublic(data=[RequestPublic.of(r) for r in rows], count=len(rows))


@router.get(
    "/requests/{request_id}",
    response_model=RequestPublic,
    responses=error_responses(401, 403, 404, 422),
)
def get_request(request_id: PathId, caller: CallerDep, ledger: LedgerDep) -> RequestPublic:
    """One request."""
    caller.require_member()
    with ledger.db.session() as session:
        request = session.get(AccessRequest, request_id)
        if request is None:
            raise NotFound(f"no access request {request_id}", code=ErrorCode.REQUEST_NOT_FOUND)
        _visible_request(session, caller, request)
    return RequestPublic.of(request)


@router.post(
    "/requests/{request_id}/approve",
    response_model=GrantPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def approve(
    request_id: PathId, body: ApproveIn, caller: CallerDep, ledger: LedgerDep
) -> GrantPublic:
    """The owner's signed Grant and the data key re-wrapped to the requester."""
    signed = caller.own(body.signed)
    grant = access.approve(
        ledger,
        request_id,
        signed,
        wrapped_key=bytes.fromhex(body.wrapped_key[2:]),
        admin_approval=bytes.fromhex(body.admin_approval[2:]),
    )
    return GrantPublic.of(grant)


@router.post(
    "/requests/{request_id}/deny",
    response_model=RequestPublic,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def deny(
    request_id: PathId, body: SignedBody, caller: CallerDep, ledger: LedgerDep
) -> RequestPublic:
    """The owner's signed refusal."""
    caller.require_writer()
    signed = body.signed.parse()
    if signed.actor != caller.address or message_int(signed, "requestId") != request_id:
        raise InvalidInput(
            "the signed deny names another caller or request", code=ErrorCode.DENY_MISMATCH
        )
    return RequestPublic.of(access.deny(ledger, signed))


@router.get("/grants", response_model=GrantsPublic, responses=error_responses(401, 403, 422))
def list_grants(
    caller: CallerDep,
    ledger: LedgerDep,
    dataset_id: QueryId = None,
    limit: int = Query(default=200, ge=1, le=1000),
) -> GrantsPublic:
    """Grants the caller may see: received, given on its datasets, or all for overseers."""
    caller.require_member()
    with ledger.db.session() as session:
        query = select(Grant).order_by(col(Grant.id))
        if not caller.oversees:
            owned = _owned(session, caller.address)
            query = query.where(
                or_(col(Grant.grantee) == caller.address, col(Grant.dataset_id).in_(owned or [-1]))
            )
        if dataset_id is not None:
            query = query.where(Grant.dataset_id == dataset_id)
        rows = list(session.exec(query.limit(limit)))
    return GrantsPublic(data=[GrantPublic.of(g) for g in rows], count=len(rows))


@router.post(
    "/grants/revoke",
    response_model=GrantPublic,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def revoke(body: SignedBody, caller: CallerDep, ledger: LedgerDep) -> GrantPublic:
    """The owner's signed revocation, relayed on chain."""
    return GrantPublic.of(access.revoke(ledger, caller.own(body.signed)))

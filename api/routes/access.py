"""Access requests, the owner's decisions, and grants."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, Query, Request, status

from api.auth import refusal_of
from api.coalesce import Coalescer
from api.deps import CallerDep, LedgerDep, Offset, PathId, PendingCallerDep, QueryId
from api.errors import error_responses
from api.schemas import message_int
from ledger.errors import InvalidInput, LedgerError
from ledger.protocol.actions import SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.protocol.wire import (
    ApproveIn,
    ApproveOut,
    CarryIn,
    GrantPublic,
    GrantsPublic,
    RequestPublic,
    RequestsPublic,
    SignedBody,
)
from ledger.services import access, catalog, requests
from ledger.services.admission import Admission, Claim
from ledger.services.context import Ledger
from ledger.services.requests import Checked

router = APIRouter(tags=["access"])


#: One access request for the batch: the claim of the HTTP request that carries it, the action
#: and what the checks that need no database made of it (a form, or a refusal).
Submitted = tuple[Claim, SignedAction, Checked]


@router.post(
    "/requests",
    response_model=RequestPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
async def create_request(
    body: SignedBody, request: Request, caller: PendingCallerDep
) -> RequestPublic:
    """Request access with a purpose, a duration and a number of uses (standard form).

    Concurrent requests are recorded together (one transaction, one durable commit), each
    with exactly the checks of a lone one; the transaction also uses each one's request nonce.
    """
    try:
        signed = caller.standing.own(body.signed)
    except LedgerError as refusal:
        raise await refusal_of(request, caller, refusal) from None
    ledger: Ledger = request.app.state.ledger
    # Checked here, before the batch: its transaction holds the turn to write and only records.
    (checked,) = requests.check_request_batch(ledger, [signed]).checked
    batcher: Coalescer[Submitted, requests.Recorded] = request.app.state.requests
    answer = await batcher.submit((caller.claim, signed, checked))
    if isinstance(answer, LedgerError):
        raise answer
    return catalog.request_public(answer.row())  # here, not in the batch: it holds the turn


def request_coalescer(
    ledger: Ledger, admission: Admission
) -> Coalescer[Submitted, requests.Recorded]:
    """What ``create_request`` submits to: many signed requests, one transaction."""

    def record(items: Sequence[Submitted]) -> list[requests.Recorded]:
        nonces = requests.RequestNonces(admission, [claim for claim, _, _ in items])
        batch = requests.CheckedBatch(
            [signed for _, signed, _ in items], [checked for _, _, checked in items]
        )
        return requests.record_each(ledger, batch, nonces)

    return Coalescer(record, name="drl-requests", turn=ledger.db.writer_turn)


@router.get("/requests", response_model=RequestsPublic, responses=error_responses(401, 403, 422))
def list_requests(
    caller: CallerDep,
    ledger: LedgerDep,
    dataset_id: QueryId = None,
    request_status: str | None = Query(default=None, alias="status", max_length=16),
    limit: int = Query(default=200, ge=1, le=1000),
    offset: Offset = 0,
) -> RequestsPublic:
    """Requests the caller may see: its own, those to its datasets, or all for overseers."""
    caller.require_member()
    return catalog.requests(
        ledger, caller, dataset_id=dataset_id, status=request_status, limit=limit, offset=offset
    )


@router.get(
    "/requests/{request_id}",
    response_model=RequestPublic,
    responses=error_responses(401, 403, 404, 422),
)
def get_request(request_id: PathId, caller: CallerDep, ledger: LedgerDep) -> RequestPublic:
    """One request."""
    caller.require_member()
    return catalog.request(ledger, caller, request_id)


@router.post(
    "/requests/{request_id}/approve",
    response_model=ApproveOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def approve(
    request_id: PathId, body: ApproveIn, caller: CallerDep, ledger: LedgerDep
) -> ApproveOut:
    """The owner's signed Grant and the data key re-wrapped to the requester.

    A SENSITIVE dataset granted to an enterprise needs the operator's signed GrantApproval:
    without one the grant waits (``awaiting_approval``) for ``/cosign``.
    """
    signed = caller.own(body.signed)
    outcome = access.approve(
        ledger,
        request_id,
        signed,
        wrapped_key=bytes.fromhex(body.wrapped_key[2:]),
        admin_approval=None if body.admin_approval is None else body.admin_approval.parse(),
    )
    return catalog.approve_out(ledger, request_id, outcome)


@router.post(
    "/requests/{request_id}/cosign",
    response_model=ApproveOut,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def cosign(
    request_id: PathId, body: SignedBody, caller: CallerDep, ledger: LedgerDep
) -> ApproveOut:
    """The operator's signed GrantApproval for a grant awaiting it; the grant is relayed."""
    caller.require("operator")
    grant = access.cosign(ledger, request_id, body.signed.parse())
    return catalog.approve_out(ledger, request_id, grant)


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
    return catalog.request_public(access.deny(ledger, signed))


@router.get("/grants", response_model=GrantsPublic, responses=error_responses(401, 403, 422))
def list_grants(
    caller: CallerDep,
    ledger: LedgerDep,
    dataset_id: QueryId = None,
    limit: int = Query(default=200, ge=1, le=1000),
    offset: Offset = 0,
) -> GrantsPublic:
    """Grants the caller may see: received, given on its datasets, or all for overseers."""
    caller.require_member()
    return catalog.grants(ledger, caller, dataset_id=dataset_id, limit=limit, offset=offset)


@router.post(
    "/grants/{grant_id}/carry",
    response_model=GrantPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def carry_grant(
    grant_id: PathId, body: CarryIn, caller: CallerDep, ledger: LedgerDep
) -> GrantPublic:
    """The owner carries a live grant over to the dataset's next version (same terms, the
    expiry and uses left the chain holds, a new wrapped key); logged with ``carried_from``."""
    signed = caller.own(body.signed)
    grant = access.carry(ledger, grant_id, signed, wrapped_key=bytes.fromhex(body.wrapped_key[2:]))
    return catalog.grant_public(grant)


@router.post(
    "/grants/revoke",
    response_model=GrantPublic,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def revoke(body: SignedBody, caller: CallerDep, ledger: LedgerDep) -> GrantPublic:
    """The owner's signed revocation, relayed on chain."""
    return catalog.grant_public(access.revoke(ledger, caller.own(body.signed)))

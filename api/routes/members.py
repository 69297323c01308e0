"""Members: onboarding, suspension, reinstatement (operator), key rotation (the member),
directory, nonces and credits."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from api.deps import CallerDep, LedgerDep, Offset, member_address
from api.errors import error_responses
from ledger.errors import InvalidInput
from ledger.protocol.actions import SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.protocol.wire import Credits, MemberPublic, MembersPublic, Nonces, SignedBody
from ledger.services import catalog, members

router = APIRouter(prefix="/members", tags=["members"])


@router.post(
    "",
    response_model=MemberPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 409, 422),
)
def onboard(body: SignedBody, caller: CallerDep, ledger: LedgerDep) -> MemberPublic:
    """Onboard a member (operator only): a signed Onboard action, relayed on chain."""
    caller.require("operator")
    return catalog.member_public(members.onboard(ledger, body.signed.parse()))


@router.get("", response_model=MembersPublic, responses=error_responses(401, 403))
def list_members(
    caller: CallerDep,
    ledger: LedgerDep,
    limit: int = Query(default=200, ge=1, le=1000),
    offset: Offset = 0,
) -> MembersPublic:
    """The member directory, a page at a time (any member may read it)."""
    caller.require_member()
    return catalog.members(ledger, limit=limit, offset=offset)


@router.get(
    "/{address}", response_model=MemberPublic, responses=error_responses(401, 403, 404, 422)
)
def get_member(address: str, caller: CallerDep, ledger: LedgerDep) -> MemberPublic:
    """One member, with its encryption public key (owners wrap data keys to it)."""
    caller.require_member()
    return catalog.member(ledger, member_address(address))


@router.post(
    "/{address}/suspend",
    response_model=MemberPublic,
    responses=error_responses(400, 401, 403, 409, 422),
)
def suspend(address: str, body: SignedBody, caller: CallerDep, ledger: LedgerDep) -> MemberPublic:
    """Suspend a member (operator only)."""
    caller.require("operator")
    return catalog.member_public(members.suspend(ledger, _naming(body, address)))


@router.post(
    "/{address}/reinstate",
    response_model=MemberPublic,
    responses=error_responses(400, 401, 403, 409, 422),
)
def reinstate(address: str, body: SignedBody, caller: CallerDep, ledger: LedgerDep) -> MemberPublic:
    """Lift a member's suspension (operator only)."""
    caller.require("operator")
    signed = _naming(body, address)
    return catalog.member_public(members.reinstate(ledger, signed))


@router.post(
    "/{address}/key",
    response_model=MemberPublic,
    responses=error_responses(400, 401, 403, 409, 422),
)
def rotate_key(
    address: str, body: SignedBody, caller: CallerDep, ledger: LedgerDep
) -> MemberPublic:
    """Replace the caller's own encryption key: its signed RotateKey, relayed on chain."""
    signed = caller.own(body.signed)
    if signed.actor != member_address(address):
        raise InvalidInput("a member rotates only its own key", code=ErrorCode.ADDRESS_MISMATCH)
    return catalog.member_public(members.rotate_key(ledger, signed))


def _naming(body: SignedBody, address: str) -> SignedAction:
    signed = body.signed.parse()
    if str(signed.message.get("member", "")).lower() != member_address(address).lower():
        raise InvalidInput(
            "the signed action names another member", code=ErrorCode.ADDRESS_MISMATCH
        )
    return signed


@router.get("/{address}/nonces", response_model=Nonces, responses=error_responses(401, 403, 422))
def nonces(address: str, caller: CallerDep, ledger: LedgerDep) -> Nonces:
    """The member's next on-chain EIP-712 nonces (for Register, Grant and Revoke)."""
    caller.require_member()
    return members.nonces(ledger, member_address(address))


@router.get("/{address}/credits", response_model=Credits, responses=error_responses(401, 403, 422))
def credits(address: str, caller: CallerDep, ledger: LedgerDep) -> Credits:
    """Sharing credits held on chain."""
    caller.require_member()
    return members.credits(ledger, member_address(address))

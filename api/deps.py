"""Dependencies shared by the routes: the broker core and the authenticated caller."""

from __future__ import annotations

import hashlib
from typing import Annotated

from eth_utils.address import is_address, to_checksum_address
from fastapi import Depends, Path, Query, Request, Security

from api.auth import PendingCaller, authenticate, authenticate_pending, signature_scheme
from api.transfers import Transfers
from ledger.errors import InvalidInput
from ledger.protocol.codes import ErrorCode
from ledger.services.anchoring import Anchorer
from ledger.services.context import MAX_ROW_ID, Ledger
from ledger.services.policy import Standing


# The getters are ``async``: FastAPI runs a plain ``def`` dependency on the thread pool, a hop
# to a worker thread and back for every request just to read an attribute.
async def get_ledger(request: Request) -> Ledger:
    return _ledger(request)


LedgerDep = Annotated[Ledger, Depends(get_ledger)]


async def get_anchorer(request: Request) -> Anchorer:
    anchorer: Anchorer = request.app.state.anchorer
    return anchorer


AnchorerDep = Annotated[Anchorer, Depends(get_anchorer)]


async def get_transfers(request: Request) -> Transfers:
    transfers: Transfers = request.app.state.transfers
    return transfers


TransfersDep = Annotated[Transfers, Depends(get_transfers)]


def _ledger(request: Request) -> Ledger:
    """The broker core, read directly by the callers' getters: every signed request resolves
    one of them, and each dependency FastAPI resolves costs it tens of microseconds."""
    ledger: Ledger = request.app.state.ledger
    return ledger


async def _body_sha256(request: Request) -> str:
    """The hex SHA-256 of the (size-limited) body, which the request signature covers."""
    return hashlib.sha256(await request.body()).hexdigest()


async def get_caller(
    request: Request,
    _signature: Annotated[str | None, Security(signature_scheme)] = None,
) -> Standing:
    """The caller, proven by the request signature over the (size-limited) body."""
    return await authenticate(request, _ledger(request), body_sha256=await _body_sha256(request))


async def get_reader(
    request: Request,
    _signature: Annotated[str | None, Security(signature_scheme)] = None,
) -> Standing:
    """As :func:`get_caller`, for a POST that changes nothing: it spends none of the write rate."""
    body_sha256 = await _body_sha256(request)
    return await authenticate(request, _ledger(request), body_sha256=body_sha256, reads_only=True)


async def get_pending_caller(
    request: Request,
    _signature: Annotated[str | None, Security(signature_scheme)] = None,
) -> PendingCaller:
    """As :func:`get_caller`, for a write that uses the request nonce in its own transaction."""
    body_sha256 = await _body_sha256(request)
    return await authenticate_pending(request, _ledger(request), body_sha256=body_sha256)


async def get_stream_caller(
    request: Request,
    _signature: Annotated[str | None, Security(signature_scheme)] = None,
) -> Standing:
    """For streamed uploads: the declared body hash is checked by the blob store instead."""
    return await authenticate(request, _ledger(request), body_sha256=None)


def member_address(value: str) -> str:
    """A path's address, checksummed; anything else is 422 ``bad_address``."""
    if not is_address(value):
        raise InvalidInput(f"{value!r} is not an address", code=ErrorCode.BAD_ADDRESS)
    return str(to_checksum_address(value))


#: The largest integer the database holds (a signed 64-bit column); larger ids never exist, and
#: passing one to SQLite raises OverflowError, so they are refused as invalid input (422).
DB_INT_MAX = MAX_ROW_ID
PathId = Annotated[int, Path(ge=0, le=DB_INT_MAX)]
QueryId = Annotated[int | None, Query(ge=0, le=DB_INT_MAX)]
#: Paging: ``offset`` into a list, or ``after`` a flow-log sequence number (-1: from the start).
Offset = Annotated[int, Query(ge=0, le=DB_INT_MAX)]
After = Annotated[int, Query(ge=-1, le=DB_INT_MAX)]

#: The caller's standing; the rules it is held to are ``ledger.services.policy``'s.
CallerDep = Annotated[Standing, Depends(get_caller)]
ReaderDep = Annotated[Standing, Depends(get_reader)]
StreamCallerDep = Annotated[Standing, Depends(get_stream_caller)]
PendingCallerDep = Annotated[PendingCaller, Depends(get_pending_caller)]

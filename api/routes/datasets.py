"""Datasets: catalog, detail, the two-step streamed upload, the owner's key, and fetch."""

from __future__ import annotations

import json
from functools import partial

import anyio
import anyio.to_thread
from fastapi import APIRouter, Query, Request, status
from fastapi.responses import Response, StreamingResponse

from api.deps import CallerDep, LedgerDep, Offset, PathId, StreamCallerDep, TransfersDep
from api.errors import error_responses
from api.schemas import message_int
from api.streaming import blob_stream, consume_stream
from api.transfers import RENEW_FRACTION, Pace, PacedDownload, upload_lease_seconds
from ledger.errors import InvalidInput
from ledger.protocol import http as auth
from ledger.protocol.codes import ErrorCode
from ledger.protocol.wire import (
    DatasetPublic,
    DatasetsPublic,
    ReassignIn,
    SignedBody,
    UploadIn,
    UploadIntentPublic,
    WrappedKeyPublic,
    hx,
)
from ledger.services import catalog as index  # the routes' names are the operation ids
from ledger.services import datasets, disputes, exchange

router = APIRouter(prefix="/datasets", tags=["datasets"])


@router.get("", response_model=DatasetsPublic, responses=error_responses(401, 403, 422))
async def catalog(
    caller: CallerDep,
    ledger: LedgerDep,
    owner: str | None = Query(default=None, max_length=42),
    limit: int = Query(default=100, ge=1, le=1000),
    offset: Offset = 0,
) -> Response:
    """The catalog: every registered dataset's certificate and metadata (never contents).

    The busiest read: one indexed query through the driver, run on the event loop (a hop to a
    worker thread and back cost more than the query itself under load), answered with rows
    rendered once (``DatasetsPublic`` exactly, as the response model says).
    """
    caller.require_member()
    page = index.datasets_json(ledger, owner=owner, limit=limit, offset=offset)
    return Response(page, media_type="application/json")


@router.get(
    "/{dataset_id}", response_model=DatasetPublic, responses=error_responses(401, 403, 404, 422)
)
def detail(dataset_id: PathId, caller: CallerDep, ledger: LedgerDep) -> DatasetPublic:
    """One dataset's certificate, metadata and schema."""
    caller.require_member()
    return index.dataset_detail(ledger, dataset_id)


@router.post(
    "/uploads",
    response_model=UploadIntentPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 409, 422),
)
def begin_upload(body: UploadIn, caller: CallerDep, ledger: LedgerDep) -> UploadIntentPublic:
    """Step 1: the signed Register action, its metadata and the owner's wrapped key."""
    signed = caller.own(body.signed, code=ErrorCode.NOT_OWNER)
    intent = datasets.begin_upload(
        ledger,
        signed,
        metadata=body.metadata,
        owner_wrapped_key=bytes.fromhex(body.owner_wrapped_key[2:]),
    )
    return UploadIntentPublic(
        upload_id=intent.id,
        expires_at=intent.expires_at,
        upload_url=f"/v1/datasets/uploads/{intent.id}",
    )


@router.put(
    "/uploads/{upload_id}",
    response_model=DatasetPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(401, 403, 404, 409, 413, 422),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        }
    },
)
async def complete_upload(
    upload_id: str,
    request: Request,
    caller: StreamCallerDep,
    ledger: LedgerDep,
    transfers: TransfersDep,
) -> DatasetPublic:
    """Step 2: stream the ciphertext; it must hash to the digest the owner signed.

    One upload runs per intent (on any replica), within the member's transfer slots, paced
    (a stalled or too slow body ends with 408 ``transfer_stalled``).
    """
    caller.require_writer()
    declared = auth.content_length(request.headers.get("content-length"))
    if declared is not None and not 0 <= declared <= ledger.max_upload_bytes:
        raise InvalidInput("upload larger than the broker accepts", code=ErrorCode.UPLOAD_TOO_LARGE)
    release = transfers.acquire(caller.address)
    try:
        lease = upload_lease_seconds(transfers.limits)
        claim = [
            await anyio.to_thread.run_sync(
                partial(
                    datasets.claim_upload, ledger, upload_id, caller.address, lease_seconds=lease
                )
            )
        ]

        def renew() -> None:
            claim[0] = datasets.renew_upload(ledger, upload_id, claim[0], lease_seconds=lease)

        try:
            row = await consume_stream(
                request,
                lambda reader: datasets.complete_upload(
                    ledger,
                    upload_id,
                    reader,
                    uploader=caller.address,
                    declared_sha256=request.headers.get(auth.H_BODY, ""),
                ),
                pace=Pace(transfers.limits),
                limiter=transfers.limiter,
                heartbeat=renew,
                heartbeat_every=lease / RENEW_FRACTION,
            )
        finally:
            await anyio.to_thread.run_sync(datasets.release_upload, ledger, upload_id, claim[0])
    finally:
        release()
    return index.dataset_public(row)


@router.get(
    "/{dataset_id}/owner-key",
    response_model=WrappedKeyPublic,
    responses=error_responses(401, 403, 404, 422),
)
def owner_key(dataset_id: PathId, caller: CallerDep, ledger: LedgerDep) -> WrappedKeyPublic:
    """The data key wrapped to its owner (the owner's client re-wraps it on approval)."""
    caller.require_writer()
    return index.owner_key(ledger, caller, dataset_id)


@router.post(
    "/{dataset_id}/reassign",
    response_model=DatasetPublic,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def reassign(
    dataset_id: PathId, body: ReassignIn, caller: CallerDep, ledger: LedgerDep
) -> DatasetPublic:
    """The dispute path (operator): move a certificate, with a signed and logged reason."""
    caller.require("operator")
    signed = body.signed.parse()
    if message_int(signed, "datasetId") != dataset_id:
        raise InvalidInput(
            "the signed Reassign names another dataset", code=ErrorCode.ADDRESS_MISMATCH
        )
    return index.dataset_public(disputes.reassign(ledger, signed, reason=body.reason))


@router.post(
    "/{dataset_id}/fetch",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "The ciphertext; the wrapped key and hashes are in X-DRL-* headers",
            "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
            },
        },
        **error_responses(400, 401, 403, 404, 409, 422),
    },
)
def fetch(
    dataset_id: PathId,
    body: SignedBody,
    caller: CallerDep,
    ledger: LedgerDep,
    transfers: TransfersDep,
) -> StreamingResponse:
    """Download under a usable grant: one use is recorded on chain before any byte flows.

    The download takes one of the member's transfer slots before the use is recorded, and a
    client that stops reading is cut off (see ``api.transfers``). A suspended member's fetch
    goes on to the service, which logs the attempt as refused (docs/protocol.md §11.12): the
    log, and the early warnings read from it, show fetches tried during a suspension.
    """
    caller.require_fetcher()
    signed = body.signed.parse()
    if signed.actor != caller.address or message_int(signed, "datasetId") != dataset_id:
        raise InvalidInput(
            "the signed fetch names another caller or dataset", code=ErrorCode.FETCH_MISMATCH
        )
    release = transfers.acquire(caller.address)
    try:
        fetched = exchange.fetch(ledger, signed)
    except BaseException:
        release()
        raise
    d = fetched.dataset
    headers = {
        auth.H_WRAPPED_KEY: hx(fetched.wrapped_key),
        auth.H_GENERATION: str(fetched.generation),
        auth.H_CONTENT_HASH: hx(d.content_hash),
        auth.H_CIPHERTEXT_SHA256: hx(d.ciphertext_sha256),
        auth.H_USES_LEFT: str(fetched.uses_left),
        auth.H_LOG_SEQ: str(fetched.log_seq),
        "Content-Length": str(d.ciphertext_size),
        auth.H_METADATA: json.dumps({"title": d.title}),
    }
    return PacedDownload(
        blob_stream(partial(ledger.blobs.open, d.ciphertext_sha256)),
        pace=Pace(transfers.limits),
        release=release,
        headers=headers,
    )

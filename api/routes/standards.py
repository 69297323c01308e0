"""The catalog in the description standards: DCAT-AP 3.0 as JSON-LD."""

from __future__ import annotations

import json

from fastapi import APIRouter, Query, Request, Response

from api.deps import CallerDep, LedgerDep, Offset
from api.errors import error_responses
from ledger.services import describe

router = APIRouter(tags=["standards"])

JSON_LD = "application/ld+json"


@router.get(
    "/catalog.jsonld",
    response_class=Response,
    responses={
        200: {"content": {JSON_LD: {}}, "description": "A DCAT-AP 3.0 dcat:Catalog"},
        **error_responses(401, 403, 422),
    },
)
def catalog_jsonld(
    request: Request,
    caller: CallerDep,
    ledger: LedgerDep,
    owner: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
    offset: Offset = 0,
) -> Response:
    """The catalog (what ``GET /v1/datasets`` lists) described in DCAT-AP 3.0, as JSON-LD.

    A page of ``limit`` datasets from ``offset``; a ``Link: <…>; rel="next"`` header names the
    next page.
    """
    caller.require_member()
    base = str(request.base_url).rstrip("/")
    document, after = describe.catalog_jsonld(
        ledger, base=base, owner=owner, limit=limit, offset=offset
    )
    headers = {}
    if after is not None:
        headers["link"] = f'</v1/catalog.jsonld?limit={limit}&offset={after}>; rel="next"'
    return Response(json.dumps(document), media_type=JSON_LD, headers=headers)

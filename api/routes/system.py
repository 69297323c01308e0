"""Health and the public configuration clients need to sign."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.deps import AnchorerDep, LedgerDep
from ledger.protocol.wire import Config, Health
from ledger.services import system

router = APIRouter(tags=["system"])


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "A part is down (`code` says which)"}},
)
def health(ledger: LedgerDep, anchorer: AnchorerDep, response: Response) -> Health:
    """Database, chain and blob store, each checked; 503 with the failing part's code."""
    result = system.health(ledger, anchorer)
    if result.status != "ok":
        response.status_code = 503
    return result


@router.get("/config", response_model=Config)
async def config(request: Request, ledger: LedgerDep) -> Response:
    """Chain id, contracts, every EIP-712 domain and action type, and the protocol's limits.

    Fixed for the deployment's lifetime: built once, then served as is (no worker thread).
    """
    cached: bytes | None = getattr(request.app.state, "config_json", None)
    if cached is None:
        cached = system.config(ledger).model_dump_json().encode()
        request.app.state.config_json = cached
    return Response(cached, media_type="application/json")

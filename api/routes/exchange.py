"""Delivery receipts and quality ratings."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import CallerDep, LedgerDep
from api.errors import error_responses
from ledger.protocol.wire import DeliveryPublic, RatingPublic, SignedBody
from ledger.services import catalog, exchange

router = APIRouter(tags=["exchange"])


@router.post(
    "/receipts",
    response_model=DeliveryPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def receipt(body: SignedBody, caller: CallerDep, ledger: LedgerDep) -> DeliveryPublic:
    """The consumer's signed receipt naming the content hash it verified; earns credits."""
    return catalog.delivery_public(exchange.acknowledge(ledger, caller.own(body.signed)))


@router.post(
    "/ratings",
    response_model=RatingPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def rate(body: SignedBody, caller: CallerDep, ledger: LedgerDep) -> RatingPublic:
    """A signed quality rating (1-5) by a member that received the dataset."""
    return catalog.rating_public(exchange.rate(ledger, caller.own(body.signed)))

"""Delivery receipts and quality ratings."""

from __future__ import annotations

from fastapi import APIRouter, status

from api.deps import CallerDep, LedgerDep
from api.errors import error_responses
from api.schemas import DeliveryPublic, RatingPublic, SignedBody
from ledger.services import exchange

router = APIRouter(tags=["exchange"])


@router.post(
    "/receipts",
    response_model=DeliveryPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def receipt(body: SignedBody, caller: CallerDep, ledger: LedgerDep) -> DeliveryPublic:
    """The consumer's signed receipt naming the content hash it verified; earns credits."""
    return DeliveryPublic.of(exchange.acknowledge(ledger, caller.own(body.signed)))


@router.post(
    "/ratings",
    response_model=RatingPublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def rate(body: SignedBody, caller: CallerDep, ledger: LedgerDep) -> RatingPublic:
    """A signed quality rating (1-5) by a member that received the dataset."""
    r = exchange.rate(ledger, caller.own(body.signed))
    return RatingPublic(
        id=int(r.id or 0),
        dataset_id=r.dataset_id,
        rater=r.rater,
        score=r.score,
        comment=r.comment,
        log_seq=r.log_seq,
    )

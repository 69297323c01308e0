"""Quality issues: filed by consumers that received a dataset, answered by its owner."""

from __future__ import annotations

from fastapi import APIRouter, Query, status

from api.deps import CallerDep, LedgerDep, Offset, PathId, QueryId
from api.errors import error_responses
from ledger.protocol.wire import IssuePublic, IssuesPublic, QualityScorePublic, SignedBody
from ledger.services import issues

router = APIRouter(tags=["issues"])


@router.post(
    "/issues",
    response_model=IssuePublic,
    status_code=status.HTTP_201_CREATED,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def file_issue(body: SignedBody, caller: CallerDep, ledger: LedgerDep) -> IssuePublic:
    """A signed quality issue (which fields or rows, what is wrong) by a member that received
    the dataset."""
    return issues.issue_public(issues.file_issue(ledger, caller.own(body.signed)))


@router.get("/issues", response_model=IssuesPublic, responses=error_responses(401, 403, 422))
def list_issues(
    caller: CallerDep,
    ledger: LedgerDep,
    dataset_id: QueryId = None,
    issue_status: str | None = Query(default=None, alias="status", max_length=16),
    limit: int = Query(default=200, ge=1, le=1000),
    offset: Offset = 0,
) -> IssuesPublic:
    """Issues the caller may see: those it filed, those about its datasets, or all for
    overseers."""
    caller.require_member()
    return issues.issues(
        ledger, caller, dataset_id=dataset_id, status=issue_status, limit=limit, offset=offset
    )


@router.post(
    "/issues/{issue_id}/answer",
    response_model=IssuePublic,
    responses=error_responses(400, 401, 403, 404, 409, 422),
)
def answer_issue(
    issue_id: PathId, body: SignedBody, caller: CallerDep, ledger: LedgerDep
) -> IssuePublic:
    """The owner's signed answer: acknowledged, fixed in a later version, or rejected with a
    reason."""
    return issues.issue_public(issues.answer_issue(ledger, issue_id, caller.own(body.signed)))


@router.get(
    "/datasets/{dataset_id}/quality",
    response_model=QualityScorePublic,
    responses=error_responses(401, 403, 404, 422),
)
def quality(
    dataset_id: PathId,
    caller: CallerDep,
    ledger: LedgerDep,
    as_of: int | None = Query(default=None, ge=0, le=2**40),
) -> QualityScorePublic:
    """The dataset's quality score (validation, freshness, issues), computed from signed,
    logged records as of now (or as of ``as_of``, unix seconds, to see when a freshness
    promise lapses); members recompute it from what they verified."""
    caller.require_member()
    return issues.quality(ledger, dataset_id, as_of=as_of)

"""Quality issues: a consumer files a signed issue about a dataset it received, the owner
answers with a signed verdict (acknowledged, fixed in version N, rejected with a reason).

Both are broker actions, logged like every signed action, so the quality score that reads them
(``ledger.scoring``) can be recomputed by members and regulators from the log alone. Open and
answered issues are visible to the reporter, the dataset's owner and the overseers.
"""

from __future__ import annotations

import datetime as dt

from sqlmodel import Session, col, select

from ledger.errors import Conflict, Forbidden, IntegrityAlarm, InvalidInput, NotFound
from ledger.protocol.actions import SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.protocol.wire import IssuePublic, IssuesPublic, QualityScorePublic
from ledger.scoring import SCORED_ACTIONS, credit_quality, score_of
from ledger.services import flowlog, policy
from ledger.services.catalog import _public, newer_versions, visible_page
from ledger.services.context import Ledger, check_signed, consume_nonce, dataset
from ledger.services.policy import Standing
from ledger.store.models import Dataset, Delivery, LogRecord, QualityIssue


def issue_public(row: QualityIssue) -> IssuePublic:
    return _public(IssuePublic, row)


def file_issue(ledger: Ledger, signed: SignedAction) -> QualityIssue:
    """Record a signed quality issue from a member that received the dataset."""
    reporter = check_signed(ledger, signed, "issue")
    msg = signed.message
    dataset_id = int(msg["datasetId"])
    with ledger.db.transaction() as session:
        policy.standing(session, reporter, operator=ledger.operator).require_writer()
        dataset(session, dataset_id)
        received = session.exec(
            select(col(Delivery.id)).where(
                Delivery.dataset_id == dataset_id, Delivery.consumer == reporter
            )
        ).first()
        if received is None:
            raise Forbidden(
                "only members that received the dataset file quality issues about it",
                code=ErrorCode.NOT_A_RECIPIENT,
            )
        consume_nonce(session, signed)
        row = QualityIssue(
            dataset_id=dataset_id,
            reporter=reporter,
            fields=str(msg["fields"]),
            rows=str(msg["rows"]),
            problem=str(msg["problem"]).strip(),
            log_seq=-1,
        )
        session.add(row)
        session.flush()  # the issue's id, which its record names (answers sign it)
        row.log_seq = flowlog.append(
            session, signed, dataset_id=dataset_id, context={"issue_id": row.id}
        )
        session.add(row)
        session.flush()
        session.refresh(row)
        session.expunge(row)
    return row


def _is_later_version(session: Session, later: int, earlier: int, owner: str) -> bool:
    """Whether ``later`` descends from ``earlier`` through previousVersion, same owner."""
    seen: set[int] = set()
    current: int | None = later
    while current and current not in seen:
        seen.add(current)
        row = session.get(Dataset, current)
        if row is None or row.owner != owner:
            return False
        if row.previous_version == earlier:
            return True
        current = row.previous_version
    return False


def answer_issue(ledger: Ledger, issue_id: int, signed: SignedAction) -> QualityIssue:
    """Record the owner's signed answer to an open issue."""
    owner = check_signed(ledger, signed, "answer")
    msg = signed.message
    if int(msg["issueId"]) != issue_id:
        raise InvalidInput(
            f"the signed answer names issue {msg['issueId']}, not {issue_id}",
            code=ErrorCode.ANSWER_MISMATCH,
        )
    with ledger.db.transaction() as session:
        policy.standing(session, owner, operator=ledger.operator).require_writer()
        row = session.get(QualityIssue, issue_id, with_for_update=True)
        if row is None:
            raise NotFound(f"no quality issue {issue_id}", code=ErrorCode.ISSUE_NOT_FOUND)
        target = dataset(session, row.dataset_id)
        policy.require_owner(owner, target.owner, "only the dataset's owner answers its issues")
        if row.status != "open":
            raise Conflict(
                f"issue {issue_id} is already {row.status}", code=ErrorCode.ISSUE_ANSWERED
            )
        verdict, fixed_in = str(msg["verdict"]), int(msg["fixedIn"])
        if verdict == "fixed" and not _is_later_version(
            session, fixed_in, row.dataset_id, target.owner
        ):
            raise InvalidInput(
                f"dataset {fixed_in} is not a later version of dataset {row.dataset_id}",
                code=ErrorCode.NOT_A_LATER_VERSION,
            )
        consume_nonce(session, signed)
        seq = flowlog.append(
            session, signed, dataset_id=row.dataset_id, context={"dataset_id": row.dataset_id}
        )
        row.status = verdict
        row.fixed_in = fixed_in or None
        row.reason = str(msg["reason"]).strip() or None
        row.answer_log_seq = seq
        row.answered_at = dt.datetime.now(dt.UTC)
        session.add(row)
        session.flush()
        session.refresh(row)
        session.expunge(row)
    return row


def issues(
    ledger: Ledger,
    viewer: Standing,
    *,
    dataset_id: int | None = None,
    status: str | None = None,
    limit: int = 200,
    offset: int = 0,
) -> IssuesPublic:
    """The issues ``viewer`` may see: those it filed, those about its datasets, or all for
    overseers."""
    rows, after = visible_page(
        ledger,
        viewer,
        QualityIssue,
        party="reporter",
        dataset_id=dataset_id,
        status=status,
        limit=limit,
        offset=offset,
    )
    return IssuesPublic(data=[issue_public(r) for r in rows], count=len(rows), next=after)


def quality(ledger: Ledger, dataset_id: int, *, as_of: int | None = None) -> QualityScorePublic:
    """The dataset's quality score from its log records (and its next version's registration)."""
    when = ledger.now() if as_of is None else as_of
    with ledger.db.session() as session:
        dataset(session, dataset_id)
        leaves = scoring_leaves(session, dataset_id)
    computed = score_of(leaves, dataset_id, as_of=when)
    if computed is None:  # an index row without its registration record: an alarm elsewhere
        raise NotFound(f"no registration record of dataset {dataset_id}")
    return QualityScorePublic(**computed.to_json())


def scoring_leaves(session: Session, dataset_id: int) -> list[bytes]:
    """The records the score reads: the dataset's own and its next version's registration."""
    own = flowlog.records(session, dataset_id=dataset_id, actions=SCORED_ACTIONS)
    leaves = [r.leaf for r in own]
    newer = newer_versions(session, [dataset_id]).get(dataset_id)
    if newer is not None:
        later = flowlog.records(session, dataset_id=newer, actions=["register"])
        leaves += [r.leaf for r in later]
    return leaves


def receipt_qualities(session: Session, deliveries: list[Delivery]) -> dict[int, int]:
    """The quality each delivery's credit is weighted by (``ledger.scoring.credit_quality``),
    by delivery id; each dataset's records are read once for the whole batch."""
    leaves: dict[int, list[bytes]] = {}
    out: dict[int, int] = {}
    for d in deliveries:
        receipt = session.get(LogRecord, d.log_seq)
        if receipt is None:
            raise IntegrityAlarm(f"delivery {d.id} names log record {d.log_seq}, missing")
        if d.dataset_id not in leaves:
            leaves[d.dataset_id] = scoring_leaves(session, d.dataset_id)
        out[int(d.id or 0)] = credit_quality(
            leaves[d.dataset_id], d.dataset_id, receipt=receipt.leaf
        )
    return out

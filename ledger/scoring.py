"""The per-dataset quality score, computed from signed, logged records only.

Everything that feeds the formula is a flow-log record: the owner's ``register`` record (its
metadata document, bound to the signed ``metadataHash``, carries the frictionless summary and
the promised update frequency), the ``register`` record of the next version (when the promise
was kept), and the consumers' ``issue`` and owners' ``answer`` records. The broker serves the
score with the time it was computed for (``as_of``); a member or regulator recomputes it from
the records its own ``drl verify`` checked (``drl dataset show``), so the broker's figure is
never taken on its word. docs/standards.md gives the formula:

    score = round(100 × V × F × I)

- V, validation: 1 − min(1, errors / rows) from the signed summary (0 if validation stopped
  at its error limit, 0.5 if the document carries no summary);
- F, freshness: 1 without a promise (or ``IRREG``/``NEVER``/``UNKNOWN``) or while the version
  is within its promised period (+10 % grace); 0.5 once the promise lapsed — measured until
  the next version was registered, or until ``as_of`` for the latest;
- I, issues: max(0, 1 − 0.15 × acknowledged − 0.05 × fixed − 0.10 × open for more than 14
  days); rejected issues and recent open ones cost nothing.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Final

from ledger.protocol.labels import frequency_days

#: The actions the score reads; a dataset's other records (fetches, receipts, grants) do not
#: count, so callers need not load them.
SCORED_ACTIONS: Final = ("register", "issue", "answer")
GRACE: Final = 1.1
LAPSED: Final = 0.5
NO_SUMMARY: Final = 0.5
OVERDUE_DAYS: Final = 14
ISSUE_WEIGHTS: Final[dict[str, float]] = {"acknowledged": 0.15, "fixed": 0.05, "overdue": 0.10}


@dataclass(frozen=True)
class Score:
    """A dataset's score and its three factors, with the counts they came from."""

    dataset_id: int
    score: int
    validation: float
    freshness: float
    issues: float
    as_of: int
    lapsed: bool
    counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _when(at: str) -> float:
    return dt.datetime.fromisoformat(at).timestamp()  # Python 3.11 reads a trailing "Z" too


def score_of(
    leaves: Iterable[bytes], dataset_id: int, *, as_of: int, before: int | None = None
) -> Score | None:
    """The score of ``dataset_id`` from raw log records (canonical JSON leaves).

    ``leaves`` must hold the dataset's own records and the ``register`` record of its next
    version if any; other records, and those at or after sequence number ``before``, are
    ignored. ``None`` if its registration is not among them.
    """
    registered: float | None = None
    metadata: dict[str, Any] = {}
    superseded: float | None = None
    filed: dict[int, float] = {}  # issue id -> when filed
    answered: dict[int, str] = {}  # issue id -> verdict
    for leaf in leaves:
        doc = json.loads(leaf)
        if before is not None and int(doc["seq"]) >= before:
            continue
        signed, context, at = doc["signed"], doc.get("context") or {}, str(doc["at"])
        action, msg = signed["action"], signed["message"]
        if action == "register":
            if context.get("dataset_id") == dataset_id:
                registered = _when(at)
                metadata = dict(context.get("metadata") or {})
            elif int(msg.get("previousVersion", 0)) == dataset_id:
                superseded = _when(at)
        elif action == "issue" and int(msg.get("datasetId", -1)) == dataset_id:
            issue_id = context.get("issue_id")
            if isinstance(issue_id, int):
                filed[issue_id] = _when(at)
        elif action == "answer" and context.get("dataset_id") == dataset_id:
            answered[int(msg["issueId"])] = str(msg["verdict"])
    if registered is None:
        return None
    quality = metadata.get("quality") or {}
    rows, errors = quality.get("rows"), quality.get("errors")
    if not isinstance(rows, int) or not isinstance(errors, int):
        validation = NO_SUMMARY
    elif quality.get("truncated"):
        validation = 0.0
    else:
        validation = 1 - min(1.0, errors / max(rows, 1))
    promised = frequency_days(metadata.get("update_frequency"))
    until = superseded if superseded is not None else float(as_of)
    lapsed = promised is not None and until - registered > promised * 86400 * GRACE
    freshness = LAPSED if lapsed else 1.0
    counts = {"acknowledged": 0, "fixed": 0, "rejected": 0, "open": 0, "overdue": 0}
    for issue_id, when in filed.items():
        verdict = answered.get(issue_id)
        if verdict is None:
            counts["open"] += 1
            if as_of - when > OVERDUE_DAYS * 86400:
                counts["overdue"] += 1
        elif verdict in counts:
            counts[verdict] += 1
    issues = max(0.0, 1 - sum(ISSUE_WEIGHTS[k] * counts[k] for k in ISSUE_WEIGHTS))
    return Score(
        dataset_id=dataset_id,
        score=round(100 * validation * freshness * issues),
        validation=round(validation, 4),
        freshness=freshness,
        issues=round(issues, 4),
        as_of=as_of,
        lapsed=lapsed,
        counts=counts,
    )


#: The weight of a receipt whose dataset has no registration record in the log to score from.
UNSCORED: Final = 50


def credit_quality(leaves: Iterable[bytes], dataset_id: int, *, receipt: bytes) -> int:
    """The quality (0..100) a delivery receipt's credit is weighted by (``SharingCredits``).

    The dataset's score from the records logged before the receipt, as of the receipt's time:
    the broker computes it when it mints, every member's verify recomputes it from the same
    records and compares it with the ``quality`` of the ``CreditsMinted`` event. ``leaves`` are
    as for :func:`score_of` (later records are ignored here); ``receipt`` is the receipt's leaf.
    """
    doc = json.loads(receipt)
    as_of = int(_when(str(doc["at"])))
    computed = score_of(leaves, dataset_id, as_of=as_of, before=int(doc["seq"]))
    return UNSCORED if computed is None else computed.score

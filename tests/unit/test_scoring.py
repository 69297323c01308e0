"""The quality score (``ledger.scoring``) at its edges, and the credit quality verify expects.

A credit is weighted by the dataset's score from the records logged before the receipt; the
member-side verifier recomputes it (``ledger.audit.credits``), with the next version's
registration, which can keep a freshness promise the first version alone would have broken.
These are the boundaries and the inputs a broker could bend.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from ledger.audit.credits import CreditQualities
from ledger.audit.state import AuditState, LeafRow
from ledger.protocol.actions import sign_action
from ledger.protocol.canonical import canonical
from ledger.protocol.documents import metadata_hash
from ledger.scoring import GRACE, OVERDUE_DAYS, Score, credit_quality, score_of
from tests.unit.test_audit_verifier import ALICE, DEADLINE, DOMAINS

DAY = 86400
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z
MONTH = 31 * DAY  # MONTHLY: a version at least every 31 days, plus the grace


def iso(at: float, *, z: bool = False) -> str:
    text = dt.datetime.fromtimestamp(at, dt.UTC).isoformat(timespec="microseconds")
    return text.replace("+00:00", "Z") if z else text


def leaf(
    action: str,
    at: float,
    message: dict[str, Any],
    context: dict[str, Any] | None = None,
    *,
    seq: int = 0,
    z: bool = False,
) -> bytes:
    signed = {"action": action, "actor": "0x" + "11" * 20, "message": message, "signature": "0x"}
    doc = {"v": 1, "seq": seq, "at": iso(at, z=z), "signed": signed, "context": context or {}}
    return canonical(doc)


def register(dataset_id: int, at: float, *, previous: int = 0, seq: int = 0, **meta: Any) -> bytes:
    metadata = {"quality": {"rows": 100, "errors": 0}} | meta
    context = {"dataset_id": dataset_id, "metadata": metadata}
    return leaf("register", at, {"previousVersion": previous}, context, seq=seq)


def issue(issue_id: int, at: float, *, seq: int = 0, **message: Any) -> bytes:
    return leaf("issue", at, {"datasetId": 1} | message, {"issue_id": issue_id}, seq=seq)


def answer(issue_id: int, at: float, verdict: str, *, seq: int = 0) -> bytes:
    message = {"issueId": issue_id, "verdict": verdict}
    return leaf("answer", at, message, {"dataset_id": 1}, seq=seq)


def scored(leaves: list[bytes], *, as_of: float, before: int | None = None) -> Score:
    found = score_of(leaves, 1, as_of=int(as_of), before=before)
    assert found is not None
    return found


# -- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quality", "validation"),
    [
        ({"rows": 100}, 0.5),  # no error count: no summary to trust
        ({"errors": 0}, 0.5),
        ({}, 0.5),
        ({"rows": 100, "errors": 1, "truncated": True}, 0.0),  # validation stopped early
        ({"rows": 10, "errors": 30}, 0.0),  # more errors than rows: never below zero
        ({"rows": 1, "errors": 1}, 0.0),
        ({"rows": 0, "errors": 0}, 1.0),
        ({"rows": 3, "errors": 1}, 0.6667),
    ],
)
def test_validation_reads_the_signed_summary(quality: dict[str, Any], validation: float) -> None:
    score = scored([register(1, T0, quality=quality)], as_of=T0)
    assert score.validation == validation
    assert score.score == round(100 * validation)


def test_the_score_names_its_dataset_time_and_factors() -> None:
    score = scored([register(1, T0, quality={"rows": 3, "errors": 1})], as_of=T0 + DAY)
    assert score == Score(
        dataset_id=1,
        score=67,
        validation=0.6667,
        freshness=1.0,
        issues=1.0,
        as_of=T0 + DAY,
        lapsed=False,
        counts={"acknowledged": 0, "fixed": 0, "rejected": 0, "open": 0, "overdue": 0},
    )
    assert score.to_json()["validation"] == 0.6667
    assert set(score.to_json()) == {
        *("dataset_id", "score", "validation", "freshness", "issues", "as_of", "lapsed", "counts")
    }


# -- freshness --------------------------------------------------------------------------------


def test_a_promise_lapses_only_past_its_period_and_grace() -> None:
    monthly = register(1, T0, update_frequency="MONTHLY")
    limit = T0 + MONTH * GRACE
    assert scored([monthly], as_of=limit).lapsed is False  # exactly at the limit: kept
    late = scored([monthly], as_of=limit + 1)
    assert (late.lapsed, late.freshness, late.score) == (True, 0.5, 50)


def test_only_the_next_version_of_this_dataset_keeps_its_promise() -> None:
    monthly = register(1, T0, update_frequency="MONTHLY")
    unrelated = leaf("register", T0 + DAY, {}, {"dataset_id": 7})  # no previousVersion at all
    other = register(8, T0 + DAY, previous=5)
    assert scored([monthly, unrelated, other], as_of=T0 + 3 * MONTH).lapsed is True
    kept = register(2, T0 + MONTH, previous=1)
    assert scored([monthly, unrelated, kept], as_of=T0 + 3 * MONTH).lapsed is False


def test_times_written_with_z_are_utc() -> None:
    z_registered = leaf("register", T0, {}, {"dataset_id": 1, "metadata": {}}, z=True)
    assert scored([z_registered], as_of=T0).score == 50  # parsed, and no summary
    receipt = leaf("receipt", T0 + DAY, {}, seq=5, z=True)
    assert credit_quality([register(1, T0)], 1, receipt=receipt) == 100


# -- issues -------------------------------------------------------------------------------------


def test_issues_are_overdue_only_past_fourteen_days_and_each_one_counts() -> None:
    limit = OVERDUE_DAYS * DAY
    leaves = [
        register(1, T0),
        issue(1, T0),
        issue(2, T0),
        issue(3, T0 + 1),  # open exactly fourteen days at as_of: not yet overdue
        issue(4, T0),
        answer(4, T0 + DAY, "acknowledged"),
        issue(5, T0),
        answer(5, T0 + DAY, "acknowledged"),
        issue(6, T0, datasetId=9),  # another dataset's
        leaf("issue", T0, {}, {"issue_id": 7}),  # names no dataset: not this one's
        leaf("receipt", T0, {}, {"dataset_id": 1}),  # this dataset's, not an answer
    ]
    score = scored(leaves, as_of=T0 + limit + 1)
    assert score.counts == {"acknowledged": 2, "fixed": 0, "rejected": 0, "open": 3, "overdue": 2}
    assert score.issues == 0.5  # 1 - 2 x 0.15 - 2 x 0.10


# -- records after the receipt --------------------------------------------------------------------


def test_records_at_or_after_the_receipt_are_left_out_wherever_they_come() -> None:
    leaves = [
        register(1, T0, update_frequency="MONTHLY", seq=0),
        issue(1, T0, seq=4),  # after the receipt (seq 3): not held against this credit
        issue(2, T0, seq=3),  # the receipt's own position: also later
        register(2, T0 + MONTH, previous=1, seq=2),  # before it, but listed last
    ]
    receipt = leaf("receipt", T0 + 3 * MONTH, {}, seq=3)
    assert credit_quality(leaves, 1, receipt=receipt) == 100


# -- what verify expects (ledger.audit.credits) ---------------------------------------------------


def _row(
    seq: int,
    action: str,
    dataset_id: int,
    at: float,
    message: dict[str, Any],
    context: dict[str, Any],
) -> LeafRow:
    signed = sign_action(ALICE, action, message, DOMAINS)
    raw = canonical(
        {"v": 1, "seq": seq, "at": iso(at), "signed": signed.to_json(), "context": context}
    )
    return LeafRow(
        seq=seq,
        leaf_hash=bytes(32),
        action=action,
        actor=ALICE.address.lower(),
        dataset_id=dataset_id,
        dataset_from="signed",
        at=iso(at),
        leaf=raw,
        chain="matched",
    )


def _registration(seq: int, dataset_id: int, at: float, previous: int, **meta: Any) -> LeafRow:
    metadata = {"title": f"set {dataset_id}", "quality": {"rows": 10, "errors": 0}} | meta
    message = {
        "owner": ALICE.address,
        "contentHash": bytes([dataset_id]) * 32,
        "metadataHash": metadata_hash(metadata),
        "classification": 1,
        "parents": [],
        "previousVersion": previous,
        "nonce": seq + 1,
        "deadline": DEADLINE,
    }
    context = {"dataset_id": dataset_id, "metadata": metadata}
    return _row(seq, "register", dataset_id, at, message, context)


def test_verify_expects_the_quality_a_next_version_kept() -> None:
    """Version 1 promised monthly updates; version 2 came within the month. A receipt for
    version 1 three months on weighs 100, not the 50 of a broken promise."""
    state = AuditState.in_memory()
    with state.transaction():
        state.add_leaves(
            [
                _registration(0, 1, T0, 0, update_frequency="MONTHLY"),
                _registration(1, 3, T0, 0),  # another dataset, no previous version
                _registration(2, 4, T0, 4),  # names itself: not a next version of anything
                _registration(3, 2, T0 + MONTH, 1),
            ]
        )
    receipt = leaf("receipt", T0 + 3 * MONTH, {}, seq=9)
    qualities = CreditQualities(state)
    assert qualities.expected(1, receipt) == 100
    assert qualities.expected(4, receipt) == 100
    assert CreditQualities(state).expected(3, receipt) == 100
    lone = AuditState.in_memory()
    with lone.transaction():
        lone.add_leaves([_registration(0, 1, T0, 0, update_frequency="MONTHLY")])
    assert CreditQualities(lone).expected(1, receipt) == 50

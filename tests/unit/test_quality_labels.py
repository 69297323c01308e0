"""The owner-side checks in process: frictionless validation and the labelling rules."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ledger.errors import InvalidInput
from ledger.protocol.labels import check_labels, check_request_form, frequency_days, themes
from ledger.quality import check_file, check_schema, infer_schema, validate_file


def test_the_vocabularies_are_the_eu_tables_kept_as_data() -> None:
    assert set(themes()) >= {"AGRI", "ECON", "ENVI", "GOVE", "HEAL", "JUST", "TRAN"}
    assert sorted(t for t, v in themes().items() if v["sensitive"]) == ["HEAL", "JUST"]
    assert (frequency_days("MONTHLY"), frequency_days("IRREG"), frequency_days(None)) == (
        31,
        None,
        None,
    )


@pytest.mark.parametrize(
    ("labels", "classification", "code"),
    [
        ({"personal_data": True}, "public", "label_rule_broken"),
        ({"themes": ["HEAL"]}, "internal", "label_rule_broken"),
        ({"themes": ["JUST", "GOVE"]}, "public", "label_rule_broken"),
        ({"themes": ["GOVE", "GOVE"]}, "internal", "label_unknown"),
        ({"themes": "GOVE"}, "internal", "label_unknown"),
        ({"personal_data": "yes"}, "internal", "label_unknown"),
        ({"keywords": [""]}, "internal", "label_unknown"),
        ({"keywords": ["k"] * 21}, "internal", "label_unknown"),
        ({"update_frequency": "HOURLY"}, "internal", "label_unknown"),
        ({"spatial": ""}, "internal", "label_unknown"),
        ({"temporal": {"start": "2025-02-30"}}, "internal", "label_unknown"),
        ({"temporal": {"from": "2025-01-01"}}, "internal", "label_unknown"),
    ],
)
def test_labels_that_break_a_rule_are_refused(
    labels: dict[str, Any], classification: str, code: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_labels(labels, classification)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("labels", "classification"),
    [
        ({}, "public"),
        ({"personal_data": True}, "internal"),
        ({"themes": ["HEAL"], "personal_data": True}, "sensitive"),
        ({"themes": ["GOVE"], "keywords": ["permits"], "update_frequency": "ANNUAL"}, "public"),
        ({"temporal": {"start": "2025-01-01", "end": "2025-12-31"}, "spatial": "D4"}, "internal"),
    ],
)
def test_labels_within_the_rules_pass(labels: dict[str, Any], classification: str) -> None:
    check_labels(labels, classification)


def test_inference_proposes_types_and_validation_decides(tmp_path: Path) -> None:
    data = tmp_path / "t.csv"
    data.write_text("id,when,score\n1,2025-01-01,2.5\n2,2025-01-02,\n")
    schema = infer_schema(data)
    assert [(f["name"], f["type"]) for f in schema["fields"]] == [
        ("id", "integer"),
        ("when", "date"),
        ("score", "number"),
    ]
    used, report = check_file(data)
    assert used == schema
    assert report.ok
    assert report.nulls == {"id": 0, "when": 0, "score": 1}


def test_the_report_digest_is_the_same_for_the_same_file_and_changes_with_it(
    tmp_path: Path,
) -> None:
    data = tmp_path / "t.csv"
    data.write_text("id\nZebra-77\nYak-12\n")
    schema = {"fields": [{"name": "id", "type": "string", "constraints": {"unique": True}}]}
    first = validate_file(data, schema).summary()
    assert validate_file(data, schema).summary() == first
    data.write_text("id\nZebra-77\nZebra-77\n")
    second = validate_file(data, schema)
    assert second.error_types == {"unique-error": 1}
    assert second.summary()["report_sha256"] != first["report_sha256"]
    assert "Zebra" not in json.dumps(second.summary())  # counts, never values
    assert "Zebra" in json.dumps(second.document())  # the full report stays with the owner


def test_a_self_referencing_foreign_key_is_checked(tmp_path: Path) -> None:
    data = tmp_path / "t.csv"
    data.write_text("id,parent\n1,\n2,1\n3,9\n")
    schema = {
        "fields": [{"name": "id", "type": "integer"}, {"name": "parent", "type": "integer"}],
        "primaryKey": ["id"],
        "foreignKeys": [{"fields": ["parent"], "reference": {"resource": "", "fields": ["id"]}}],
    }
    assert validate_file(data, schema).error_types == {"foreign-key": 1}


@pytest.mark.parametrize(
    "schema",
    [[], {"fields": []}, {"fields": [{"name": "a", "type": "bogus"}]}, {"fields": "a"}],
)
def test_an_unusable_schema_is_refused(schema: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_schema(schema)
    assert caught.value.code == "bad_schema"


# -- the standard request form -----------------------------------------------------------------

FORM = {
    "purposeCategory": "research",
    "legalBasis": "public-task",
    "retentionDays": 30,
    "processingLocation": "DE",
}


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"purposeCategory": "unspecified", "legalBasis": "unspecified"},
        {"retentionDays": 0},
        {"retentionDays": 3650},
        {"processingLocation": "EU"},
        {"processingLocation": "unspecified"},
    ],
)
def test_a_request_form_within_its_lists_passes(changes: dict[str, Any]) -> None:
    check_request_form(FORM | changes)


@pytest.mark.parametrize(
    "changes",
    [
        {"purposeCategory": "marketing"},
        {"legalBasis": "because"},
        {"retentionDays": -1},
        {"retentionDays": 3651},
        {"retentionDays": True},
        {"processingLocation": "de"},
        {"processingLocation": "DEU"},
        {"processingLocation": 49},
    ],
)
def test_a_request_form_outside_its_lists_is_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as caught:
        check_request_form(FORM | changes)
    assert caught.value.code == "request_form_invalid"


# -- the quality score (ledger.scoring) ------------------------------------------------------------

DAY = 86400
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def _leaf(action: str, at: int, message: dict[str, Any], context: dict[str, Any]) -> bytes:
    import datetime as dt

    when = dt.datetime.fromtimestamp(at, dt.UTC).isoformat()
    signed = {"action": action, "actor": "0x" + "11" * 20, "message": message, "signature": "0x"}
    return json.dumps({"v": 1, "seq": 0, "at": when, "signed": signed, "context": context}).encode()


def _register(dataset_id: int, at: int, previous: int = 0, **meta: Any) -> bytes:
    metadata = {"quality": {"rows": 100, "errors": 0, "truncated": False}} | meta
    return _leaf(
        "register",
        at,
        {"previousVersion": previous},
        {"dataset_id": dataset_id, "metadata": metadata},
    )


def _issue(issue_id: int, at: int, dataset_id: int = 1) -> bytes:
    return _leaf("issue", at, {"datasetId": dataset_id}, {"issue_id": issue_id})


def _answer(issue_id: int, at: int, verdict: str, dataset_id: int = 1) -> bytes:
    return _leaf(
        "answer", at, {"issueId": issue_id, "verdict": verdict}, {"dataset_id": dataset_id}
    )


def test_a_clean_dataset_scores_100_and_errors_lower_validation() -> None:
    from ledger.scoring import score_of

    assert score_of([_register(1, T0)], 1, as_of=T0 + DAY).score == 100  # type: ignore[union-attr]
    noisy = _register(1, T0, quality={"rows": 100, "errors": 20, "truncated": False})
    assert score_of([noisy], 1, as_of=T0).score == 80  # type: ignore[union-attr]
    stopped = _register(1, T0, quality={"rows": 100, "errors": 1000, "truncated": True})
    assert score_of([stopped], 1, as_of=T0).score == 0  # type: ignore[union-attr]
    assert score_of([_register(2, T0)], 1, as_of=T0) is None


def test_a_lapsed_freshness_promise_halves_the_score_until_a_new_version_keeps_it() -> None:
    from ledger.scoring import score_of

    monthly = _register(1, T0, update_frequency="MONTHLY")
    assert score_of([monthly], 1, as_of=T0 + 34 * DAY).lapsed is False  # type: ignore[union-attr]
    lapsed = score_of([monthly], 1, as_of=T0 + 35 * DAY)
    assert (lapsed.score, lapsed.lapsed) == (50, True)  # type: ignore[union-attr]
    kept = score_of([monthly, _register(2, T0 + 30 * DAY, previous=1)], 1, as_of=T0 + 90 * DAY)
    assert kept.score == 100  # type: ignore[union-attr]
    irregular = _register(1, T0, update_frequency="IRREG")
    assert score_of([irregular], 1, as_of=T0 + 900 * DAY).score == 100  # type: ignore[union-attr]


def test_upheld_and_overdue_issues_cost_points_and_rejected_ones_do_not() -> None:
    from ledger.scoring import score_of

    leaves = [
        _register(1, T0),
        _issue(1, T0),
        _answer(1, T0 + DAY, "acknowledged"),
        _issue(2, T0),
        _answer(2, T0 + DAY, "fixed"),
        _issue(3, T0),
        _answer(3, T0 + DAY, "rejected"),
        _issue(4, T0),  # open for 20 days: overdue
        _issue(5, T0 + 19 * DAY),  # open, recent
        _issue(6, T0, dataset_id=9),  # another dataset's
    ]
    score = score_of(leaves, 1, as_of=T0 + 20 * DAY)
    assert score is not None
    assert score.counts == {"acknowledged": 1, "fixed": 1, "rejected": 1, "open": 2, "overdue": 1}
    assert (score.issues, score.score) == (0.7, 70)

"""A log record's leaf, written by hand, is exactly the canonical JSON of its five members.

``flowlog.leaf_text`` splices the signed action's canonical text into the leaf instead of
encoding the leaf through the general writer; every verifier recomputes the leaf's hash from
the canonical form, so the two must agree byte for byte on any sequence number, timestamp,
signed action and context.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from ledger.protocol.canonical import CanonicalText, canonical
from ledger.services.flowlog import LEAF_VERSION, leaf_text

text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(text, children, max_size=4),
    max_leaves=15,
)
objects = st.dictionaries(text, values, max_size=6)
moments = st.datetimes(timezones=st.just(dt.UTC))


def general(seq: int, at: str, signed: dict[str, Any], context: dict[str, Any] | None) -> bytes:
    return canonical(
        {"v": LEAF_VERSION, "seq": seq, "at": at, "signed": signed, "context": context or {}}
    )


@given(st.integers(0, 2**63), moments, objects, st.none() | objects)
def test_the_hand_written_leaf_is_the_canonical_leaf(
    seq: int, moment: dt.datetime, signed: dict[str, Any], context: dict[str, Any] | None
) -> None:
    at = moment.isoformat(timespec="microseconds")
    spliced = CanonicalText(canonical(signed).decode())
    assert leaf_text(seq, at, spliced, context) == general(seq, at, signed, context)


def test_a_leaf_with_non_ascii_text_and_an_empty_context() -> None:
    signed = {"action": "request", "message": {"purpose": "Überblick\u2028über 日本"}}
    at = "2026-11-30T12:00:00.000001+00:00"
    spliced = CanonicalText(canonical(signed).decode())
    assert leaf_text(7, at, spliced, {}) == general(7, at, signed, None)
    assert leaf_text(7, at, spliced, None).startswith(b'{"at":"2026-11-30T12:00:00.000001+00:00"')


@given(text, st.none() | objects)
def test_any_text_as_the_time_is_written_as_the_general_writer_writes_it(
    at: str, context: dict[str, Any] | None
) -> None:
    spliced = CanonicalText(canonical({"a": 1}).decode())
    assert leaf_text(3, at, spliced, context) == general(3, at, {"a": 1}, context)

"""ledger.protocol.canonical is RFC 8785 (JCS) inside I-JSON, and exact beyond it.

The ``rfc8785`` package is an independent implementation of JCS; on every JSON value inside
the I-JSON domain (integers within ±(2**53 - 1), finite floats, strings without lone
surrogates) both must write the same bytes. Outside it the protocol keeps integers exact (a
256-bit nonce must survive) where JCS refuses them, and refuses what JSON cannot hold.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import InvalidInput
from ledger.protocol.canonical import CanonicalText, canonical
from ledger.protocol.codes import ErrorCode

I_JSON_MAX = 2**53 - 1

#: Unicode text without surrogate code points (those cannot be UTF-8 encoded alone).
text = st.text(st.characters(exclude_categories=("Cs",)), max_size=20)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-I_JSON_MAX, I_JSON_MAX)
    | st.floats(allow_nan=False, allow_infinity=False)
    | text
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_matches_rfc8785_inside_i_json(value: Any) -> None:
    assert canonical(value) == rfc8785.dumps(value)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(text, st.integers(-I_JSON_MAX, I_JSON_MAX), min_size=2, max_size=12))
def test_members_sorted_by_utf16_code_units(value: dict[str, int]) -> None:
    encoded = canonical(value)
    names = list(json.loads(encoded))
    assert names == sorted(names, key=lambda s: s.encode("utf-16-be"))
    assert encoded == rfc8785.dumps(value)


#: Values ``canonical`` hands to the json module's C encoder: no float, ASCII member names.
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers() | text,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(st.text(st.characters(codec="ascii"), max_size=20), children, max_size=5)
    ),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(plain_values)
def test_the_fast_encoder_writes_what_the_general_writer_writes(value: Any) -> None:
    """A float beside a value sends the whole object, the value too, through the general
    writer; alone, the value goes through the json module's encoder."""
    assert canonical({"a": 0.5, "b": value}) == b'{"a":0.5,"b":' + canonical(value) + b"}"


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_is_a_fixed_point(value: Any) -> None:
    once = canonical(value)
    assert canonical(json.loads(once)) == once


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=False, allow_infinity=False))
def test_numbers_round_trip(x: float) -> None:
    written = canonical(x).decode()
    assert written == rfc8785.dumps(x).decode()
    assert float(written) == x or (x == 0 and float(written) == 0)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1e21, b"1e+21"),
        (1e20, b"100000000000000000000"),
        (1e-7, b"1e-7"),
        (1e-6, b"0.000001"),
        (0.1, b"0.1"),
        (-0.0, b"0"),
        (5e-324, b"5e-324"),
        (1.7976931348623157e308, b"1.7976931348623157e+308"),
        (1.0, b"1"),
    ],
)
def test_ecmascript_number_forms(value: float, expected: bytes) -> None:
    assert canonical(value) == expected == rfc8785.dumps(value)


@pytest.mark.parametrize(
    "value",
    [
        2**53,
        -(2**53),
        2**64,
        2**256 - 1,
        -(2**255),
        115792089237316195423570985008687907853269984665640564039457584007913129639935,
    ],
)
def test_big_integers_are_exact(value: int) -> None:
    assert canonical(value) == str(value).encode()
    assert canonical({"nonce": value}) == b'{"nonce":' + str(value).encode() + b"}"
    # JCS proper would round such an integer through a double; rfc8785 refuses it.
    with pytest.raises(rfc8785.IntegerDomainError):
        rfc8785.dumps(value)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=I_JSON_MAX + 1) | st.integers(max_value=-I_JSON_MAX - 1))
def test_any_big_integer_is_written_in_full(value: int) -> None:
    assert canonical([value]) == f"[{value}]".encode()
    assert json.loads(canonical([value])) == [value]


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, [1.0, math.nan], {"x": math.inf}])
def test_nan_and_infinities_are_refused(value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        canonical(value)
    assert caught.value.code == ErrorCode.BAD_JSON


@settings(max_examples=100, deadline=None)
@given(text, st.characters(categories=("Cs",)), text, st.booleans())
def test_lone_surrogates_are_refused(
    before: str, surrogate: str, after: str, as_name: bool
) -> None:
    bad = before + surrogate + after
    with pytest.raises(InvalidInput) as caught:
        canonical({bad: 1} if as_name else [bad])
    assert caught.value.code == ErrorCode.BAD_JSON


@pytest.mark.parametrize("value", [b"bytes", {1: "not a string name"}, object(), {1, 2}])
def test_non_json_values_are_refused(value: Any) -> None:
    with pytest.raises(InvalidInput) as caught:
        canonical(value)
    assert caught.value.code == ErrorCode.BAD_JSON


def test_canonical_text_written_beforehand_is_spliced_as_the_value_itself() -> None:
    """A log leaf embeds its signed action's text, written before the leaf's number is known."""
    action = {"signature": "0x" + "ab" * 65, "message": {"b": [1, "é\n"], "a": 2**200}, "z": None}
    text = CanonicalText(canonical(action).decode())
    for outer in ({"seq": 7, "signed": action}, [action, {"x": action}]):
        spliced = {"seq": 7, "signed": text} if isinstance(outer, dict) else [text, {"x": text}]
        assert canonical(spliced) == canonical(outer)
    # Only the exact type is spliced: a plain string with the same characters stays a string.
    plain = str(text)
    assert type(plain) is str
    assert canonical(plain) == json.dumps(plain, ensure_ascii=False).encode()

"""Canonical JSON: the exact bytes every JSON-derived hash in the protocol is taken over.

The encoding is RFC 8785 (JSON Canonicalization Scheme, JCS) with one extension, so that a
signed action's 256-bit nonce survives: integers are written as their exact decimal digits at
any magnitude (JCS would round them through an IEEE-754 double). Inside the I-JSON domain
(integers within ±(2**53 - 1)) the output is byte for byte RFC 8785, which the tests check
against the ``rfc8785`` package. In short:

- no whitespace; object members sorted by their names' UTF-16 code units;
- strings as ECMAScript ``JSON.stringify`` writes them: ``\\"``, ``\\\\``, ``\\b \\f \\n \\r
  \\t``, other control characters as ``\\u00xx`` (lower-case hex), everything else as UTF-8;
- ``true``, ``false``, ``null``; integers in decimal; other numbers as ECMAScript's
  ``Number.prototype.toString`` (shortest round-trip digits); NaN and infinities are refused;
- the result is UTF-8; a string holding a lone surrogate is refused.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from ledger.errors import InvalidInput
from ledger.protocol.codes import ErrorCode

__all__ = ["CanonicalText", "canonical", "canonical_text"]


class CanonicalText(str):
    """The canonical text of a value, written once and spliced as is into a larger value.

    A log leaf embeds its signed action; the action's text can be written before the leaf's
    sequence number is known (outside the database's turn to write). Only ``canonical``'s own
    output may be wrapped: nothing here checks it again.
    """


def canonical(value: Any) -> bytes:
    """The canonical UTF-8 bytes of a JSON value (``InvalidInput`` for what JSON cannot hold)."""
    if _plain(value):  # the common case, written by the json module's C encoder: 5x faster
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    else:
        out: list[str] = []
        _write(value, out)
        text = "".join(out)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            "a string holds a lone UTF-16 surrogate", code=ErrorCode.BAD_JSON
        ) from None


def canonical_text(value: Any) -> CanonicalText:
    """:func:`canonical` as text, to be spliced as is into a larger value (a log leaf)."""
    return CanonicalText(canonical(value).decode())


def _plain(value: Any) -> bool:
    """Whether ``json.dumps`` writes ``value`` exactly as JCS does: nothing but strings,
    integers, booleans, null, lists and objects whose member names are ASCII.

    Python's encoder then agrees byte for byte (the same escapes, lower-case hex, integers in
    full); a float (ECMAScript writes numbers its own way), ``CanonicalText`` to splice, or a
    non-ASCII name (sorted by UTF-16 units, not code points) goes through :func:`_write`.
    """
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return True
    if kind is dict:
        return all(type(k) is str and k.isascii() and _plain(v) for k, v in value.items())
    if kind is list or kind is tuple:
        return all(_plain(item) for item in value)
    return False


def _write(value: Any, out: list[str]) -> None:
    if type(value) is CanonicalText:
        out.append(value)
    elif value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, int):
        out.append(str(int(value)))
    elif isinstance(value, float):
        out.append(_number(value))
    elif isinstance(value, str):
        out.append(json.dumps(value, ensure_ascii=False))
    elif isinstance(value, list | tuple):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _write(item, out)
        out.append("]")
    elif isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise InvalidInput("object member names must be strings", code=ErrorCode.BAD_JSON)
        out.append("{")
        for i, key in enumerate(sorted(value, key=_utf16_units)):
            if i:
                out.append(",")
            out.append(json.dumps(key, ensure_ascii=False))
            out.append(":")
            _write(value[key], out)
        out.append("}")
    else:
        raise InvalidInput(f"{type(value).__name__} is not a JSON value", code=ErrorCode.BAD_JSON)


def _utf16_units(key: str) -> bytes:
    return key.encode("utf-16-be", "surrogatepass")


def _number(x: float) -> str:
    """ECMAScript ``Number::toString(x)`` (ECMA-262 §6.1.6.1.20) for a finite double."""
    if x != x or x in (float("inf"), float("-inf")):
        raise InvalidInput("NaN and infinities are not JSON numbers", code=ErrorCode.BAD_JSON)
    if x == 0:
        return "0"
    if x < 0:
        return "-" + _number(-x)
    # repr() gives the shortest digits that round-trip, as ECMAScript requires.
    _, digit_tuple, exponent = Decimal(repr(x)).as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0")
    exponent = int(exponent) + (len(digit_tuple) - len(digits))
    k = len(digits)
    n = exponent + k  # x = 0.digits * 10**n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    sign = "+" if e >= 0 else "-"
    mantissa = digits if k == 1 else digits[0] + "." + digits[1:]
    return f"{mantissa}e{sign}{abs(e)}"

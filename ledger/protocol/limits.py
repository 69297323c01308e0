"""The protocol's limits, and the checks of a signed action's timing and fields.

Both sides use these: the broker refuses what is outside them (``invalid_field``,
``deadline_expired``, ``deadline_too_far``, ``weak_nonce``) and the SDK can check before
signing. docs/protocol.md "Limits" lists them; /v1/config serves them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from ledger.errors import ExpiredDeadline, InvalidInput, InvalidSignature
from ledger.protocol.codes import ErrorCode
from ledger.protocol.labels import check_request_form

if TYPE_CHECKING:
    from ledger.protocol.actions import SignedAction

#: A signed action's deadline may be at most this far ahead of the broker's clock ...
MAX_DEADLINE_AHEAD: Final = 24 * 3600
#: ... plus this much tolerance for clocks that differ.
DEADLINE_TOLERANCE: Final = 3600
#: Deadline the SDK puts on what it signs.
DEFAULT_DEADLINE_SECONDS: Final = 15 * 60
#: Broker-action nonces are random 256-bit integers; one below this was not drawn at random
#: (a uniform 256-bit draw falls below 2**64 with probability 2**-192).
MIN_BROKER_NONCE: Final = 2**64
PURPOSE_CHARS: Final = (10, 2000)
REQUEST_DAYS: Final = (1, 3650)
REQUEST_USES: Final = (1, 1_000_000)
MAX_REASON_CHARS: Final = 2000
MAX_COMMENT_CHARS: Final = 2000
MAX_NAME_CHARS: Final = 200
SCORES: Final = (1, 5)
ISSUE_PROBLEM_CHARS: Final = (10, 2000)
MAX_ISSUE_WHERE_CHARS: Final = 500
#: An owner's answer to a quality issue.
VERDICTS: Final = ("acknowledged", "fixed", "rejected")
MAX_PARENTS: Final = 32


def check_timing(signed: SignedAction, now: int) -> None:
    """Deadline in the future and not too far ahead; random nonces drawn at random."""
    deadline = signed.message.get("deadline")
    if not isinstance(deadline, int) or deadline < now:
        raise ExpiredDeadline(f"{signed.action}: deadline {deadline} has passed")
    if deadline > now + MAX_DEADLINE_AHEAD + DEADLINE_TOLERANCE:
        raise ExpiredDeadline(
            f"{signed.action}: deadline more than 24 h ahead", code=ErrorCode.DEADLINE_TOO_FAR
        )
    if not signed.spec.sequential_nonce:
        nonce = signed.message.get("nonce")
        if not isinstance(nonce, int) or nonce < MIN_BROKER_NONCE:
            raise InvalidSignature(
                f"{signed.action}: the nonce must be a random 256-bit integer (>= 2**64)",
                code=ErrorCode.WEAK_NONCE,
            )


def _text(message: dict[str, Any], name: str) -> str:
    value = message.get(name)
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string", code=ErrorCode.INVALID_FIELD)
    return value


def _within(value: Any, bounds: tuple[int, int], name: str) -> int:
    if (
        not isinstance(value, int)
        or isinstance(value, bool)
        or not (bounds[0] <= value <= bounds[1])
    ):
        raise InvalidInput(
            f"{name} must be {bounds[0]} to {bounds[1]}", code=ErrorCode.INVALID_FIELD
        )
    return value


def check_limits(signed: SignedAction) -> None:
    """The protocol's limits on an action's fields (InvalidInput ``invalid_field``)."""
    msg = signed.message
    if signed.action == "request":
        purpose = _text(msg, "purpose").strip()
        if not PURPOSE_CHARS[0] <= len(purpose) <= PURPOSE_CHARS[1]:
            raise InvalidInput(
                f"purpose must be {PURPOSE_CHARS[0]} to {PURPOSE_CHARS[1]} characters",
                code=ErrorCode.INVALID_FIELD,
            )
        _within(msg.get("days"), REQUEST_DAYS, "days")
        _within(msg.get("maxUses"), REQUEST_USES, "maxUses")
        check_request_form(msg)
    elif signed.action == "deny":
        if len(_text(msg, "reason")) > MAX_REASON_CHARS:
            raise InvalidInput(
                f"reason longer than {MAX_REASON_CHARS} characters", code=ErrorCode.INVALID_FIELD
            )
    elif signed.action == "rate":
        _within(msg.get("score"), SCORES, "score")
        if len(_text(msg, "comment")) > MAX_COMMENT_CHARS:
            raise InvalidInput(
                f"comment longer than {MAX_COMMENT_CHARS} characters",
                code=ErrorCode.INVALID_FIELD,
            )
    elif signed.action == "issue":
        problem = _text(msg, "problem").strip()
        if not ISSUE_PROBLEM_CHARS[0] <= len(problem) <= ISSUE_PROBLEM_CHARS[1]:
            raise InvalidInput(
                f"problem must be {ISSUE_PROBLEM_CHARS[0]} to {ISSUE_PROBLEM_CHARS[1]} characters",
                code=ErrorCode.INVALID_FIELD,
            )
        if len(_text(msg, "fields")) > MAX_ISSUE_WHERE_CHARS:
            raise InvalidInput(
                f"fields longer than {MAX_ISSUE_WHERE_CHARS} characters",
                code=ErrorCode.INVALID_FIELD,
            )
        if len(_text(msg, "rows")) > MAX_ISSUE_WHERE_CHARS:
            raise InvalidInput(
                f"rows longer than {MAX_ISSUE_WHERE_CHARS} characters", code=ErrorCode.INVALID_FIELD
            )
    elif signed.action == "answer":
        check_issue_answer(msg)
    elif signed.action == "onboard":
        if not 1 <= len(_text(msg, "name").strip()) <= MAX_NAME_CHARS:
            raise InvalidInput(
                f"name must be 1 to {MAX_NAME_CHARS} characters", code=ErrorCode.INVALID_FIELD
            )
    elif signed.action == "register":
        parents = msg.get("parents")
        if isinstance(parents, list) and len(parents) > MAX_PARENTS:
            raise InvalidInput(f"at most {MAX_PARENTS} parents", code=ErrorCode.INVALID_FIELD)


def check_issue_answer(msg: dict[str, Any]) -> None:
    """An answer's verdict and what it needs: a later version for ``fixed``, a reason for
    ``rejected`` (``invalid_field``)."""
    verdict = msg.get("verdict")
    if verdict not in VERDICTS:
        raise InvalidInput(
            f"verdict must be one of {', '.join(VERDICTS)}", code=ErrorCode.INVALID_FIELD
        )
    fixed_in = msg.get("fixedIn")
    if not isinstance(fixed_in, int) or isinstance(fixed_in, bool) or fixed_in < 0:
        raise InvalidInput("fixedIn must be a dataset id or 0", code=ErrorCode.INVALID_FIELD)
    if (verdict == "fixed") != (fixed_in > 0):
        raise InvalidInput(
            "fixedIn names the version with the fix, for the verdict fixed only",
            code=ErrorCode.INVALID_FIELD,
        )
    reason = _text(msg, "reason")
    if len(reason) > MAX_REASON_CHARS:
        raise InvalidInput(
            f"reason longer than {MAX_REASON_CHARS} characters", code=ErrorCode.INVALID_FIELD
        )
    if verdict == "rejected" and len(reason.strip()) < ISSUE_PROBLEM_CHARS[0]:
        raise InvalidInput(
            f"a rejection needs a reason of at least {ISSUE_PROBLEM_CHARS[0]} characters",
            code=ErrorCode.INVALID_FIELD,
        )

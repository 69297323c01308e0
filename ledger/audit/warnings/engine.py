"""Evaluate the rules over the verified records: the early warnings, each with its evidence.

:func:`evaluate` reads only the member's own audit state (what ``verify`` checked on this
machine), the verification report just made and the evidence kept; it asks the broker nothing.
A warning's ``key`` (rule, subject and the records it starts from) stays the same from run to
run, so its ``first_seen`` time is kept in the state and a hook receives it once.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass
from typing import Any

from ledger.audit.state import AuditState
from ledger.audit.verifier import AuditReport
from ledger.audit.warnings.checks import CHECKS, Finding, Inputs
from ledger.audit.warnings.facts import Facts
from ledger.audit.warnings.rules import SEVERITIES, Rules
from ledger.audit.warnings.store import first_seen


@dataclass(frozen=True)
class EarlyWarning:
    """One warning: which rule, how severe, about what, since when, and the records proving it."""

    rule: str
    severity: str
    subject: str
    message: str
    first_seen: str
    records: tuple[int, ...]
    key: str

    def to_json(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["records"] = list(self.records)
        return doc


def stamp(now: dt.datetime) -> str:
    """``now`` as ISO-8601 UTC to the second (a time without a zone is taken as UTC)."""
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    return now.astimezone(dt.UTC).isoformat(timespec="seconds")


def key_of(rule: str, finding: Finding) -> str:
    return f"{rule}|{finding.subject}|{finding.part}"


def evaluate(
    state: AuditState, rules: Rules, *, now: dt.datetime, report: AuditReport | None = None
) -> list[EarlyWarning]:
    """The warnings of every enabled rule, most severe first, then oldest first.

    ``report`` is the verification run just made (the ``verification-failed`` rule reads it);
    first-seen times of new warnings are ``now`` and are kept in ``state``.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=dt.UTC)
    inputs = Inputs(facts=Facts.read(state), state=state, report=report, now=now)
    found: dict[str, tuple[str, str, Finding]] = {}
    for rule_id, check in CHECKS.items():
        rule = rules[rule_id]
        if not rule.enabled:
            continue
        for finding in check(inputs, rule):
            found.setdefault(key_of(rule_id, finding), (rule_id, rule.severity, finding))
    seen = first_seen(state, {key: rule_id for key, (rule_id, _, _) in found.items()}, stamp(now))
    warnings = [
        EarlyWarning(
            rule=rule_id,
            severity=severity,
            subject=finding.subject,
            message=finding.message,
            first_seen=seen[key],
            records=finding.records,
            key=key,
        )
        for key, (rule_id, severity, finding) in found.items()
    ]
    return sorted(
        warnings,
        key=lambda w: (-SEVERITIES.index(w.severity), w.first_seen, w.rule, w.key),
    )


def at_least(warnings: list[EarlyWarning], severity: str) -> list[EarlyWarning]:
    """The warnings of ``severity`` or more severe."""
    floor = SEVERITIES.index(severity)
    return [w for w in warnings if SEVERITIES.index(w.severity) >= floor]

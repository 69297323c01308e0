"""``drl warnings``: early warnings from the records verified on this machine.

Runs the incremental verify first (like ``drl trace``), evaluates the rules file over the audit
state, hands new warnings to the rules file's hooks, and prints them. Exit 1 when verification
failed or when a warning listed is at least as severe as ``--fail-on``.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from ledger.cli.common import AsOpt, JsonOpt, client, emit, err, out, settings
from ledger.errors import InvalidInput
from ledger.protocol.codes import ErrorCode

if TYPE_CHECKING:
    from ledger.audit.warnings import EarlyWarning

#: Records a table row names before it says how many more there are.
SHOWN_RECORDS = 6


class FailOn(StrEnum):
    warning = "warning"
    critical = "critical"


def warnings(
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only warnings first seen at or after this ISO-8601 time (UTC)."
        ),
    ] = None,
    rules_file: Annotated[
        Path | None,
        typer.Option(
            "--rules",
            help="Rules file (TOML); else DRL_WARNING_RULES, else the packaged rules.",
        ),
    ] = None,
    fail_on: Annotated[
        FailOn | None,
        typer.Option("--fail-on", help="Exit 1 if a warning of this severity or more is listed."),
    ] = None,
    as_: AsOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Early warnings: refusals, fetches after revocation, volume spikes, sensitive data
    reaching enterprises, anchoring lag, broken promises — from records verified on this
    machine (an incremental `drl verify` runs first). docs/warnings.md lists the rules."""
    from ledger.audit.warnings import at_least, evaluate, load_rules, stamp
    from ledger.client.alerts import deliver

    rules = load_rules(rules_file or settings().warning_rules)
    cutoff = _since(since)
    with client(as_) as c:
        report = c.audit()
        state = c.audit_state()
        try:
            found = evaluate(state, rules, now=dt.datetime.now(dt.UTC), report=report)
            delivery = deliver(state, found, rules)
        finally:
            state.close()
    shown = [w for w in found if cutoff is None or w.first_seen >= stamp(cutoff)]
    for failure in delivery.failures:
        err.print(f"hook failed: {failure}", markup=False, highlight=False)
    for hook, keys in delivery.sent.items():
        err.print(f"sent {len(keys)} new warning(s) to the {hook} hook", highlight=False)
    if as_json:
        emit(
            {
                "verified": {"ok": report.ok, "tree_size": report.tree_size},
                "rules": rules.source,
                "warnings": [w.to_json() for w in shown],
                "sent": delivery.sent,
                "hook_failures": delivery.failures,
            },
            True,
        )
    else:
        _table(shown, report.tree_size)
    if not report.ok:
        for p in report.problems:
            err.print(f"[red]FAIL[/] {escape(f'[{p.code}] {p.where}: {p.what}')}", highlight=False)
        raise typer.Exit(1)
    if fail_on is not None and at_least(shown, fail_on.value):
        raise typer.Exit(1)


def _since(text: str | None) -> dt.datetime | None:
    if text is None:
        return None
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidInput(
            f"--since {text!r} is not an ISO-8601 time (2025-01-31 or 2025-01-31T08:00Z)",
            code=ErrorCode.BAD_ARGUMENTS,
        ) from None
    return when if when.tzinfo is not None else when.replace(tzinfo=dt.UTC)


def _table(shown: list[EarlyWarning], verified: int) -> None:
    if not shown:
        out.print(f"no warnings (from {verified} records verified on this machine)")
        return
    table = Table("rule", "severity", "subject", "first seen", "records", "what", box=None)
    colour = {"critical": "red", "warning": "yellow", "info": "cyan"}
    for w in shown:
        records = ", ".join(f"#{seq}" for seq in w.records[:SHOWN_RECORDS])
        if len(w.records) > SHOWN_RECORDS:
            records += f" (+{len(w.records) - SHOWN_RECORDS})"
        table.add_row(
            escape(w.rule),
            f"[{colour.get(w.severity, 'white')}]{w.severity}[/]",
            escape(w.subject),
            w.first_seen,
            records or "-",
            escape(w.message),
        )
    out.print(table)
    out.print(f"{len(shown)} warning(s) from {verified} records verified on this machine")

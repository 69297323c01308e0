"""Hand new early warnings to a regulator's own alerting: a webhook, a command, or both.

The hooks come from the rules file (``[hooks]``): ``webhook`` receives a POST of the warnings as
JSON, ``command`` (a program and its arguments, run without a shell) the same JSON on stdin.
Each hook receives a warning once: the keys it took are kept in the audit state
(``ledger.audit.warnings.store``), and a hook that fails is tried again with the same warnings
next time. A failure is reported, never raised, and never shows the webhook's credentials or
path (where a token often lives).
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final

import httpx

from ledger.audit.state import AuditState
from ledger.audit.warnings import EarlyWarning, Rules, stamp
from ledger.audit.warnings.store import delivered, mark_delivered
from ledger.redact import mask_url, scrub, scrub_endpoints

#: The payload's version, for receivers that check it.
PAYLOAD_VERSION: Final = 1
#: How much of a failing command's stderr a failure quotes.
STDERR_CHARS: Final = 300


@dataclass
class DeliveryReport:
    """What each hook received this time (its warnings' keys), and what failed."""

    sent: dict[str, list[str]] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures


def payload(warnings: Sequence[EarlyWarning], *, origin: str | None) -> bytes:
    """The JSON a hook receives: the log audited and the new warnings."""
    doc = {
        "v": PAYLOAD_VERSION,
        "log": origin,
        "warnings": [w.to_json() for w in warnings],
    }
    return json.dumps(doc, ensure_ascii=False).encode("utf-8")


def deliver(
    state: AuditState,
    warnings: Sequence[EarlyWarning],
    rules: Rules,
    *,
    now: dt.datetime | None = None,
) -> DeliveryReport:
    """Send each hook of ``rules`` the warnings it has not received yet; remember what went."""
    hooks, report = rules.hooks, DeliveryReport()
    at = stamp(now or dt.datetime.now(dt.UTC))
    senders: list[tuple[str, Callable[[bytes], str | None]]] = []
    if hooks.webhook is not None:
        url = hooks.webhook
        senders.append(("webhook", lambda body: _post(url, body, hooks.timeout_seconds)))
    if hooks.command:
        argv = hooks.command
        senders.append(("command", lambda body: _run(argv, body, hooks.timeout_seconds)))
    for hook, send in senders:
        taken = delivered(state, hook)
        new = [w for w in warnings if w.key not in taken]
        if not new:
            continue
        failure = send(payload(new, origin=state.origin))
        if failure is not None:
            report.failures.append(failure)
            continue
        mark_delivered(state, hook, [w.key for w in new], at)
        report.sent[hook] = [w.key for w in new]
    return report


def _post(url: str, body: bytes, timeout: float) -> str | None:
    shown = mask_url(url, keep_path=False)
    try:
        answer = httpx.post(
            url,
            content=body,
            headers={"Content-Type": "application/json"},
            timeout=timeout,
            follow_redirects=False,
        )
    except httpx.HTTPError as exc:
        return f"webhook {shown}: {type(exc).__name__}: {scrub_endpoints(scrub(str(exc), url))}"
    if not 200 <= answer.status_code < 300:
        return f"webhook {shown}: answered {answer.status_code}"
    return None


def _run(argv: Sequence[str], body: bytes, timeout: float) -> str | None:
    program = argv[0]
    try:
        done = subprocess.run(
            list(argv), input=body, capture_output=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return f"command {program}: still running after {timeout:g} s (stopped)"
    except OSError as exc:
        return f"command {program}: cannot run: {exc.strerror or exc}"
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip()[-STDERR_CHARS:]
        return f"command {program}: exited {done.returncode}" + (f": {said}" if said else "")
    return None

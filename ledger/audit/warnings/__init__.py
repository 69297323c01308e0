"""Early warnings, computed on the member's machine from the records it verified itself.

- :func:`load_rules` — the rules file (TOML; the packaged defaults, overridden by one's own)
- :func:`evaluate` — every enabled rule over the audit state, each warning citing its records
- :class:`EarlyWarning` — rule, severity, subject, message, first seen, records, stable key

Delivery to a webhook or a command (network and processes) is member-side I/O:
``ledger.client.alerts.deliver``. docs/warnings.md describes every rule.
"""

from __future__ import annotations

from ledger.audit.warnings.engine import EarlyWarning, at_least, evaluate, stamp
from ledger.audit.warnings.rules import PARAMS, SEVERITIES, Hooks, Rule, Rules, load_rules

__all__ = [
    "PARAMS",
    "SEVERITIES",
    "EarlyWarning",
    "Hooks",
    "Rule",
    "Rules",
    "at_least",
    "evaluate",
    "load_rules",
    "stamp",
]

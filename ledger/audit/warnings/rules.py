"""The rules file: which early-warning rules run, how severe each is, and their thresholds.

TOML, read strictly: an unknown section, rule or key, a value of the wrong type or a negative
threshold is refused (``InvalidInput``, code ``rules_invalid``) with the key it concerns, so a
typo never silently switches a rule off. The packaged ``ledger/audit/data/warnings.toml`` holds
every rule with its defaults; a file of one's own overrides only what it names.
"""

from __future__ import annotations

import copy
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Final, Literal, cast
from urllib.parse import urlsplit

from ledger.errors import InvalidInput
from ledger.protocol.codes import ErrorCode

Severity = Literal["info", "warning", "critical"]
#: Severities, least severe first.
SEVERITIES: Final[tuple[Severity, ...]] = ("info", "warning", "critical")

Kind = Literal["count", "number", "flag", "codes"]
"""A threshold's type: a whole number, any number, true/false, a list of error codes."""

#: Every rule and its thresholds (besides ``enabled`` and ``severity``), in report order.
PARAMS: Final[dict[str, dict[str, Kind]]] = {
    "repeated-refusals": {"count": "count", "window_hours": "number"},
    "fetch-after-revocation": {"codes": "codes"},
    "volume-spike": {
        "factor": "number",
        "min_count": "count",
        "history_days": "count",
        "baseline_days": "count",
    },
    "sensitive-to-enterprise": {"derivatives": "flag"},
    "purpose-mismatch": {},
    "anchoring-lag": {"minutes": "number"},
    "verification-failed": {},
    "inconsistent-checkpoint": {},
    "grant-expiring": {"days": "number"},
    "update-promise-lapsed": {"grace_percent": "number"},
}
HOOK_KEYS: Final = ("webhook", "command", "timeout_seconds")
DEFAULT_TIMEOUT: Final = 10.0


@dataclass(frozen=True)
class Rule:
    """One rule as configured."""

    id: str
    enabled: bool
    severity: Severity
    params: Mapping[str, Any]

    def count(self, name: str) -> int:
        return int(self.params[name])

    def number(self, name: str) -> float:
        return float(self.params[name])

    def flag(self, name: str) -> bool:
        return bool(self.params[name])

    def codes(self, name: str) -> tuple[str, ...]:
        return tuple(self.params[name])


@dataclass(frozen=True)
class Hooks:
    """Where new warnings are delivered: a webhook URL and/or a command (argv, no shell)."""

    webhook: str | None = None
    command: tuple[str, ...] = ()
    timeout_seconds: float = DEFAULT_TIMEOUT


@dataclass(frozen=True)
class Rules:
    """Every rule (all of :data:`PARAMS`, enabled or not) and the hooks."""

    rules: Mapping[str, Rule]
    hooks: Hooks
    source: str

    def __getitem__(self, rule_id: str) -> Rule:
        return self.rules[rule_id]


def load_rules(path: Path | None = None) -> Rules:
    """The packaged rules, overridden by the file at ``path`` if one is given."""
    default_text = resources.files("ledger.audit").joinpath("data/warnings.toml").read_text()
    doc = _parse(default_text, "the packaged rules")
    source = "packaged defaults"
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise _invalid(f"cannot read the rules file {path}: {exc}") from None
        own = _parse(text, str(path))
        doc = _merge(doc, own)
        source = str(path)
    return _build(doc, source)


def _invalid(message: str) -> InvalidInput:
    return InvalidInput(message, code=ErrorCode.RULES_INVALID)


def _parse(text: str, where: str) -> dict[str, Any]:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _invalid(f"{where} is not TOML: {exc}") from None
    _check(doc, where)
    return doc


def _check(doc: dict[str, Any], where: str) -> None:
    for section in doc:
        if section not in ("rules", "hooks"):
            raise _invalid(f"{where}: unknown section [{section}] (rules, hooks)")
    rules = doc.get("rules", {})
    if not isinstance(rules, dict):
        raise _invalid(f"{where}: rules must be a table of rules")
    for rule_id, table in rules.items():
        if rule_id not in PARAMS:
            raise _invalid(f"{where}: unknown rule rules.{rule_id} (known: {', '.join(PARAMS)})")
        if not isinstance(table, dict):
            raise _invalid(f"{where}: rules.{rule_id} must be a table")
        for key, value in table.items():
            _check_rule_key(where, rule_id, key, value)
    hooks = doc.get("hooks", {})
    if not isinstance(hooks, dict):
        raise _invalid(f"{where}: hooks must be a table")
    for key, value in hooks.items():
        _check_hook(where, key, value)


def _check_rule_key(where: str, rule_id: str, key: str, value: Any) -> None:
    name = f"rules.{rule_id}.{key}"
    if key == "enabled":
        if not isinstance(value, bool):
            raise _invalid(f"{where}: {name} must be true or false")
    elif key == "severity":
        if value not in SEVERITIES:
            raise _invalid(f"{where}: {name} must be one of {', '.join(SEVERITIES)}")
    elif key in PARAMS[rule_id]:
        _check_value(where, name, PARAMS[rule_id][key], value)
    else:
        known = ", ".join(["enabled", "severity", *PARAMS[rule_id]])
        raise _invalid(f"{where}: unknown key {name} (known: {known})")


def _check_value(where: str, name: str, kind: Kind, value: Any) -> None:
    if kind == "flag":
        if not isinstance(value, bool):
            raise _invalid(f"{where}: {name} must be true or false")
    elif kind == "codes":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise _invalid(f"{where}: {name} must be a list of error codes")
    else:
        whole = isinstance(value, int) and not isinstance(value, bool)
        number = whole or isinstance(value, float)
        if not (whole if kind == "count" else number):
            wanted = "a whole number" if kind == "count" else "a number"
            raise _invalid(f"{where}: {name} must be {wanted}, got {value!r}")
        if not math.isfinite(value):
            raise _invalid(f"{where}: {name} must be finite, got {value!r}")
        if value < 0:
            raise _invalid(f"{where}: {name} must not be negative, got {value!r}")


def _check_hook(where: str, key: str, value: Any) -> None:
    name = f"hooks.{key}"
    if key == "webhook":
        parts = urlsplit(value) if isinstance(value, str) else None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise _invalid(f"{where}: {name} must be an http(s) URL")
    elif key == "command":
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, str) and v for v in value)
        ):
            raise _invalid(f"{where}: {name} must be a program and its arguments, as a list")
    elif key == "timeout_seconds":
        _check_value(where, name, "number", value)
        if value == 0:
            raise _invalid(f"{where}: {name} must be more than 0")
    else:
        raise _invalid(f"{where}: unknown key {name} (known: {', '.join(HOOK_KEYS)})")


def _merge(base: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for rule_id, table in own.get("rules", {}).items():
        merged.setdefault("rules", {}).setdefault(rule_id, {}).update(table)
    if "hooks" in own:
        merged["hooks"] = dict(own["hooks"])
    return merged


def _build(doc: dict[str, Any], source: str) -> Rules:
    rules: dict[str, Rule] = {}
    for rule_id, params in PARAMS.items():
        table = doc.get("rules", {}).get(rule_id, {})
        missing = [k for k in ("enabled", "severity", *params) if k not in table]
        if missing:
            raise _invalid(f"{source}: rules.{rule_id} lacks {', '.join(missing)}")
        rules[rule_id] = Rule(
            id=rule_id,
            enabled=bool(table["enabled"]),
            severity=cast(Severity, table["severity"]),
            params={
                k: tuple(v) if isinstance(v, list) else v for k, v in table.items() if k in params
            },
        )
    hooks = doc.get("hooks", {})
    return Rules(
        rules=rules,
        hooks=Hooks(
            webhook=hooks.get("webhook"),
            command=tuple(hooks.get("command", ())),
            timeout_seconds=float(hooks.get("timeout_seconds", DEFAULT_TIMEOUT)),
        ),
        source=source,
    )

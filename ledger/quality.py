"""Data quality against a common standard: CSV checked with a Frictionless Table Schema.

Runs on the owner's machine before encryption (the broker never sees plaintext). The summary
(rows, per-field null counts, errors) goes into the signed metadata document, so consumers and
regulators see the quality the owner attested to, bound to the content hash on chain.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledger.errors import InvalidInput
from ledger.protocol.codes import ErrorCode

MAX_REPORTED = 20
_TYPES = {"string", "integer", "number", "boolean", "date", "datetime", "year"}


@dataclass
class QualityReport:
    """What checking a file against its schema found."""

    rows: int = 0
    fields: list[str] = field(default_factory=list)
    nulls: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def summary(self) -> dict[str, Any]:
        return {
            "standard": "frictionless-table-schema",
            "rows": self.rows,
            "fields": self.fields,
            "nulls": self.nulls,
            "errors": self.error_count,
        }


def check_schema(schema: Any) -> dict[str, Any]:
    """Validate the schema document itself."""
    if not isinstance(schema, dict) or not isinstance(schema.get("fields"), list):
        raise InvalidInput(
            "a Table Schema is an object with a 'fields' list", code=ErrorCode.BAD_SCHEMA
        )
    names = []
    for f in schema["fields"]:
        if not isinstance(f, dict) or not isinstance(f.get("name"), str):
            raise InvalidInput("every schema field needs a 'name'", code=ErrorCode.BAD_SCHEMA)
        if f.get("type", "string") not in _TYPES:
            raise InvalidInput(
                f"field {f['name']!r}: unsupported type {f.get('type')!r}",
                code=ErrorCode.BAD_SCHEMA,
            )
        names.append(f["name"])
    if len(set(names)) != len(names):
        raise InvalidInput("schema field names must be unique", code=ErrorCode.BAD_SCHEMA)
    return schema


def _convert(kind: str, text: str) -> Any:
    if kind == "integer":
        return int(text)
    if kind in ("number",):
        return float(text)
    if kind == "year":
        return int(text)
    if kind == "boolean":
        if text.lower() in ("true", "1", "yes"):
            return True
        if text.lower() in ("false", "0", "no"):
            return False
        raise ValueError(text)
    if kind == "date":
        return dt.date.fromisoformat(text)
    if kind == "datetime":
        return dt.datetime.fromisoformat(text)
    return text


def validate_csv(path: Path, schema: dict[str, Any]) -> QualityReport:
    """Check every row of a CSV file against the schema (streaming, one row at a time)."""
    check_schema(schema)
    fields = {f["name"]: f for f in schema["fields"]}
    report = QualityReport(fields=list(fields), nulls=dict.fromkeys(fields, 0))
    primary = schema.get("primaryKey")
    keys = [primary] if isinstance(primary, str) else list(primary or [])
    seen: set[tuple[str, ...]] = set()
    patterns = {
        n: re.compile(f["constraints"]["pattern"])
        for n, f in fields.items()
        if isinstance(f.get("constraints"), dict) and "pattern" in f["constraints"]
    }

    def error(message: str) -> None:
        report.error_count += 1
        if len(report.errors) < MAX_REPORTED:
            report.errors.append(message)

    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        if list(header) != list(fields):
            error(f"header {header} does not match the schema fields {list(fields)}")
            return report
        for line, row in enumerate(reader, start=2):
            report.rows += 1
            for name, spec in fields.items():
                text = row.get(name) or ""
                constraints = spec.get("constraints") or {}
                if text == "":
                    report.nulls[name] += 1
                    if constraints.get("required"):
                        error(f"line {line}: {name} is required")
                    continue
                try:
                    value = _convert(spec.get("type", "string"), text)
                except ValueError:
                    error(f"line {line}: {name}={text!r} is not a {spec.get('type')}")
                    continue
                if "enum" in constraints and value not in constraints["enum"]:
                    error(f"line {line}: {name}={text!r} is not one of the allowed values")
                if "minimum" in constraints and value < constraints["minimum"]:
                    error(f"line {line}: {name}={text!r} is below {constraints['minimum']}")
                if "maximum" in constraints and value > constraints["maximum"]:
                    error(f"line {line}: {name}={text!r} is above {constraints['maximum']}")
                if name in patterns and not patterns[name].fullmatch(text):
                    error(f"line {line}: {name}={text!r} does not match the pattern")
            if keys:
                key = tuple(row.get(k) or "" for k in keys)
                if key in seen:
                    error(f"line {line}: duplicate primary key {key}")
                seen.add(key)
    return report

"""Data quality against a common standard: frictionless-py, the Table Schema reference.

Runs on the owner's machine before encryption (the broker never sees plaintext). Frictionless
is the project's only Table Schema implementation: it infers a schema when the owner gives
none (:func:`infer_schema`), checks a schema document (:func:`check_schema`) and validates
every row, streaming, with the full constraint set — types and formats, ``required``,
``unique``, ``enum``, ``pattern``, ``minimum``/``maximum``, ``minLength``/``maxLength``, primary
keys and (self-referencing) foreign keys (:func:`validate_file`).

What goes into the signed metadata document is :meth:`QualityReport.summary`: counts only (rows,
fields, per-field nulls, errors by type, the file's bytes and SHA-256 as frictionless read them)
and ``report_sha256``, the SHA-256 of the canonical
JSON of the full frictionless report (:meth:`QualityReport.document`, which names rows and cell
values and so stays with the owner), so consumers and regulators see exactly what the owner
attested to and the owner can later show the report that hashes to it.

Formats: CSV and TSV, JSON (an array of objects or of arrays), JSON Lines, Excel (``.xlsx``,
``.xls``) and Parquet when pyarrow is installed. Anything else is refused with
``data_format_unsupported``.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from ledger.errors import InvalidInput
from ledger.protocol.canonical import canonical
from ledger.protocol.codes import ErrorCode

STANDARD: Final = "frictionless-table-schema"
#: Errors kept in the full report (and at which validation stops: a file with more is refused).
MAX_ERRORS: Final = 1000
#: Errors quoted in a refusal's message.
MAX_REPORTED: Final = 20

_OOXML: Final = "application/vnd.openxmlformats-officedocument"
#: suffix -> (frictionless format, media type, module that reads it or None)
FORMATS: Final[dict[str, tuple[str, str, str | None]]] = {
    ".csv": ("csv", "text/csv", None),
    ".tsv": ("tsv", "text/tab-separated-values", None),
    ".json": ("json", "application/json", "ijson"),
    ".jsonl": ("jsonl", "application/jsonl", "jsonlines"),
    ".ndjson": ("jsonl", "application/jsonl", "jsonlines"),
    ".xlsx": (
        "xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "openpyxl",
    ),
    ".xls": ("xls", "application/vnd.ms-excel", "xlrd"),
    ".parquet": ("parquet", "application/vnd.apache.parquet", "pyarrow"),
}


def data_format(path: Path) -> tuple[str, str]:
    """(frictionless format, media type) of a data file, or ``data_format_unsupported``."""
    known = FORMATS.get(path.suffix.lower())
    if known is None:
        raise InvalidInput(
            f"{path.name}: cannot check {path.suffix or 'extension-less'} files; "
            f"use one of {', '.join(sorted(FORMATS))}",
            code=ErrorCode.DATA_FORMAT_UNSUPPORTED,
        )
    fmt, media_type, module = known
    if module is not None and importlib.util.find_spec(module) is None:
        raise InvalidInput(
            f"{path.name}: reading {fmt} needs the Python package {module!r}, not installed here",
            code=ErrorCode.DATA_FORMAT_UNSUPPORTED,
        )
    return fmt, media_type


def _resource(path: Path, schema: Any = None) -> Any:
    import frictionless

    fmt, _ = data_format(path)
    kwargs: dict[str, Any] = {
        "path": path.name,
        "basepath": str(path.parent),
        "format": fmt,
        "datatype": "table",  # JSON is data of any shape unless told it is a table
    }
    if schema is not None:
        kwargs["schema"] = schema
    return frictionless.Resource(**kwargs)


def infer_schema(path: Path) -> dict[str, Any]:
    """A Table Schema inferred by frictionless from the file's first rows (its header and types).

    Inference proposes; validation of every row against the proposal decides. The owner
    reviews it with ``drl dataset schema FILE`` before registering.
    """
    import frictionless

    resource = _resource(path)
    try:
        resource.infer()
    except frictionless.FrictionlessException as exc:
        raise InvalidInput(
            f"{path.name}: cannot infer a schema: {exc.error.message}",
            code=ErrorCode.DATA_FORMAT_UNSUPPORTED,
        ) from None
    if not resource.schema.fields:
        raise InvalidInput(f"{path.name}: no columns found", code=ErrorCode.BAD_SCHEMA)
    descriptor: dict[str, Any] = resource.schema.to_descriptor()
    return descriptor


def check_schema(schema: Any) -> dict[str, Any]:
    """Validate a Table Schema document with frictionless; returns it unchanged."""
    import frictionless

    if not isinstance(schema, dict):
        raise InvalidInput("a Table Schema is a JSON object", code=ErrorCode.BAD_SCHEMA)
    report = frictionless.Schema.validate_descriptor(schema)
    if not report.valid:
        problems = "; ".join(e.message for e in report.errors[:3])
        raise InvalidInput(f"not a usable Table Schema: {problems}", code=ErrorCode.BAD_SCHEMA)
    if not schema.get("fields"):
        raise InvalidInput("a Table Schema needs at least one field", code=ErrorCode.BAD_SCHEMA)
    return schema


def load_schema(path: Path) -> dict[str, Any]:
    """Read and check a Table Schema file."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"{path} is not JSON: {exc}", code=ErrorCode.BAD_SCHEMA) from None
    return check_schema(doc)


@dataclass
class QualityReport:
    """What frictionless found checking a file against its schema."""

    media_type: str = "text/csv"
    rows: int = 0
    fields: list[str] = field(default_factory=list)
    nulls: dict[str, int] = field(default_factory=dict)
    error_types: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    error_count: int = 0
    truncated: bool = False
    sha256: str = ""
    bytes: int = 0
    full: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def document(self) -> dict[str, Any]:
        """The full frictionless report, without its timings (so the same file gives the same)."""
        doc: dict[str, Any] = _without_timings(self.full)
        return doc

    def report_sha256(self) -> str:
        return "0x" + hashlib.sha256(canonical(self.document())).hexdigest()

    def summary(self) -> dict[str, Any]:
        """What the signed metadata carries: counts and the full report's digest, no values."""
        return {
            "standard": STANDARD,
            "rows": self.rows,
            "fields": self.fields,
            "nulls": self.nulls,
            "errors": self.error_count,
            "error_types": dict(sorted(self.error_types.items())),
            "truncated": self.truncated,
            "bytes": self.bytes,
            "sha256": self.sha256,
            "report_sha256": self.report_sha256(),
        }


def _without_timings(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_timings(v) for k, v in value.items() if k != "seconds"}
    if isinstance(value, list):
        return [_without_timings(v) for v in value]
    return value


def validate_file(path: Path, schema: dict[str, Any]) -> QualityReport:
    """Validate every row of ``path`` against ``schema`` with frictionless (streaming).

    Memory stays flat with the file's size, except what ``unique`` and key constraints must
    remember (one entry per distinct key seen). Validation stops after :data:`MAX_ERRORS`
    errors (``truncated``); the count is then a lower bound.
    """
    import frictionless

    check_schema(schema)
    _, media_type = data_format(path)
    names = [str(f["name"]) for f in schema["fields"]]
    nulls = dict.fromkeys(names, 0)

    class NullCount(frictionless.Check):
        """Counts empty cells per field (no error: a summary figure)."""

        type = "drl-null-count"

        def validate_row(self, row: Any) -> Iterator[Any]:
            for name in row.field_names:
                if row[name] is None and name in nulls:
                    nulls[name] += 1
            return iter(())

    resource = _resource(path, frictionless.Schema.from_descriptor(schema))
    checklist = frictionless.Checklist(checks=[NullCount()])
    try:
        report = resource.validate(checklist, limit_errors=MAX_ERRORS)
    except frictionless.FrictionlessException as exc:
        raise InvalidInput(
            f"{path.name}: {exc.error.message}", code=ErrorCode.DATA_FORMAT_UNSUPPORTED
        ) from None
    full: dict[str, Any] = report.to_descriptor()
    task = report.tasks[0] if report.tasks else None
    errors = list(task.errors if task else report.errors)
    result = QualityReport(
        media_type=media_type,
        rows=int(task.stats.get("rows") or 0) if task else 0,
        fields=names,
        nulls=nulls,
        error_count=len(errors),
        truncated=len(errors) >= MAX_ERRORS,
        sha256=str(task.stats.get("sha256") or "") if task else "",
        bytes=int(task.stats.get("bytes") or 0) if task else 0,
        full=full,
    )
    for e in errors:
        result.error_types[e.type] = result.error_types.get(e.type, 0) + 1
        if len(result.errors) < MAX_REPORTED:
            # frictionless numbers rows with the header as row 1: the file's line in a CSV
            where = f"line {e.row_number}: " if getattr(e, "row_number", None) else ""
            result.errors.append(f"{where}{e.type}: {e.note or e.message}")
    return result


def check_file(
    path: Path, schema: dict[str, Any] | None = None
) -> tuple[dict[str, Any], QualityReport]:
    """The schema to register (given, or inferred) and the report of validating against it."""
    used = check_schema(schema) if schema is not None else infer_schema(path)
    return used, validate_file(path, used)

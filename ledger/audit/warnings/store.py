"""What the audit state remembers about warnings (when each was first seen, and where it went),
and the one narrow read of its records the rules need.

Two tables in the state file (created on first use, inside the state's transactions):
``warnings_seen`` keeps each warning's first-seen time by its stable key, so a warning keeps its
age across runs; ``warnings_delivered`` keeps which keys each hook (``webhook``, ``command``)
received, so each warning is delivered once.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

from ledger.audit.state import AuditState

_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS warnings_seen ("
    " key TEXT PRIMARY KEY, rule TEXT NOT NULL, first_seen TEXT NOT NULL) WITHOUT ROWID",
    "CREATE TABLE IF NOT EXISTS warnings_delivered ("
    " key TEXT NOT NULL, hook TEXT NOT NULL, delivered_at TEXT NOT NULL,"
    " PRIMARY KEY (key, hook)) WITHOUT ROWID",
)


def _db(state: AuditState) -> sqlite3.Connection:
    """The state's own connection: its tables and these commit together, in one file."""
    return state.connection


def _ensure(db: sqlite3.Connection) -> None:
    for statement in _SCHEMA:
        db.execute(statement)


def first_seen(state: AuditState, rules: Mapping[str, str], now: str) -> dict[str, str]:
    """The first-seen time of each key (``rules``: key -> rule id); new keys are seen ``now``."""
    db = _db(state)
    with state.transaction():
        _ensure(db)
        db.executemany(
            "INSERT OR IGNORE INTO warnings_seen (key, rule, first_seen) VALUES (?, ?, ?)",
            [(key, rule, now) for key, rule in rules.items()],
        )
        seen: dict[str, str] = {}
        keys = list(rules)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ", ".join("?" for _ in chunk)
            query = f"SELECT key, first_seen FROM warnings_seen WHERE key IN ({marks})"  # noqa: S608
            seen.update((str(k), str(t)) for k, t in db.execute(query, chunk))
    return seen


def delivered(state: AuditState, hook: str) -> set[str]:
    """The keys ``hook`` already received."""
    db = _db(state)
    with state.transaction():
        _ensure(db)
        rows = db.execute("SELECT key FROM warnings_delivered WHERE hook = ?", (hook,))
        return {str(key) for (key,) in rows}


def mark_delivered(state: AuditState, hook: str, keys: Iterable[str], at: str) -> None:
    """Remember that ``hook`` received ``keys``."""
    db = _db(state)
    rows: Sequence[tuple[str, str, str]] = [(key, hook, at) for key in keys]
    with state.transaction():
        _ensure(db)
        db.executemany(
            "INSERT OR IGNORE INTO warnings_delivered (key, hook, delivered_at) VALUES (?, ?, ?)",
            rows,
        )


def record_times(state: AuditState, *, from_seq: int) -> list[tuple[int, str]]:
    """``(seq, at)`` of the kept records from ``from_seq`` on, in log order (no leaf read)."""
    rows = _db(state).execute("SELECT seq, at FROM leaves WHERE seq >= ? ORDER BY seq", (from_seq,))
    return [(int(seq), str(at)) for seq, at in rows]

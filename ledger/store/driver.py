"""Statements sent straight to the database driver, for the few that every write runs.

SQLAlchemy Core spends about 60 µs of CPU on a statement beyond the driver's own 15 µs (its
cache key, parameter processing, result wrapping). A signed write runs about a dozen statements
inside the database's only write turn, and each request's look-up two more; there that
overhead was a third of a write's CPU (``scripts/bench_load.py --profile``).

A :class:`Driver` runs statements on a session's own DB-API connection, inside its transaction
(``Driver.of``): they commit or roll back with everything else the session does. For reads
outside any session, ``Database.driver()`` lends one from the pool. Statements are written with
``?`` bind marks (rewritten for psycopg); inserts are built from the models' tables and bind
values with each column's own processor, so rows are stored exactly as SQLAlchemy stores them
(SQLite's text timestamps included).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session

#: Bound values per statement: far below SQLite's 32,766 and PostgreSQL's 65,535.
MAX_PARAMETERS = 10_000
Row = tuple[Any, ...]
_DRIVER = "drl_driver"  # Session.info: (the transaction, its Driver)


class Driver:
    """A DB-API connection of ``dialect``: a session's (:meth:`of`) or a pooled one."""

    def __init__(
        self, raw: Any, dialect: Dialect, invalidate: Callable[[], object] | None = None
    ) -> None:
        self._raw = raw
        self._dialect = dialect
        self._postgresql = dialect.name == "postgresql"
        self._invalidate = invalidate

    @classmethod
    def of(cls, session: Session) -> Driver:
        """``session``'s connection, in its current transaction (one driver per transaction:
        ``Session.connection()`` alone costs more than a statement here)."""
        transaction = session.get_transaction()
        known = session.info.get(_DRIVER)
        if known is not None and transaction is not None and known[0] is transaction:
            return cast(Driver, known[1])
        connection = session.connection()
        driver = cls(
            connection.connection.driver_connection, connection.dialect, connection.invalidate
        )
        session.info[_DRIVER] = (session.get_transaction(), driver)
        return driver

    @property
    def postgresql(self) -> bool:
        return self._postgresql

    def rows(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        """Run ``sql`` (``?`` bind marks); its rows, if it returns any."""
        if self._postgresql:
            sql = _for_psycopg(sql)
        dbapi = self._dialect.loaded_dbapi
        try:
            cursor = self._raw.execute(sql, params)
            return cursor.fetchall() if cursor.description is not None else []
        except dbapi.Error as exc:
            raise self._wrapped(exc, sql) from exc

    def _wrapped(self, exc: Any, sql: str) -> BaseException:
        """``exc`` as SQLAlchemy would have raised it (``OperationalError``, ``IntegrityError``
        ...: what callers catch); a connection the server dropped is not pooled again."""
        gone = self._dialect.is_disconnect(exc, self._raw, None)
        if gone and self._invalidate is not None:
            self._invalidate()
        wrapped: BaseException = DBAPIError.instance(
            sql,
            None,  # values stay out of messages and logs
            exc,
            self._dialect.loaded_dbapi.Error,
            hide_parameters=True,
            connection_invalidated=gone,
            dialect=self._dialect,
        )
        return wrapped

    def rows_in(self, sql: str, keys: Sequence[Any], *, per: int = 500) -> list[Row]:
        """Run ``sql``, whose ``{}`` is an ``IN`` list, for ``keys`` ``per`` at a time (scalars,
        or tuples of one width for a row value such as ``(signer, nonce)``); all the rows."""
        found: list[Row] = []
        for start in range(0, len(keys), per):
            chunk = keys[start : start + per]
            width = len(chunk[0]) if isinstance(chunk[0], tuple) else 1
            values = [v for key in chunk for v in key] if width > 1 else list(chunk)
            found += self.rows(sql.format(bind_marks(len(chunk), width)), values)
        return found

    def insert(
        self,
        table: Table,
        columns: tuple[str, ...],
        rows: Sequence[Sequence[Any]],
        *,
        ignoring: tuple[str, ...] = (),
        returning: tuple[str, ...] = (),
    ) -> list[Row]:
        """Insert ``rows`` (values in ``columns``' order) in as few statements as the bound
        parameter limit allows; with ``ignoring`` (a unique key) rows that conflict on it are
        skipped. Returns the ``returning`` columns of the rows inserted, in no set order."""
        values = _bound(_bind_processors(self._dialect, table, columns), len(columns), rows)
        found: list[Row] = []
        for chunk in _chunks(values, max(1, MAX_PARAMETERS // len(columns))):
            sql = _insert_sql(table.name, columns, len(chunk), ignoring, returning)
            found += self.rows(sql, [value for row in chunk for value in row])
        return found

    def typed(self, table: Table, columns: tuple[str, ...], row: Row) -> dict[str, Any]:
        """``row``'s values of ``columns`` as SQLAlchemy would have read them (timestamps as
        timezone-aware datetimes, SQLite's 0 and 1 as booleans), by name."""
        processors = _result_processors(self._dialect, table, columns)
        return {
            name: value if process is None else process(value)
            for name, process, value in zip(columns, processors, row, strict=True)
        }


def bind_marks(count: int, width: int = 1) -> str:
    """``?, ?, ?`` for ``count`` values, or ``(?, ?), (?, ?)`` for rows of ``width``."""
    one = "?" if width == 1 else "(" + ", ".join("?" * width) + ")"
    return ", ".join([one] * count)


def _chunks(values: list[Row], size: int) -> Iterator[list[Row]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _for_psycopg(sql: str) -> str:
    # Not cached: statements vary with their number of values (a proof's node reads vary with
    # its shape), and a replace costs far less than the statement.
    return sql.replace("?", "%s")


@functools.lru_cache(maxsize=1024)
def _insert_sql(
    table: str,
    columns: tuple[str, ...],
    count: int,
    ignoring: tuple[str, ...],
    returning: tuple[str, ...],
) -> str:
    # Names come from the models' tables (``Driver.insert`` looked each column up); values are
    # bound, never formatted in.
    values = bind_marks(count, len(columns))
    sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES {values}"  # noqa: S608
    if ignoring:
        sql += f" ON CONFLICT ({', '.join(ignoring)}) DO NOTHING"
    if returning:
        sql += f" RETURNING {', '.join(returning)}"
    return sql


@functools.cache
def _result_processors(
    dialect: Dialect, table: Table, columns: tuple[str, ...]
) -> list[Callable[[Any], Any] | None]:
    return [
        table.c[name].type.dialect_impl(dialect).result_processor(dialect, None) for name in columns
    ]


@functools.cache
def _bind_processors(
    dialect: Dialect, table: Table, columns: tuple[str, ...]
) -> tuple[tuple[int, Callable[[Any], Any]], ...]:
    """The columns whose values SQLAlchemy converts before binding (by position), and how."""
    processors = [
        table.c[name].type.dialect_impl(dialect).bind_processor(dialect) for name in columns
    ]
    return tuple((i, p) for i, p in enumerate(processors) if p is not None)


def _bound(
    processors: tuple[tuple[int, Callable[[Any], Any]], ...],
    width: int,
    rows: Sequence[Sequence[Any]],
) -> list[Row]:
    """``rows`` as bound: each converted value replaced (most columns need no conversion)."""
    values: list[Row] = []
    for row in rows:
        if len(row) != width:
            raise ValueError(f"a row of {len(row)} values for {width} columns")
        if processors:
            converted = list(row)
            for i, process in processors:
                converted[i] = process(converted[i])
            values.append(tuple(converted))
        else:
            values.append(tuple(row))
    return values

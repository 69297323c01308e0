"""The broker's database: one engine for SQLite (default) or PostgreSQL, sessions, migrations.

``Database(url)`` takes a SQLAlchemy URL:

- ``sqlite:///path/broker.db`` -- a file (its folder is created). Every connection runs with
  ``journal_mode=WAL`` (readers never block the writer), ``synchronous=FULL`` (a commit
  survives power loss), ``foreign_keys=ON`` and a ``busy_timeout``. In-memory databases are
  refused: each pooled connection would see a different, empty database.
- ``postgresql+psycopg://user@host:port/name`` (``postgresql://`` means the same) -- several
  broker replicas may share it.

Reads and writes
----------------
``with db.session() as s:`` is for reads. It never commits: whatever it holds is rolled back
when the block ends.

``with db.transaction() as s:`` is for writes. It commits when the block ends normally and
rolls back when it raises, so nothing is ever half-written. On SQLite it starts with
``BEGIN IMMEDIATE``: the write lock is taken before the first read, so two writers never both
read a snapshot and then deadlock upgrading to a write (SQLite would answer "database is
locked" at once, without waiting). Writers from other processes wait up to ``busy_timeout``;
writers in this process queue on a lock first, so they do not spin in SQLite's busy handler,
and writers in this process and others (``drl serve --workers``) on a ``flock`` of
``<database>-writers``, tried again within a millisecond (SQLite's handler sleeps 1-100 ms).
A writer that cannot start within the timeout gets ``DatabaseBusy``. A ``transaction()`` inside
another in the same thread raises ``RuntimeError`` (on SQLite it would wait for itself); nest
with ``session.begin_nested()``.

Objects loaded in a transaction stay readable after it commits (``expire_on_commit=False``).

The flow log
------------
``locked_log_size(s)``, called first inside ``transaction()``, returns the log's size with its
``log_state`` row locked for this transaction: on PostgreSQL with ``SELECT ... FOR UPDATE``,
on SQLite by the ``BEGIN IMMEDIATE`` already held. Appenders in every process and replica
are thereby serialised until commit, so read-size, append, ``set_log_size(s, n)`` is safe.

Migrations
----------
``db.upgrade()`` runs the Alembic migrations shipped in ``ledger/store/migrations`` up to head
in one transaction (no ``alembic.ini`` needed). It is idempotent and safe to call from every
replica at start-up: on PostgreSQL an advisory lock serialises concurrent upgrades.
"""

from __future__ import annotations

import fcntl
import importlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any, Literal

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, func, select
from sqlalchemy.engine import URL, Connection, Engine, create_engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session

from ledger.errors import ConfigurationError
from ledger.private import private_file, private_sqlite
from ledger.protocol.codes import ErrorCode
from ledger.redact import mask_url, scrub
from ledger.store.driver import Driver
from ledger.store.errors import DatabaseBusy, DatabaseNotMigrated
from ledger.store.models import LogState

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
"""Alembic script folder shipped inside the package."""

DEFAULT_BUSY_TIMEOUT_MS = 30_000
#: Connections a SQLite engine keeps open (see _sqlite_engine).
SQLITE_POOL_SIZE = 48
#: PostgreSQL connections kept open: uvicorn runs sync routes on 40 threads, and a fetch can
#: hold a second connection for the chain sender's lock; the overflow covers bursts.
DEFAULT_POOL_SIZE = 40
DEFAULT_MAX_OVERFLOW = 8
#: Key of ``pg_advisory_xact_lock`` taken by ``upgrade`` (any fixed 64-bit number will do).
_PG_MIGRATION_LOCK = 0x44524C5F4D494752  # "DRL_MIGR"
_WRITE = "drl_write"  # Session.info flag set by transaction()
# Statements built once: SQLAlchemy reuses their cache keys and compiled forms.
# Every append runs these: sent straight to the driver (ledger.store.driver).
_LOG_SIZE = "SELECT size FROM log_state WHERE id = 1"
_LOG_SIZE_FOR_UPDATE = _LOG_SIZE + " FOR UPDATE"
_SET_LOG_SIZE = "UPDATE log_state SET size = ? WHERE id = 1"
_BEGIN = "drl_sqlite_begin"  # execution option read by the SQLite "begin" hook

Dialect = Literal["sqlite", "postgresql"]


class Database:
    """An engine plus read sessions, write transactions and migrations."""

    def __init__(
        self,
        url: str | URL,
        *,
        busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
        echo: bool = False,
        pool_size: int = DEFAULT_POOL_SIZE,
        max_overflow: int = DEFAULT_MAX_OVERFLOW,
    ) -> None:
        parsed = _normalise(_parse(url))
        self._url = parsed
        self._dialect: Dialect
        if parsed.get_backend_name() == "sqlite":
            self._dialect = "sqlite"
            self._engine = _sqlite_engine(parsed, busy_timeout_ms=busy_timeout_ms, echo=echo)
        else:
            self._dialect = "postgresql"
            _require_driver("psycopg", "psycopg[binary]")
            # Sized to the server's concurrency: connections returned to a pool that is full
            # are closed, so a pool smaller than the request threads churns a backend process
            # per request. Pre-ping replaces connections a restarted server dropped.
            self._engine = create_engine(
                parsed,
                echo=echo,
                pool_pre_ping=True,
                pool_size=pool_size,
                max_overflow=max_overflow,
            )
        # Connections of this engine begin with BEGIN IMMEDIATE on SQLite (see _sqlite_engine).
        self._write_engine = self._engine.execution_options(**{_BEGIN: "BEGIN IMMEDIATE"})
        # ... and those of :meth:`reading` with none (an empty statement: the hook emits nothing).
        self._read_engine = self._engine.execution_options(**{_BEGIN: ""})
        self._write_lock = threading.Lock() if self._dialect == "sqlite" else None
        self._writers_file = (
            _WritersFile(self.sqlite_sibling("writers")) if self._dialect == "sqlite" else None
        )
        self._busy_timeout = busy_timeout_ms / 1000
        self._local = threading.local()  # .writing: this thread is inside transaction()

    @property
    def url(self) -> URL:
        """The database URL (password hidden when rendered with ``str``)."""
        return self._url

    def sqlite_sibling(self, name: str) -> Path:
        """``<database file>-<name>``: a lock file of this SQLite database's processes."""
        if self._dialect != "sqlite" or not self._url.database:
            raise ValueError("only a SQLite database file has lock files beside it")
        return Path(f"{self._url.database}-{name}")

    @property
    def dialect(self) -> Dialect:
        """``"sqlite"`` or ``"postgresql"``."""
        return self._dialect

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine; prefer ``session()`` and ``transaction()``."""
        return self._engine

    # -- sessions ------------------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A bare connection for one Core read on the hot paths: no ORM session around it.

        A single statement: on SQLite it runs without BEGIN (it is its own snapshot; a BEGIN
        and its rollback were a tenth of a catalog read under load). What it holds is rolled
        back when the block ends, as with :meth:`session`; a busy catalog read costs about a
        third of a session's (no identity map, no ORM rows).
        """
        with self._read_engine.connect() as connection:
            yield connection

    @contextmanager
    def driver(self) -> Iterator[Driver]:
        """A pooled connection's driver (``ledger.store.driver``) for reads every request runs.

        No session and no SQLAlchemy connection around it: they cost 0.3 ms of CPU against the
        reads' 0.05 (the caller's standing and used nonces). On SQLite each statement is its
        own snapshot; on PostgreSQL the statements share a transaction but, under READ
        COMMITTED, not a snapshot: callers must not rely on two reads agreeing. The pool
        rolls back whatever it holds when the block ends.
        """
        dialect = self._engine.dialect
        try:
            pooled = self._engine.raw_connection()
        except dialect.loaded_dbapi.Error as exc:  # as Engine.connect() would raise it
            raise DBAPIError.instance(
                None, None, exc, dialect.loaded_dbapi.Error, dialect=dialect
            ) from exc
        try:
            yield Driver(pooled.driver_connection, dialect, pooled.invalidate)
        finally:
            pooled.close()

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for reads; it never commits (anything it holds is rolled back)."""
        with Session(self._engine, expire_on_commit=False) as session:
            yield session  # closing the session rolls back whatever it holds

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session for writes: committed on success, rolled back if the block raises.

        On SQLite the transaction holds the database's write lock from its first statement;
        ``DatabaseBusy`` is raised if it cannot get it within ``busy_timeout_ms``. One write
        transaction per thread at a time: opening a second inside the first raises
        ``RuntimeError`` (on SQLite it would wait for itself); use ``session.begin_nested()``.
        """
        if getattr(self._local, "writing", False):
            raise RuntimeError(
                "a transaction() is already open in this thread: nest with session.begin_nested()"
            )
        turn_held = getattr(self._local, "turn", False)
        with nullcontext() if turn_held else self._writer():
            self._local.writing = True
            try:
                with Session(self._write_engine, expire_on_commit=False) as session:
                    session.info[_WRITE] = True
                    try:
                        yield session
                        session.commit()
                    except BaseException as exc:
                        session.rollback()
                        if _is_sqlite_busy(exc):
                            raise DatabaseBusy(self._busy_timeout) from exc
                        raise
            finally:
                self._local.writing = False

    @contextmanager
    def writer_turn(self) -> Iterator[None]:
        """This thread's turn to write, held across several steps: the transactions it opens
        meanwhile take no turn of their own.

        On SQLite one writer at a time, of this process and (with ``drl serve --workers``) of
        the others, gets the turn. A batch of concurrent requests takes the turn first and only
        then collects what queued while it waited, so the requests that arrived during another
        process's transaction share the next commit instead of each waiting for a turn of its
        own (``api.coalesce``). On PostgreSQL there is no turn to take.
        """
        if getattr(self._local, "turn", False) or getattr(self._local, "writing", False):
            raise RuntimeError("this thread already holds its turn to write")
        with self._writer():
            self._local.turn = True
            try:
                yield
            finally:
                self._local.turn = False

    # -- migrations ----------------------------------------------------------------------------

    def upgrade(self, revision: str = "head") -> None:
        """Run the shipped Alembic migrations up to ``revision``, in one transaction.

        A PostgreSQL server that cannot be reached (the first connection at start-up) is a
        ``ConfigurationError`` naming the URL without its password.
        """
        try:
            connection = self._write_engine.connect()
        except OperationalError as exc:
            if self._dialect == "sqlite":
                raise
            secret = self._url.render_as_string(hide_password=False)
            raise ConfigurationError(
                f"cannot connect to the database {self.shown_url()}: {scrub(str(exc.orig), secret)}"
            ) from None  # the driver's exception is not shown: its text is scrubbed above
        with connection, self._writer():
            if self._dialect == "sqlite":
                _sqlite_upgrade(connection, revision)
            else:
                with connection.begin():
                    # One upgrader at a time; released when this transaction ends.
                    connection.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
                    command.upgrade(alembic_config(connection), revision)

    def revision(self) -> str | None:
        """The Alembic revision the database is at (``None`` before the first upgrade)."""
        with self._engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision()

    # -- lifetime ------------------------------------------------------------------------------

    def dispose(self) -> None:
        """Close every pooled connection (and the writers' lock file)."""
        self._engine.dispose()
        if self._writers_file is not None and self._write_lock is not None:
            with self._write_lock:  # not while a writer of this process holds the file
                self._writers_file.close()

    def __enter__(self) -> Database:
        return self

    def __exit__(self, *exc: object) -> None:
        self.dispose()

    def shown_url(self) -> str:
        """The URL fit for messages and logs: password hidden, query dropped."""
        return mask_url(self._url.render_as_string(hide_password=False))

    def __repr__(self) -> str:
        return f"Database({self.shown_url()!r})"

    @contextmanager
    def _writer(self) -> Iterator[None]:
        """This process's writers queue here on SQLite (as other processes do in SQLite)."""
        if self._write_lock is None:
            yield
            return
        deadline = time.monotonic() + self._busy_timeout
        if not self._write_lock.acquire(timeout=self._busy_timeout):
            raise DatabaseBusy(self._busy_timeout)
        try:
            if self._writers_file is not None:
                with self._writers_file.held(deadline, self._busy_timeout):
                    yield
            else:
                yield
        finally:
            self._write_lock.release()


class _WritersFile:
    """Writers of one SQLite file in other processes (``drl serve --workers``), queued on an
    exclusive ``flock`` of a file beside it before they ask SQLite.

    SQLite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries, so a writer that
    found another process's transaction open waited on average far longer than that
    transaction lasted (a group commit takes a few milliseconds). Here a waiter tries again
    within a millisecond. The kernel drops the lock of a process that dies; a process that
    does not take it (an old broker, ``sqlite3``) is still waited for by ``busy_timeout``.
    """

    #: The longest pause between two tries.
    MAX_PAUSE = 0.001

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None

    @contextmanager
    def held(self, deadline: float, timeout: float) -> Iterator[None]:
        fd = self._open()
        pause = 0.00005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise DatabaseBusy(timeout) from None
                time.sleep(pause)
                pause = min(pause * 2, self.MAX_PAUSE)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def _open(self) -> int:
        # Opened on first use (only writers need it), 0600 like the database beside it; held
        # open for the process's life: the lock belongs to this open file description.
        if self._fd is None:
            self._fd = os.open(private_file(self._path), os.O_RDWR | os.O_CLOEXEC)
        return self._fd


def locked_log_size(session: Session) -> int:
    """The flow log's size, its ``log_state`` row locked until ``session``'s transaction ends.

    ``session`` must come from ``Database.transaction()``. On PostgreSQL the row is read with
    ``SELECT ... FOR UPDATE``; on SQLite the ``BEGIN IMMEDIATE`` of ``transaction()`` already
    holds the only write lock. The size is read under the lock, never from a session's cache.
    """
    if not session.info.get(_WRITE):
        raise RuntimeError("locking the log needs a session from Database.transaction()")
    driver = Driver.of(session)
    found = driver.rows(_LOG_SIZE_FOR_UPDATE if driver.postgresql else _LOG_SIZE)
    size = found[0][0] if found else None
    if size is None:
        raise DatabaseNotMigrated("the log_state row is missing: run Database.upgrade() first")
    return int(size)


def set_log_size(session: Session, size: int) -> None:
    """Write the log's new size, under the lock of :func:`locked_log_size`; commits with it."""
    Driver.of(session).rows(_SET_LOG_SIZE, (size,))
    loaded = session.identity_map.get(session.identity_key(LogState, 1))
    if loaded is not None:  # the session holds the row: its copy must agree with the table
        set_committed_value(loaded, "size", size)


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic configuration for the shipped migrations, built in code.

    With ``connection``, env.py migrates through it (inside its transaction); without, set
    ``sqlalchemy.url`` on the result (``cfg.set_main_option``) before running a command.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def declared_for(dialect: str) -> Callable[[Any, str | None, str, bool, Any], bool]:
    """An Alembic ``include_object`` hook: whether the models declare an object for
    ``dialect``. An index made for one dialect only (``Index(...).ddl_if(dialect=...)``, as
    the flow log's trace indexes) is left out of comparisons with another's database."""

    def include(obj: Any, name: str | None, kind: str, reflected: bool, compare_to: Any) -> bool:
        condition = getattr(obj, "_ddl_if", None)
        wanted = getattr(condition, "dialect", None)
        return reflected or wanted is None or wanted == dialect

    return include


# -- internals -----------------------------------------------------------------------------


def _require_driver(module: str, package: str) -> None:
    """Refuse at once, in one line, when the database driver is not installed."""
    try:
        importlib.import_module(module)
    except ImportError:
        raise ConfigurationError(
            f"the database URL needs the {module} driver, which is not installed: "
            f"pip install '{package}' (a dependency of data-rights-ledger; reinstall it)",
            code=ErrorCode.DATABASE_DRIVER_MISSING,
        ) from None


def _is_sqlite_busy(exc: BaseException) -> bool:
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


def _parse(url: str | URL) -> URL:
    if isinstance(url, URL):
        return url
    try:
        return make_url(url)
    except (ArgumentError, ValueError):
        # Neither the string nor the parser's message (which may quote part of it) is shown.
        raise ConfigurationError(
            f"the database URL cannot be parsed: {mask_url(url)} "
            "(expected sqlite:///path or postgresql+psycopg://user:password@host:port/name)"
        ) from None


def _normalise(url: URL) -> URL:
    backend = url.get_backend_name()
    if backend == "postgresql":
        if url.get_driver_name() not in ("", "psycopg"):
            raise ConfigurationError(
                f"PostgreSQL is used through psycopg 3 (postgresql+psycopg://...), "
                f"not {url.drivername}"
            )
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if url.database in (None, "", ":memory:") or (url.database or "").startswith("file:"):
            raise ConfigurationError(
                "SQLite needs a file path (sqlite:///path/broker.db); in-memory and URI "
                "databases are not supported"
            )
        return url.set(database=str(Path(url.database).expanduser()))
    raise ConfigurationError(f"unsupported database {url.drivername!r}: use sqlite or postgresql")


def _sqlite_engine(url: URL, *, busy_timeout_ms: int, echo: bool) -> Engine:
    assert url.database is not None
    # Created 0600 (in a 0700 folder if it has to be made) before SQLite opens it: its -wal
    # and -shm files then get the same mode.
    private_sqlite(url.database, tighten_dir=False)
    # As many pooled connections as request threads (anyio's 40 plus the broker's own): a
    # smaller pool opened and closed an overflow connection (WAL and pragmas included) per
    # request under load.
    engine = create_engine(
        url,
        echo=echo,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        pool_size=SQLITE_POOL_SIZE,
        max_overflow=16,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # SQLAlchemy, not the sqlite3 module, emits BEGIN (the hook below): the module's
        # implicit transactions start late (not before SELECT) and cannot be IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
            _enable_wal(cursor, busy_timeout_ms / 1000)
            cursor.execute("PRAGMA synchronous = FULL")
            cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        begin = connection.get_execution_options().get(_BEGIN, "BEGIN")
        if begin:
            connection.exec_driver_sql(begin)

    return engine


def _enable_wal(cursor: Any, timeout: float) -> None:
    """Switch a database to WAL, retrying while another connection holds it.

    Changing the journal mode of a brand-new file does not go through SQLite's busy handler:
    two processes opening the same new file at once get "database is locked" immediately.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            mode = cursor.execute("PRAGMA journal_mode = WAL").fetchone()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)
            continue
        if mode and str(mode[0]).lower() == "wal":
            return
        if time.monotonic() > deadline:
            raise DatabaseBusy(timeout)
        time.sleep(0.02)


def _sqlite_upgrade(connection: Connection, revision: str) -> None:
    """Migrate with foreign keys off, checking them before commit (SQLite's own procedure).

    Batch migrations rebuild tables (copy, drop, rename); with enforcement on, dropping a
    referenced table would fail or cascade. The pragma only works outside a transaction.
    """
    raw = connection.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        with connection.begin():
            command.upgrade(alembic_config(connection), revision)
            broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
            if broken:
                raise DatabaseNotMigrated(
                    f"the migration left rows with dangling foreign keys: {broken[:5]}"
                )
    finally:
        raw.execute("PRAGMA foreign_keys = ON")

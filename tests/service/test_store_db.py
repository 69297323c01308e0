"""The broker's database: migrations, transactions, concurrent writers and the log lock.

Every database test runs on SQLite and on a throwaway PostgreSQL cluster (tests/support/pg.py).
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import Session, SQLModel, func, select

import ledger.store
from ledger.errors import ConfigurationError
from ledger.store.db import (
    Database,
    alembic_config,
    declared_for,
    locked_log_size,
    set_log_size,
)
from ledger.store.errors import DatabaseBusy, DatabaseNotMigrated
from ledger.store.models import Dataset, LogRecord, LogState, Member, UsedNonce, WrappedKey
from tests.support import pg

ROOT = Path(__file__).resolve().parents[2]
HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def schema_differences(database: Database) -> list[object]:
    with database.engine.connect() as connection:
        include = declared_for(connection.dialect.name)
        opts = {"compare_type": True, "include_object": include}
        context = MigrationContext.configure(connection, opts=opts)
        return list(compare_metadata(context, SQLModel.metadata))


def member(address: str, log_seq: int = 0) -> Member:
    return Member(
        address=address,
        kind="department",
        name="Statistics Bureau",
        key_suite=1,
        encryption_key=b"\x01" * 32,
        onboarded_tx="0x" + "ab" * 32,
        log_seq=log_seq,
    )


# -- migrations ----------------------------------------------------------------------------


def test_upgrade_creates_every_model_table_at_head(db: Database) -> None:
    tables = set(sa.inspect(db.engine).get_table_names())

    assert set(SQLModel.metadata.tables) <= tables
    assert "alembic_version" in tables
    assert db.revision() == HEAD


def test_migrated_schema_matches_the_models(db: Database) -> None:
    assert schema_differences(db) == []


def test_schema_comparison_notices_a_missing_index(db: Database) -> None:
    with db.transaction() as session:
        session.connection().execute(sa.text("DROP INDEX ix_grants_grantee"))

    differences = schema_differences(db)

    assert [d[0] for d in differences if isinstance(d, tuple)] == ["add_index"]


def test_upgrade_is_idempotent_and_creates_the_log_state_row(db: Database) -> None:
    db.upgrade()
    db.upgrade()

    assert db.revision() == HEAD
    with db.session() as session:
        states = session.exec(select(LogState)).all()
    assert [(s.id, s.size) for s in states] == [(1, 0)]
    assert schema_differences(db) == []


def test_concurrent_upgrades_from_two_replicas_both_succeed(database_url: str) -> None:
    replicas = [Database(database_url), Database(database_url)]
    barrier = threading.Barrier(len(replicas))

    def start(replica: Database) -> None:
        barrier.wait()
        replica.upgrade()

    try:
        with ThreadPoolExecutor(len(replicas)) as pool:
            list(pool.map(start, replicas))
        assert replicas[0].revision() == HEAD
        with replicas[1].session() as session:
            assert session.exec(select(func.count()).select_from(LogState)).one() == 1
    finally:
        for replica in replicas:
            replica.dispose()


def test_migrations_ship_in_the_package_as_one_line_of_history() -> None:
    config = alembic_config()

    assert config.config_file_name is None  # no alembic.ini needed at run time
    script_dir = Path(config.get_main_option("script_location") or "")
    assert script_dir.parent == Path(ledger.store.__file__).parent
    assert (script_dir / "env.py").is_file()
    assert (script_dir / "script.py.mako").is_file()
    scripts = ScriptDirectory.from_config(config)
    assert scripts.get_heads() == [HEAD]  # no branches to merge
    assert scripts.get_base() == "0001"


# -- transactions --------------------------------------------------------------------------


def test_committed_transaction_is_visible_to_later_sessions(db: Database) -> None:
    with db.transaction() as session:
        session.add(member("0x" + "11" * 20))

    with db.session() as session:
        found = session.get(Member, "0x" + "11" * 20)
    assert found is not None
    assert found.name == "Statistics Bureau"


def run_in_transaction(db: Database, work: Callable[[Session], object]) -> None:
    with db.transaction() as session:
        work(session)


def test_failing_transaction_leaves_no_row(db: Database) -> None:
    def onboard_then_fail(session: Session) -> None:
        session.add(member("0x" + "22" * 20))
        session.add(LogRecord(seq=0, action="onboard", actor="0x" + "22" * 20, leaf=b"leaf"))
        set_log_size(session, locked_log_size(session) + 1)
        session.flush()  # the rows reach the database before the failure
        raise RuntimeError("relay failed")

    with pytest.raises(RuntimeError, match="relay failed"):
        run_in_transaction(db, onboard_then_fail)

    with db.session() as session:
        assert session.get(Member, "0x" + "22" * 20) is None
        assert session.exec(select(LogRecord)).all() == []
        assert session.exec(select(LogState.size)).one() == 0


def test_read_session_never_commits(db: Database) -> None:
    with db.session() as session:
        session.add(member("0x" + "33" * 20))
        session.flush()

    with db.session() as session:
        assert session.get(Member, "0x" + "33" * 20) is None


def test_foreign_keys_are_enforced_and_the_violation_rolls_back(db: Database) -> None:
    def wrap_for_a_missing_dataset(session: Session) -> None:
        session.add(member("0x" + "44" * 20))
        session.flush()
        session.add(WrappedKey(dataset_id=404, recipient="0x" + "44" * 20, wrapped=b"k"))
        session.flush()

    with pytest.raises(sa.exc.IntegrityError):
        run_in_transaction(db, wrap_for_a_missing_dataset)

    with db.session() as session:
        assert session.get(Member, "0x" + "44" * 20) is None
        assert session.exec(select(Dataset)).all() == []


def test_sqlite_connections_use_wal_full_sync_foreign_keys_and_a_busy_timeout(
    tmp_path: Path,
) -> None:
    db = Database(f"sqlite:///{tmp_path / 'nested' / 'broker.db'}", busy_timeout_ms=1234)
    try:
        with db.session() as session:
            pragma = session.connection().exec_driver_sql
            assert pragma("PRAGMA journal_mode").scalar() == "wal"
            assert pragma("PRAGMA synchronous").scalar() == 2  # FULL
            assert pragma("PRAGMA foreign_keys").scalar() == 1
            assert pragma("PRAGMA busy_timeout").scalar() == 1234
        assert (tmp_path / "nested" / "broker.db").is_file()
    finally:
        db.dispose()


def test_eight_sqlite_writers_never_see_database_is_locked(tmp_path: Path) -> None:
    """Eight threads, each with its own Database (as separate processes would have), each
    doing read-then-write transactions: BEGIN IMMEDIATE queues them instead of failing."""
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    Database(url).upgrade()
    writers, rounds = 8, 25
    barrier = threading.Barrier(writers)

    def write(worker: int) -> int:
        db = Database(url)
        try:
            barrier.wait()
            for i in range(rounds):
                with db.transaction() as session:
                    seen = session.exec(select(func.count()).select_from(UsedNonce)).one()
                    session.add(UsedNonce(signer=f"0x{worker:040x}", nonce=f"{i}:{seen}"))
            return rounds
        finally:
            db.dispose()

    with ThreadPoolExecutor(writers) as pool:
        committed = sum(pool.map(write, range(writers)))

    db = Database(url)
    with db.session() as session:
        nonces = session.exec(select(UsedNonce.nonce)).all()
    db.dispose()
    assert committed == len(nonces) == writers * rounds
    # Every transaction saw all the ones committed before it: the counts are 0..199.
    assert sorted(int(n.split(":")[1]) for n in nonces) == list(range(writers * rounds))


def test_threads_sharing_one_database_all_commit(db: Database) -> None:
    writers, rounds = 8, 10

    def write(worker: int) -> None:
        for i in range(rounds):
            with db.transaction() as session:
                session.add(UsedNonce(signer=f"0x{worker:040x}", nonce=str(i)))

    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(write, range(writers)))

    with db.session() as session:
        assert session.exec(select(func.count()).select_from(UsedNonce)).one() == 80


def test_a_transaction_inside_another_is_refused_and_the_outer_still_commits(
    db: Database,
) -> None:
    def open_another(_: Session) -> None:
        with db.transaction():
            pass

    with db.transaction() as session:
        session.add(member("0x" + "55" * 20))
        with pytest.raises(RuntimeError, match="already open"):
            open_another(session)

    with db.session() as session:
        assert session.get(Member, "0x" + "55" * 20) is not None


def test_a_writer_locked_out_past_the_busy_timeout_gets_database_busy(tmp_path: Path) -> None:
    path = tmp_path / "broker.db"
    Database(f"sqlite:///{path}").upgrade()
    db = Database(f"sqlite:///{path}", busy_timeout_ms=200)
    other = sqlite3.connect(path, isolation_level=None)  # another process, as far as SQLite knows
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseBusy) as info:
            run_in_transaction(db, lambda session: session.add(member("0x" + "66" * 20)))
    finally:
        other.execute("ROLLBACK")
        other.close()

    assert info.value.code == "database_busy"
    assert isinstance(info.value, TimeoutError)
    with db.session() as session:
        assert session.get(Member, "0x" + "66" * 20) is None
    db.dispose()


# -- the flow-log lock ---------------------------------------------------------------------

APPENDER = """
import sys, time
from ledger.store.db import Database, locked_log_size, set_log_size
from ledger.store.models import LogRecord

url, name, rounds = sys.argv[1], sys.argv[2], int(sys.argv[3])
db = Database(url)
print("ready", flush=True)
sys.stdin.readline()  # start together
for _ in range(rounds):
    with db.transaction() as session:
        seq = locked_log_size(session)
        time.sleep(0.001)  # widen the read-increment-write window
        session.add(LogRecord(seq=seq, action="append", actor=name, leaf=seq.to_bytes(8, "big")))
        set_log_size(session, seq + 1)
db.dispose()
"""


def test_log_lock_serialises_appenders_in_two_processes(db: Database) -> None:
    url = db.url.render_as_string(hide_password=False)
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", APPENDER, url, name, "50"],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in ("replica-a", "replica-b")
    ]
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready", process.stderr
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.close()
    for process in processes:
        assert process.wait(timeout=60) == 0, process.stderr.read() if process.stderr else ""

    with db.session() as session:
        size = session.exec(select(LogState.size)).one()
        records = session.exec(select(LogRecord.seq, LogRecord.actor)).all()
    assert size == 100
    assert sorted(seq for seq, _ in records) == list(range(100))
    assert {actor for _, actor in records} == {"replica-a", "replica-b"}


def test_log_lock_serialises_appender_threads(db: Database) -> None:
    replicas = [Database(db.url), Database(db.url)]
    barrier = threading.Barrier(2)

    def append(replica: Database) -> None:
        barrier.wait()
        for _ in range(50):
            with replica.transaction() as session:
                size = locked_log_size(session)
                session.add(LogRecord(seq=size, action="append", actor="t", leaf=b"x"))
                set_log_size(session, size + 1)

    try:
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(append, replicas))
    finally:
        for replica in replicas:
            replica.dispose()

    with db.session() as session:
        assert session.exec(select(LogState.size)).one() == 100
        assert session.exec(select(func.count()).select_from(LogRecord)).one() == 100


def test_log_lock_returns_the_committed_size_not_a_cached_one(db: Database) -> None:
    with db.transaction() as session:
        cached = session.get(LogState, 1)  # the session holds the row from now on
        assert cached is not None
        set_log_size(session, locked_log_size(session) + 7)
        assert cached.size == 7  # kept in step with the table

    with db.transaction() as session:
        assert session.get(LogState, 1) is not None
        assert locked_log_size(session) == 7


def test_log_lock_outside_a_write_transaction_is_refused(db: Database) -> None:
    with db.session() as session, pytest.raises(RuntimeError, match="transaction"):
        locked_log_size(session)


def test_log_lock_without_the_state_row_says_to_migrate(db: Database) -> None:
    with db.transaction() as session:
        session.connection().execute(sa.text("DELETE FROM log_state"))

    with pytest.raises(DatabaseNotMigrated) as info:
        run_in_transaction(db, locked_log_size)
    assert info.value.code == "database_not_migrated"


# -- configuration -------------------------------------------------------------------------


@pytest.mark.parametrize(("ci", "outcome"), [("", "skip"), ("true", "fail")])
def test_missing_postgresql_skips_locally_and_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, ci: str, outcome: str
) -> None:
    monkeypatch.setattr(pg, "postgres_bin_dir", lambda: None)
    monkeypatch.setenv("CI", ci)

    expected = pytest.skip.Exception if outcome == "skip" else pytest.fail.Exception
    with pytest.raises(expected, match="apt-get install -y postgresql"):
        pg.require_postgres()


@pytest.mark.parametrize(
    "url", ["sqlite://", "sqlite:///:memory:", "mysql+pymysql://u@localhost/db"]
)
def test_unsupported_databases_are_refused(url: str) -> None:
    with pytest.raises(ConfigurationError):
        Database(url)


def test_plain_postgresql_urls_use_psycopg() -> None:
    db = Database("postgresql://broker:secret@db.example:5432/ledger")

    assert db.dialect == "postgresql"
    assert db.url.drivername == "postgresql+psycopg"
    assert "secret" not in repr(db)


# -- writers in other processes (SQLite) -----------------------------------------------------

#: Holds a write transaction in another process from each "hold" line on stdin to the next
#: line; prints when it holds and the monotonic time (system-wide on Linux) it let go.
HOLDER = """
import sys, time
from ledger.store.db import Database
from ledger.store.models import UsedNonce

db = Database(sys.argv[1])
for turn, _command in enumerate(sys.stdin):
    with db.transaction() as session:
        session.add(UsedNonce(signer="0x" + "ee" * 20, nonce=f"other {turn}"))
        session.flush()
        print("holding", flush=True)
        sys.stdin.readline()
    print(time.monotonic(), flush=True)
db.dispose()
"""


class OtherWriter:
    """A writer in another process that opens a transaction when told and keeps it open."""

    def __init__(self, url: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", HOLDER, url],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def _say(self, line: str) -> str:
        assert self.process.stdin is not None
        assert self.process.stdout is not None
        self.process.stdin.write(line)
        self.process.stdin.flush()
        answer = self.process.stdout.readline()
        assert answer, self.process.stderr.read() if self.process.stderr else "it exited"
        return answer.strip()

    def hold(self) -> None:
        assert self._say("hold\n") == "holding"

    def release(self) -> float:
        """Commit; returns when the other process had let go of the lock."""
        return float(self._say("go\n"))

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        assert self.process.wait(timeout=30) == 0, (
            self.process.stderr.read() if self.process.stderr else ""
        )


def test_a_writer_turn_spans_transactions_and_other_threads_wait_for_it(
    sqlite_url: str,
) -> None:
    """A batch takes its turn to write, then collects and commits within it: the transactions
    it opens take no turn of their own, and another thread's writer waits until it ends."""
    db = Database(sqlite_url)
    other_started, other_done = threading.Event(), threading.Event()

    def other_writer() -> None:
        other_started.set()
        with db.transaction() as session:
            session.add(UsedNonce(signer="0x" + "99" * 20, nonce="other"))
        other_done.set()

    try:
        with db.writer_turn():
            with db.transaction() as session:
                session.add(UsedNonce(signer="0x" + "88" * 20, nonce="first"))
            thread = threading.Thread(target=other_writer)
            thread.start()
            assert other_started.wait(5)
            assert not other_done.wait(0.2)  # waiting for the turn
            with db.transaction() as session:  # a second transaction in the same turn
                session.add(UsedNonce(signer="0x" + "88" * 20, nonce="second"))
            with pytest.raises(RuntimeError, match="already holds its turn"), db.writer_turn():
                pass
        thread.join(5)
        assert other_done.is_set()
        with db.session() as session:
            assert session.exec(select(func.count()).select_from(UsedNonce)).one() == 3
    finally:
        db.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'broker.db'}"
    with Database(url) as db:
        db.upgrade()
    return url


def test_the_writers_lock_file_beside_a_sqlite_database_is_private(tmp_path: Path) -> None:
    path = tmp_path / "broker.db"
    db = Database(f"sqlite:///{path}")
    try:
        db.upgrade()
        with db.transaction() as session:
            session.add(member("0x" + "77" * 20))
    finally:
        db.dispose()

    assert (tmp_path / "broker.db-writers").stat().st_mode & 0o777 == 0o600


def test_a_writer_queued_behind_another_process_starts_within_milliseconds_of_its_commit(
    sqlite_url: str,
) -> None:
    """SQLite's busy handler alone retries 228 ms, 328 ms, 428 ms ... after the first try, so a
    writer let go at 350 ms would start some 80 ms late; the flock is polled every 1 ms."""
    db = Database(sqlite_url)
    run_in_transaction(db, lambda session: session.connection())  # its connection is pooled
    other = OtherWriter(sqlite_url)
    delays: list[float] = []

    def write(turn: int, started: list[float]) -> None:
        with db.transaction() as session:
            session.connection()  # BEGIN IMMEDIATE: SQLite's write lock is ours
            started.append(time.monotonic())
            session.add(UsedNonce(signer="0x" + "ff" * 20, nonce=str(turn)))

    try:
        for turn in range(3):
            other.hold()
            started: list[float] = []
            writer = threading.Thread(target=write, args=(turn, started))
            writer.start()
            writer.join(timeout=0.35)
            assert writer.is_alive(), "our writer did not wait for the other process"
            released = other.release()
            writer.join(timeout=10)
            assert started, "our writer never started"
            delays.append(started[0] - released)
    finally:
        other.stop()
        db.dispose()

    assert max(delays) < 0.09, delays  # SQLite's own handler: 100 ms steps by then
    with Database(sqlite_url) as check, check.session() as session:
        nonces = session.exec(select(UsedNonce.nonce)).all()
    assert sorted(nonces) == ["0", "1", "2", "other 0", "other 1", "other 2"]


def test_a_writer_held_up_by_another_process_past_the_busy_timeout_writes_nothing(
    sqlite_url: str,
) -> None:
    db = Database(sqlite_url, busy_timeout_ms=300)
    other = OtherWriter(sqlite_url)
    try:
        other.hold()
        started = time.monotonic()
        with pytest.raises(DatabaseBusy):
            run_in_transaction(db, lambda session: session.add(member("0x" + "88" * 20)))
        waited = time.monotonic() - started
        other.release()
    finally:
        other.stop()

    assert 0.25 < waited < 1.0  # the timeout once, not once for the lock and again in SQLite
    with db.session() as session:
        assert session.get(Member, "0x" + "88" * 20) is None
    db.dispose()

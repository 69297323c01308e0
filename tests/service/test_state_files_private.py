"""Nothing the broker writes under DRL_HOME is readable by other local users (issue 9).

broker.db, its -wal/-shm, chain.sqlite and its -wal hold request purposes, deny reasons and
member names: every folder is 0700, every file 0600 (blobs are read-only: 0400).
"""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledger.broker import open_broker
from ledger.client.member import MemberKeys
from ledger.crypto import generate_keypair
from ledger.keys import load_account
from ledger.private import private_dir, private_sqlite
from ledger.settings import Settings
from ledger.store.db import Database
from tests.support import kit

PASSPHRASE = "state-files-test-passphrase"


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """The usual default umask, which leaves new files group- and world-readable."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def modes(home: Path) -> dict[str, int]:
    found = {".": stat.S_IMODE(home.stat().st_mode)}
    for path in home.rglob("*"):
        found[str(path.relative_to(home))] = stat.S_IMODE(path.lstat().st_mode)
    return found


def assert_private(home: Path) -> None:
    wrong = {}
    for name, mode in modes(home).items():
        path = home / name
        if path.is_dir():
            expected = 0o700
        elif path.parent.parent.name == "blobs":  # blobs/<shard>/<sha256>: read-only
            expected = 0o400
        else:
            expected = 0o600
        if mode != expected:
            wrong[name] = oct(mode)
    assert not wrong, wrong


def test_a_broker_home_is_private_after_a_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DRL_KDF_FAST", "1")
    home = tmp_path / "home"
    settings = Settings(home=home, chain_url=None, database_url=None, anchor_every_seconds=3600)
    broker = open_broker(settings, PASSPHRASE)
    try:
        admin = load_account(settings.admin_key_path, PASSPHRASE)
        core = kit.Broker(
            ledger=broker.ledger,
            root=settings.broker_dir,
            operator=MemberKeys(account=admin, hpke=generate_keypair()[0]),
            broker_key=broker.opened.chain.account,
        )
        owner = kit.onboard(core, "department", "District Planning Office")
        work = tmp_path / "work"
        work.mkdir()
        kit.register(core, owner, kit.small_csv(work / "rows.csv"), workdir=work)
        names = set(modes(home))
        for name in ("broker/broker.db-wal", "broker/broker.db-shm", "broker/chain.sqlite-wal"):
            assert name in names  # the side files exist while the broker runs ...
        assert_private(home)  # ... and are as private as everything else
    finally:
        broker.close()
    assert_private(home)


def test_files_from_an_older_version_are_tightened_on_open(tmp_path: Path) -> None:
    folder = tmp_path / "old"
    folder.mkdir(mode=0o755)
    db_file = folder / "broker.db"
    sqlite3.connect(db_file).execute("PRAGMA journal_mode = WAL").close()
    (folder / "broker.db-wal").write_bytes(b"")
    for path in (folder, db_file, folder / "broker.db-wal"):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    private_sqlite(db_file)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(db_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((folder / "broker.db-wal").stat().st_mode) == 0o600


def test_a_database_url_elsewhere_leaves_an_existing_folder_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    db = Database(f"sqlite:///{shared / 'new' / 'broker.db'}")
    try:
        db.upgrade()
        assert stat.S_IMODE(shared.stat().st_mode) == 0o755  # not ours: untouched
        assert stat.S_IMODE((shared / "new").stat().st_mode) == 0o700  # made here: private
        for path in (shared / "new").iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    finally:
        db.dispose()


def test_private_dir_makes_every_missing_parent_private(tmp_path: Path) -> None:
    made = private_dir(tmp_path / "a" / "b" / "c")
    assert made.is_dir()
    for path in (tmp_path / "a", tmp_path / "a" / "b", made):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700

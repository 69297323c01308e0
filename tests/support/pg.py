"""A throwaway PostgreSQL cluster for tests.

``throwaway_cluster()`` starts a private cluster and removes it afterwards:

1. find ``initdb`` and ``pg_ctl``: ``$DRL_PG_BIN`` if set, else the newest
   ``/usr/lib/postgresql/*/bin`` (Debian keeps them off PATH), else PATH;
2. make a temporary folder; when running as root, hand it to the ``postgres`` user and run
   every server command through ``runuser -u postgres --`` (``initdb`` refuses root);
3. ``initdb -D DIR/data -A trust -U postgres -E UTF8 --no-sync``;
4. ``pg_ctl -D DIR/data -l DIR/server.log -w -o "-p PORT -k DIR -c listen_addresses=127.0.0.1
   -c fsync=off ..." start`` on a free loopback port (retried on another port if it is taken);
5. ``CREATE DATABASE drl_test``; the cluster's ``url`` is
   ``postgresql+psycopg://postgres@127.0.0.1:PORT/drl_test``;
6. at exit ``pg_ctl -m immediate stop`` and the folder is deleted.

``fsync=off`` and friends only make a test cluster fast; they are never a production setting.

Pytest fixtures (import them into a test module, or into conftest.py):

- ``pg_cluster`` (session): the running cluster, started once per test session however many
  modules (or conftest) import the fixture;
- ``pg_url`` (module): the URL of a fresh, empty database for the module;
- ``database_url`` (function, parametrised ``sqlite`` / ``postgresql``): a fresh, empty
  database for one test on each engine (a SQLite file under ``tmp_path``, or a new schema in
  the module's PostgreSQL database, see ``fresh_schema``).

When the binaries are missing the fixtures skip with the reason, except under CI
(``CI=true``), where they fail: CI installs PostgreSQL (``.ci/run``), so missing binaries there
are a broken pipeline, not an optional feature.
"""

from __future__ import annotations

import itertools
import os
import pwd
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from ledger.store.db import Database
from tests.support.net import free_port

# Import this file as ``pg`` or as ``tests.support.pg``: one module, one session cluster.
sys.modules.setdefault("pg", sys.modules[__name__])
sys.modules.setdefault("tests.support.pg", sys.modules[__name__])

DATABASE = "drl_test"
SUPERUSER = "postgres"
START_TIMEOUT_SECONDS = 30
_SERVER_OPTIONS = (
    "-c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off "
    "-c full_page_writes=off -c max_connections=100"
)


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", path.parent.parent.name)) or (0,)


def postgres_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or ``None`` when PostgreSQL is absent."""
    override = os.environ.get("DRL_PG_BIN")
    candidates: list[Path] = []
    if override:
        candidates.append(Path(override))
    candidates += [
        path.parent
        for path in sorted(
            Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=_version_key, reverse=True
        )
    ]
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).parent)
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _run_as() -> list[str]:
    """Command prefix that runs the server tools as a non-root user."""
    if os.geteuid() != 0:
        return []
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root, but `runuser` is missing to drop to `postgres`")
    return [runuser, "-u", SUPERUSER, "--"]


def postgres_available() -> bool:
    """Whether a throwaway cluster can be started here (binaries, and a user to run them)."""
    if postgres_bin_dir() is None:
        return False
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            return False
        return shutil.which("runuser") is not None
    return True


def unavailable_reason() -> str:
    return (
        "PostgreSQL is not installed (no initdb/pg_ctl under /usr/lib/postgresql/*/bin, "
        "$DRL_PG_BIN or PATH, or no `postgres` user to run them as root): "
        "`apt-get install -y postgresql` to run these tests"
    )


def require_postgres() -> None:
    """Skip the calling test without PostgreSQL -- or fail it under CI (``CI=true``)."""
    if postgres_available():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI must run the PostgreSQL tests: {unavailable_reason()}", pytrace=False)
    pytest.skip(unavailable_reason())


@dataclass
class Cluster:
    """A running throwaway cluster (superuser ``postgres``, trust auth on 127.0.0.1)."""

    bin_dir: Path
    root: Path
    port: int

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def log_file(self) -> Path:
        return self.root / "server.log"

    def url(self, database: str = DATABASE) -> str:
        """SQLAlchemy URL of ``database`` on this cluster."""
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        """libpq connection string (for psycopg directly)."""
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database}"

    def create_database(self, name: str) -> str:
        """Create an empty database and return its SQLAlchemy URL."""
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ValueError(f"not a plain database name: {name!r}")
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _tool(cluster_bin: Path, name: str, *args: str) -> list[str]:
    return [*_run_as(), str(cluster_bin / name), *args]


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """Start a private cluster with a ``drl_test`` database; stop and delete it afterwards."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None or not postgres_available():
        raise RuntimeError(unavailable_reason())
    # Short path: the server's Unix socket lives here too (sun_path is ~107 bytes).
    root = Path(tempfile.mkdtemp(prefix="drl-pg-"))
    data = root / "data"
    try:
        if os.geteuid() == 0:
            account = pwd.getpwnam(SUPERUSER)
            os.chown(root, account.pw_uid, account.pw_gid)
        root.chmod(0o700)
        initdb = subprocess.run(
            [
                *_tool(bin_dir, "initdb", "-D", str(data), "-A", "trust", "-U", SUPERUSER),
                *("-E", "UTF8", "--locale=C", "--no-sync"),
            ],
            capture_output=True,
            text=True,
            cwd=root,
            check=False,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}")
        cluster: Cluster | None = None
        errors: list[str] = []
        for _attempt in range(3):  # a free port can be taken between probing and binding
            port = free_port()
            start = subprocess.run(
                [
                    *_tool(bin_dir, "pg_ctl", "-D", str(data), "-l", str(root / "server.log")),
                    *("-w", "-t", str(START_TIMEOUT_SECONDS)),
                    *("-o", f"-p {port} -k {root} {_SERVER_OPTIONS}", "start"),
                ],
                capture_output=True,
                text=True,
                cwd=root,
                check=False,
            )
            if start.returncode == 0:
                cluster = Cluster(bin_dir=bin_dir, root=root, port=port)
                break
            errors.append(start.stderr)
        if cluster is None:
            log = (root / "server.log").read_text(errors="replace")
            raise RuntimeError(f"PostgreSQL did not start: {errors}\n{log}")
        cluster.create_database(DATABASE)
        yield cluster
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _tool(bin_dir, "pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"),
                capture_output=True,
                check=False,
                cwd="/",
            )
        shutil.rmtree(root, ignore_errors=True)


# -- one cluster per test session ------------------------------------------------------------


class _SharedCluster:
    """Reference-counted cluster: fixtures imported in several places still start one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._manager: AbstractContextManager[Cluster] | None = None
        self._cluster: Cluster | None = None
        self._users = 0

    def acquire(self) -> Cluster:
        with self._lock:
            if self._cluster is None:
                manager = throwaway_cluster()
                self._cluster = manager.__enter__()
                self._manager = manager
            self._users += 1
            return self._cluster

    def release(self) -> None:
        with self._lock:
            self._users -= 1
            if self._users == 0 and self._manager is not None:
                manager, self._manager, self._cluster = self._manager, None, None
                manager.__exit__(None, None, None)


_shared = _SharedCluster()
_names = itertools.count(1)


def fresh_database(cluster: Cluster, prefix: str = "drl_t") -> str:
    """Create a new, empty database with a unique name; returns its URL."""
    return cluster.create_database(f"{prefix}_{os.getpid()}_{next(_names)}")


def fresh_schema(database_url: str, prefix: str = "t") -> str:
    """A new, empty schema in the database at ``database_url``; returns a URL that uses it.

    The URL sets the connection's ``search_path`` to the schema, so everything (tables,
    ``alembic_version``, reflection) happens inside it: an isolated database for one test at
    the cost of a ``CREATE SCHEMA`` (a ``CREATE DATABASE`` copies a template: ~0.3 s).
    """
    url = make_url(database_url)
    name = f"{prefix}_{next(_names)}"
    conninfo = f"host={url.host} port={url.port} user={url.username} dbname={url.database}"
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    return url.update_query_dict({"options": f"-csearch_path={name}"}).render_as_string(
        hide_password=False
    )


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """The session's throwaway PostgreSQL cluster (skips, or fails under CI, without one)."""
    require_postgres()
    cluster = _shared.acquire()
    try:
        yield cluster
    finally:
        _shared.release()


@pytest.fixture(scope="module")
def pg_url(pg_cluster: Cluster) -> str:
    """URL of a fresh, empty database for the requesting test module."""
    return fresh_database(pg_cluster)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """URL of a fresh, empty database for one test: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'broker.db'}"
    return fresh_schema(request.getfixturevalue("pg_url"))


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """A migrated :class:`Database` on ``database_url`` (SQLite and PostgreSQL)."""
    database = Database(database_url)
    database.upgrade()
    yield database
    database.dispose()

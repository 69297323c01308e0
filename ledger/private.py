"""State on disk readable by its owner only: folders 0700, files 0600.

The broker's database and chain file hold request purposes, deny reasons and member names;
nothing under ``DRL_HOME`` is for other local users. Modes are set explicitly (``mkdir`` and
``os.open`` with a mode, then ``chmod``), never by changing the process umask, which is global
to every thread.

SQLite creates a database's ``-wal``, ``-shm`` and ``-journal`` files with the permissions of
the database file itself (unix VFS), so pre-creating the database 0600 before SQLite opens it
keeps its side files 0600 as well; files left by an older version are tightened on open.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600
SQLITE_SIDE_FILES = ("-wal", "-shm", "-journal")


def private_dir(path: Path | str, *, tighten: bool = True) -> Path:
    """Create ``path`` and its missing parents as 0700 folders; return it.

    Folders that already existed are left alone, except ``path`` itself when ``tighten``
    (a folder this program owns, made group- or world-readable by an older version).
    """
    path = Path(path).expanduser()
    missing: list[Path] = []
    current = path
    while not current.exists() and current != current.parent:
        missing.append(current)
        current = current.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            continue  # made concurrently: not ours to change
        _chmod(directory, PRIVATE_DIR)  # mkdir's mode is masked by the umask
    if tighten and path not in missing:
        _tighten(path)
    return path


def private_file(path: Path | str) -> Path:
    """Create ``path`` empty with mode 0600 if it does not exist, else tighten it to 0600."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_FILE)
    except FileExistsError:
        _tighten(path)
    else:
        try:
            os.fchmod(fd, PRIVATE_FILE)  # the umask may have removed bits; set exactly 0600
        finally:
            os.close(fd)
    return path


def private_sqlite(path: Path | str, *, tighten_dir: bool = True) -> Path:
    """Prepare a SQLite database file (and its folder) before SQLite first opens it.

    The file is pre-created 0600 (an empty file is a new, empty database to SQLite), so the
    ``-wal``/``-shm`` files SQLite creates next to it get 0600 too; side files left by an
    older version are tightened.
    """
    path = Path(path).expanduser()
    private_dir(path.parent, tighten=tighten_dir)
    private_file(path)
    for suffix in SQLITE_SIDE_FILES:
        side = path.with_name(path.name + suffix)
        if side.exists():
            _tighten(side)
    return path


def _tighten(path: Path) -> None:
    """Remove group and other bits from an existing path (keeping the owner's)."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        current = stat.S_IMODE(os.stat(path).st_mode)
        if current & 0o077:
            os.chmod(path, current & 0o700)


def _chmod(path: Path, mode: int) -> None:
    with contextlib.suppress(FileNotFoundError, PermissionError):
        os.chmod(path, mode)

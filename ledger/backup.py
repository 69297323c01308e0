"""Back up and restore a broker on the embedded defaults (one machine), checked end to end.

A backup is a folder: consistent copies of the two SQLite databases (the chain file and the
index, taken with SQLite's online backup API, WAL included), the deployment record, the BROKER
keystore (still encrypted under its passphrase), every ciphertext blob, and ``drl-backup.json``
naming each file with its SHA-256 and size. The broker must be stopped: the embedded chain
holds its file exclusively while it runs, so a backup of a running broker is refused instead of
taken half-way.

Restore checks every file of the manifest before it writes anything, copies into a fresh
``DRL_HOME/broker`` (0700 folders, 0600 files) through a temporary folder that is renamed into
place at the end, and refuses an existing broker folder. Nothing else is trusted: once
restarted, the broker reopens the chain and members' ``drl verify`` checks the log against it.

Deployments on PostgreSQL, an external node or an object store back up with those systems' own
tools (docs/deploy.md, "Backup and restore"); these commands refuse them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ledger.chain.home import CHAIN_FILE, DEPLOYMENT_FILE, broker_key_path
from ledger.errors import LedgerError
from ledger.private import private_dir
from ledger.protocol.codes import ErrorCode
from ledger.settings import Settings

MANIFEST: Final = "drl-backup.json"
INDEX_FILE: Final = "broker.db"
BLOBS_DIR: Final = "blobs"
FORMAT: Final = 1
_DATABASES: Final = (CHAIN_FILE, INDEX_FILE)


@dataclass(frozen=True)
class BackupSummary:
    """What a backup holds: its files, blobs, and the deployment it belongs to."""

    path: Path
    files: int
    blobs: int
    bytes: int
    chain_id: int | None
    flow_log: str | None
    log_size: int | None


class BackupError(LedgerError):
    code = ErrorCode.BACKUP_REFUSED


def check_default_layout(settings: Settings) -> None:
    """Only the embedded defaults are backed up here (see the module's docstring)."""
    others = {
        "DRL_DATABASE_URL": settings.database_url,
        "DRL_CHAIN_URL": settings.chain_url,
        "DRL_BLOB_STORE": settings.blob_store,
    }
    used = [name for name, value in others.items() if value]
    if used:
        raise BackupError(
            f"{', '.join(used)} set: back up PostgreSQL, the node and the object store with "
            "their own tools (docs/deploy.md, 'Backup and restore')"
        )


def backup(broker_dir: Path, dest: Path) -> BackupSummary:
    """Copy a stopped broker's state into the new folder ``dest``, with its manifest."""
    if not (broker_dir / DEPLOYMENT_FILE).exists():
        raise BackupError(f"no broker deployment in {broker_dir}", code=ErrorCode.NO_DEPLOYMENT)
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: a backup goes into a new folder")
    _refuse_if_running(broker_dir / CHAIN_FILE)
    staging = dest.with_name(dest.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    private_dir(staging)
    try:
        for name in _DATABASES:
            _copy_database(broker_dir / name, staging / name)
        for name in (DEPLOYMENT_FILE, broker_key_path(broker_dir).name):
            _copy_file(broker_dir / name, staging / name)
        blobs = 0
        for blob in sorted((broker_dir / BLOBS_DIR).rglob("*")):
            relative = blob.relative_to(broker_dir)
            if blob.is_file() and ".tmp" not in relative.parts:
                _copy_file(blob, staging / relative)
                blobs += 1
        manifest = _manifest(staging)
        _write_private(staging / MANIFEST, json.dumps(manifest, indent=2).encode())
        if dest.exists():
            dest.rmdir()
        staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return _summary(dest, manifest, blobs)


def restore(src: Path, broker_dir: Path) -> BackupSummary:
    """Restore a backup into ``broker_dir``, which must not hold a broker yet."""
    manifest = verify_backup(src)
    if broker_dir.exists() and any(broker_dir.iterdir()):
        raise BackupError(f"{broker_dir} already holds a broker: restore into a new DRL_HOME")
    staging = broker_dir.with_name(broker_dir.name + ".restoring")
    shutil.rmtree(staging, ignore_errors=True)
    private_dir(staging)
    try:
        for entry in manifest["files"]:
            _copy_file(src / entry["path"], staging / entry["path"])
        for entry in manifest["files"]:  # what landed is what the manifest names
            if _sha256(staging / entry["path"]) != entry["sha256"]:
                raise BackupError(f"{entry['path']} changed while it was restored")
        if broker_dir.exists():
            broker_dir.rmdir()
        staging.rename(broker_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    blobs = sum(1 for e in manifest["files"] if e["path"].startswith(BLOBS_DIR + "/"))
    return _summary(broker_dir, manifest, blobs)


def verify_backup(src: Path) -> dict[str, Any]:
    """The manifest of ``src``, once every file it names is there with its SHA-256 and size."""
    try:
        manifest = json.loads((src / MANIFEST).read_text())
        files = manifest["files"]
        if manifest.get("format") != FORMAT or not isinstance(files, list):
            raise ValueError("unknown manifest format")
    except FileNotFoundError:
        raise BackupError(f"{src} holds no {MANIFEST}: not a backup") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise BackupError(f"{src / MANIFEST} is damaged: {exc}") from None
    names = {str(e.get("path")) for e in files}
    for required in (*_DATABASES, DEPLOYMENT_FILE):
        if required not in names:
            raise BackupError(f"the backup lacks {required}")
    for entry in files:
        path = str(entry.get("path", ""))
        target = (src / path).resolve()
        if not target.is_relative_to(src.resolve()) or path == MANIFEST:
            raise BackupError(f"the manifest names a path outside the backup: {path!r}")
        if not target.is_file():
            raise BackupError(f"the backup lacks {path}")
        if target.stat().st_size != entry.get("size") or _sha256(target) != entry.get("sha256"):
            raise BackupError(f"{path} does not match the manifest: the backup is damaged")
    return dict(manifest)


# -- pieces -----------------------------------------------------------------------------------


def _refuse_if_running(chain_file: Path) -> None:
    """The running broker holds the chain file's exclusive lock: try to take it, briefly."""
    if not chain_file.exists():
        raise BackupError(f"{chain_file} is missing", code=ErrorCode.CHAIN_FILE_MISSING)
    conn = sqlite3.connect(chain_file, timeout=0.5, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
    except sqlite3.OperationalError:
        raise BackupError(
            "the broker is running (its chain file is locked): stop it, then back up",
            code=ErrorCode.BROKER_RUNNING,
        ) from None
    finally:
        conn.close()


def _copy_database(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite database (its WAL included), created 0600."""
    if not src.exists():
        raise BackupError(f"{src} is missing")
    _write_private(dst, b"")
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True)
    target = sqlite3.connect(dst)
    try:
        source.backup(target)
    finally:
        target.close()
        source.close()


def _copy_file(src: Path, dst: Path) -> None:
    if not src.is_file():
        raise BackupError(f"{src} is missing")
    private_dir(dst.parent)
    tmp = dst.with_name(dst.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, src.open("rb") as source:
        shutil.copyfileobj(source, out, 1 << 20)
        out.flush()
        os.fsync(out.fileno())
    tmp.rename(dst)


def _write_private(path: Path, data: bytes) -> None:
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for piece in iter(lambda: f.read(1 << 20), b""):
            digest.update(piece)
    return digest.hexdigest()


def _manifest(root: Path) -> dict[str, Any]:
    files = [
        {"path": str(p.relative_to(root)), "size": p.stat().st_size, "sha256": _sha256(p)}
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != MANIFEST
    ]
    deployment = json.loads((root / DEPLOYMENT_FILE).read_text())
    index = sqlite3.connect(f"file:{root / INDEX_FILE}?mode=ro", uri=True)
    try:
        (log_size,) = index.execute("SELECT size FROM log_state WHERE id = 1").fetchone() or (None,)
    finally:
        index.close()
    return {
        "format": FORMAT,
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "chain_id": deployment.get("chain_id"),
        "flow_log": deployment.get("flow_log"),
        "log_size": log_size,
        "files": files,
    }


def _summary(path: Path, manifest: dict[str, Any], blobs: int) -> BackupSummary:
    files = manifest["files"]
    return BackupSummary(
        path=path,
        files=len(files),
        blobs=blobs,
        bytes=sum(int(e["size"]) for e in files),
        chain_id=manifest.get("chain_id"),
        flow_log=manifest.get("flow_log"),
        log_size=manifest.get("log_size"),
    )


__all__ = ["BackupError", "BackupSummary", "backup", "check_default_layout", "restore"]

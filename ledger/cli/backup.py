"""`drl admin backup` / `drl admin restore`: a stopped broker's state, checked file by file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ledger.cli.common import JsonOpt, emit, settings

DestArg = Annotated[Path, typer.Argument(help="A new folder for the backup.")]
SourceArg = Annotated[Path, typer.Argument(help="A folder `drl admin backup` wrote.")]


def admin_backup(dest: DestArg, as_json: JsonOpt = False) -> None:
    """Back up the stopped broker of DRL_HOME (chain, index, keys, blobs) into a new folder."""
    from ledger.backup import backup, check_default_layout

    cfg = settings()
    check_default_layout(cfg)
    summary = backup(cfg.broker_dir, dest.expanduser())
    emit(
        summary,
        as_json,
        f"backed up {summary.files} files ({summary.blobs} blobs, {summary.bytes:,} bytes) of "
        f"chain {summary.chain_id}, flow log {summary.flow_log} at size {summary.log_size} "
        f"into {summary.path}",
    )


def admin_restore(src: SourceArg, as_json: JsonOpt = False) -> None:
    """Restore a backup into DRL_HOME (which must hold no broker yet), every file checked."""
    from ledger.backup import check_default_layout, restore

    cfg = settings()
    check_default_layout(cfg)
    summary = restore(src.expanduser(), cfg.broker_dir)
    emit(
        summary,
        as_json,
        f"restored {summary.files} files ({summary.blobs} blobs) of chain {summary.chain_id} "
        f"at log size {summary.log_size} into {summary.path}; start it with `drl serve`",
    )

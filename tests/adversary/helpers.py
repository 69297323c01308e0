"""Small helpers shared by the malicious-broker tests."""

from __future__ import annotations

from pathlib import Path
from subprocess import CompletedProcess

from ledger.types import MemberKind
from tests.adversary.conftest import Site
from tests.support.chain import expect_revert

__all__ = ["expect_revert", "one_line_error", "people", "sample_csv"]

NAMES = {
    "office": "District Planning Office",
    "works": "Harbour Works Office",
    "coop": "Harbour Solar Cooperative",
    "auditor": "Data Protection Authority",
}


def people(site: Site, *specs: tuple[str, MemberKind]) -> dict[str, str]:
    """Onboard each ``(handle, kind)`` not onboarded yet; returns handle -> address."""
    for handle, kind in specs:
        if handle not in site.members:
            site.new_member(handle, kind, NAMES.get(handle, handle.title()))
    return {handle: site.members[handle].address for handle, _ in specs}


def sample_csv(path: Path, rows: int = 200, tag: str = "") -> Path:
    lines = ["permit_id,ward,cost"] + [f"BP-{tag}{i:06d},Harbour,{1000 + i}" for i in range(rows)]
    path.write_text("\n".join(lines) + "\n")
    return path


def one_line_error(run: CompletedProcess[str], code: str) -> str:
    """Assert the honest CLI refused: exit 1, one line ``error [code]: ...``, no traceback."""
    assert run.returncode == 1, (run.returncode, run.stdout, run.stderr)
    lines = [line for line in run.stderr.splitlines() if not line.startswith("note: ")]
    assert len(lines) == 1, run.stderr
    assert lines[0].startswith(f"error [{code}]: "), run.stderr
    return lines[0]

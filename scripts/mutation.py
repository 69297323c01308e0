"""Mutation testing of the safety-critical modules: would the suite notice a broken check?

Runs mutmut 3 (one small change at a time) on each target below against that target's own
test files only, then prints per target: mutants, killed (timeouts count as killed), reviewed
equivalent mutants, survivors, and the score ``killed / (mutants - equivalent)``, followed by
every surviving mutant that is not on the reviewed list, with its diff.

Each target runs in its own scratch directory ``mutants/<target>/`` (gitignored): mutmut reads
its settings from the working directory's ``pyproject.toml``, so the script writes one there
from ``[tool.mutmut]`` and ``[tool.pytest.ini_options]`` of the real one plus the target's
files and tests, and links the sources in. mutmut copies them into ``mutants/<target>/mutants``.

Equivalent mutants (a change no test could ever notice, e.g. an error message reworded or a
loop bound that cannot be reached) are reviewed by hand and listed in
``scripts/mutation_equivalents.toml``, each with the change it makes and a one-line reason. A
review matches on the function and the change, not on mutmut's running number, so editing a
function does not silently move a review onto another mutant; a review whose change no longer
survives is reported as stale.

    scripts/mutation                  # every target, fresh
    scripts/mutation merkle audit     # some targets
    scripts/mutation crypto --keep    # reuse the last run: mutmut re-runs changed functions
    scripts/mutation --markdown       # the table for README.md

A report like the benchmarks, not part of ./scripts/test: a full run takes minutes per target.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = ROOT / "mutants"
EQUIVALENTS = ROOT / "scripts" / "mutation_equivalents.toml"


@dataclass(frozen=True)
class Target:
    """A group of modules, the tests that are theirs, and optionally which functions count."""

    title: str
    files: tuple[str, ...]
    tests: tuple[str, ...]
    # mutmut mutant-name globs; empty means every mutant of ``files``.
    only: tuple[str, ...] = ()


TARGETS: dict[str, Target] = {
    "merkle": Target(
        title="Merkle proofs (ledger/merkle)",
        files=("ledger/merkle/proofs.py", "ledger/merkle/tree.py"),
        tests=("tests/unit/test_merkle.py", "tests/unit/test_merkle_tree.py"),
    ),
    "audit": Target(
        title="member-side verifier (ledger/audit)",
        files=(
            "ledger/audit/verifier.py",
            "ledger/audit/records.py",
            "ledger/audit/links.py",
            "ledger/audit/state.py",
        ),
        tests=(
            "tests/unit/test_audit_verifier.py",
            "tests/unit/test_audit_records_links.py",
            "tests/unit/test_audit_trace.py",
            "tests/unit/test_verify_labels.py",
        ),
    ),
    "inclusion": Target(
        title="member-side inclusion checks and kept proofs (ledger/audit/inclusion.py)",
        files=("ledger/audit/inclusion.py",),
        tests=("tests/unit/test_checkpoint.py",),
    ),
    "verify": Target(
        title="broker self-check (ledger/services/verify.py)",
        files=("ledger/services/verify.py",),
        tests=("tests/fault/test_verify_tamper.py", "tests/unit/test_verify_grant_history.py"),
    ),
    "crypto": Target(
        title="dataset format and HPKE (ledger/crypto)",
        files=("ledger/crypto/format.py", "ledger/crypto/stream.py", "ledger/crypto/hpke.py"),
        tests=(
            "tests/unit/test_crypto_stream.py",
            "tests/unit/test_crypto_hpke.py",
            "tests/unit/test_crypto_hostile_header.py",
            "tests/unit/test_crypto_format.py",
            "tests/unit/test_crypto_content_hash.py",
        ),
    ),
    "actions": Target(
        title="signed-action checks (protocol actions, limits, EIP-712)",
        files=(
            "ledger/protocol/actions.py",
            "ledger/protocol/limits.py",
            "ledger/protocol/eip712.py",
        ),
        tests=(
            "tests/unit/test_eip712_fast.py",
            "tests/unit/test_eip712_exact.py",
            "tests/unit/test_signed_actions.py",
        ),
        only=(
            "ledger.protocol.actions.*",
            "ledger.protocol.eip712.*",
            "ledger.protocol.limits.x_check_timing__mutmut_*",
            "ledger.protocol.limits.x_check_limits__mutmut_*",
        ),
    ),
    "auth": Target(
        title="request authentication (api/auth.py, ledger/protocol/http.py)",
        files=("api/auth.py", "ledger/protocol/http.py"),
        tests=("tests/http/test_request_auth.py",),
    ),
    "credits": Target(
        title="credit quality the verifier expects (ledger/audit/credits.py, ledger/scoring.py)",
        files=("ledger/audit/credits.py", "ledger/scoring.py"),
        tests=(
            "tests/unit/test_audit_credit_quality.py",
            "tests/unit/test_quality_labels.py",
            "tests/unit/test_scoring.py",
        ),
    ),
}

KILLED = {"killed", "timeout", "caught by type check"}
# Not run (yet): an interrupted run, or timeouts reset after a change of the timeout settings.
UNCHECKED = {"not checked", "skipped", "check was interrupted by user"}
SURVIVED = {"survived", "no tests", "suspicious", "segfault"}


@dataclass
class Mutant:
    name: str
    status: str
    change: str = ""
    diff: str = ""
    reason: str | None = None


@dataclass
class Report:
    target: str
    mutants: list[Mutant] = field(default_factory=list)
    stale: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def count(self, statuses: set[str]) -> int:
        return sum(1 for m in self.mutants if m.status in statuses and m.reason is None)

    @property
    def equivalent(self) -> int:
        return sum(1 for m in self.mutants if m.reason is not None)

    @property
    def killed(self) -> int:
        return self.count(KILLED)

    @property
    def unchecked(self) -> int:
        return self.count(UNCHECKED)

    @property
    def survivors(self) -> list[Mutant]:
        return [m for m in self.mutants if m.status not in KILLED | UNCHECKED and m.reason is None]

    @property
    def score(self) -> float:
        """Killed among the mutants checked, reviewed equivalents left out."""
        counted = len(self.mutants) - self.equivalent - self.unchecked
        return 100.0 * self.killed / counted if counted else 100.0


def function_of(name: str) -> str:
    """``ledger.merkle.proofs.x_root__mutmut_3`` -> ``ledger.merkle.proofs.x_root``."""
    return name.rpartition("__mutmut_")[0]


def change_of(diff: str) -> str:
    """The changed lines of a mutant's diff on one line: ``old / old → new / new``."""
    removed = [
        ln[1:].strip()
        for ln in diff.splitlines()
        if ln.startswith("-") and not ln.startswith("---")
    ]
    added = [
        ln[1:].strip()
        for ln in diff.splitlines()
        if ln.startswith("+") and not ln.startswith("+++")
    ]
    return " / ".join(removed) + " → " + " / ".join(added)


#: The reason a ``--review-stubs`` stub carries until a person writes one (refused if kept).
UNREVIEWED = "unreviewed: say why no test could notice this change"


def load_equivalents() -> list[dict[str, str]]:
    data = tomllib.loads(EQUIVALENTS.read_text()) if EQUIVALENTS.exists() else {}
    entries: list[dict[str, str]] = data.get("equivalent", [])
    for entry in entries:
        missing = {"target", "mutant", "change", "reason"} - entry.keys()
        if missing:
            sys.exit(f"{EQUIVALENTS}: an entry lacks {sorted(missing)}: {entry}")
        if not str(entry["reason"]).strip() or entry["reason"] == UNREVIEWED:
            sys.exit(f"{EQUIVALENTS}: {entry['mutant']} was pasted but never reviewed")
    return entries


def toml_value(value: object) -> str:
    # JSON strings, numbers, booleans and lists of them are valid TOML values.
    return json.dumps(value, ensure_ascii=False)


def prepare(name: str, target: Target, *, keep: bool) -> Path:
    """The scratch directory for one target, with its pyproject.toml and links to the sources."""
    work = SCRATCH / name
    if not keep and work.exists():
        shutil.rmtree(work)
    (work / "mutants").mkdir(parents=True, exist_ok=True)
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    settings = dict(project["tool"]["mutmut"])
    settings["only_mutate"] = list(target.files)
    settings["pytest_add_cli_args_test_selection"] = list(target.tests)
    lines = ["[tool.mutmut]"]
    lines += [f"{key} = {toml_value(value)}" for key, value in settings.items()]
    lines.append("\n[tool.pytest.ini_options]")
    lines += [
        f"{key} = {toml_value(value)}"
        for key, value in project["tool"]["pytest"]["ini_options"].items()
    ]
    (work / "pyproject.toml").write_text("\n".join(lines) + "\n")
    # mutmut copies the sources and tests/ from here into work/mutants; everything else the
    # tests read by path (docs, samples, contracts, node_modules) is linked straight in.
    skip = {"mutants", ".git", ".venv", "pyproject.toml", "setup.cfg"}
    for entry in ROOT.iterdir():
        if entry.name in skip or entry.name.startswith("."):
            continue
        copied = entry.name in {*settings.get("source_paths", []), "tests"}
        link = work / entry.name if copied else work / "mutants" / entry.name
        if not link.is_symlink() and not link.exists():
            link.symlink_to(entry)
    return work


def run_mutmut(work: Path, names: list[str], *, max_children: int) -> None:
    """``mutmut run`` in ``work``; ``names`` (globs) limit it, and named mutants run again."""
    command = [str(ROOT / ".venv" / "bin" / "mutmut"), "run", "--max-children", str(max_children)]
    command += names
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    # mutmut redraws a progress line many times a second: keep it out of the report.
    with (work / "mutmut.log").open("w") as log:
        result = subprocess.run(command, cwd=work, env=env, stdout=log, stderr=log, check=False)
    if result.returncode != 0:
        sys.exit(f"mutmut failed (exit {result.returncode}); see {work / 'mutmut.log'}")


def list_mutants(work: Path, globs: list[str]) -> None:
    """Generate the mutants (no tests run) and print each matching one's name and change."""
    script = (
        "import fnmatch, json, sys\n"
        "from pathlib import Path\n"
        "from mutmut.__main__ import create_mutants\n"
        "from mutmut.configuration import config\n"
        "from mutmut.mutation.diff_apply import get_diff_for_mutant\n"
        "from mutmut.utils.file_utils import copy_src_dir\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "from mutation import change_of\n"
        "copy_src_dir()\n"
        "create_mutants(1)\n"
        "for source in config().only_mutate:\n"
        "    meta = json.loads(Path('mutants', source + '.meta').read_text())\n"
        "    for key in meta['exit_code_by_key']:\n"
        "        if not sys.argv[2:] or any(fnmatch.fnmatch(key, g) for g in sys.argv[2:]):\n"
        "            print(key, '|', change_of(get_diff_for_mutant(key, path=source)))\n"
    )
    python = str(ROOT / ".venv" / "bin" / "python")
    subprocess.run(
        [python, "-c", script, str(ROOT / "scripts"), *globs],
        cwd=work,
        check=True,
        stderr=subprocess.DEVNULL,
    )


def collect(name: str, target: Target, work: Path, reviews: list[dict[str, str]]) -> Report:
    """Statuses from mutmut's .meta files; diffs of the survivors through mutmut's own code."""
    import fnmatch

    from mutmut import configuration
    from mutmut.mutation.diff_apply import get_diff_for_mutant
    from mutmut.stats import status_by_exit_code

    report = Report(target=name)
    mine = [r for r in reviews if r["target"] == name]
    used: set[int] = set()
    cwd = Path.cwd()
    os.chdir(work)
    configuration._config = None  # mutmut caches the settings of the last directory
    try:
        for source in target.files:
            meta = json.loads((work / "mutants" / f"{source}.meta").read_text())
            for key, code in sorted(meta["exit_code_by_key"].items()):
                if target.only and not any(fnmatch.fnmatch(key, g) for g in target.only):
                    continue
                mutant = Mutant(name=key, status=status_by_exit_code[code])
                if mutant.status not in KILLED:
                    mutant.diff = get_diff_for_mutant(key, path=source)
                    mutant.change = change_of(mutant.diff)
                    for i, review in enumerate(mine):
                        same_function = function_of(review["mutant"]) == function_of(key)
                        if same_function and review["change"] == mutant.change and i not in used:
                            mutant.reason = review["reason"]
                            used.add(i)
                            break
                report.mutants.append(mutant)
    finally:
        os.chdir(cwd)
        configuration._config = None
    report.stale = [r for i, r in enumerate(mine) if i not in used]
    return report


def print_report(reports: list[Report], *, markdown: bool, stubs: bool) -> None:
    header = ("target", "mutants", "killed", "equivalent", "survived", "unchecked", "score", "run")
    rows = [
        (
            r.target,
            str(len(r.mutants)),
            str(r.killed),
            str(r.equivalent),
            str(len(r.survivors)),
            str(r.unchecked),
            f"{r.score:.1f}%",
            f"{r.seconds / 60:.1f} min",
        )
        for r in reports
    ]
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|---|" + "---:|" * (len(header) - 1))
        for row in rows:
            print("| " + " | ".join(row) + " |")
    else:
        widths = [max(len(x) for x in col) for col in zip(header, *rows, strict=True)]
        for row in (header, *rows):
            print(
                "  ".join(
                    x.rjust(w) if i else x.ljust(w)
                    for i, (x, w) in enumerate(zip(row, widths, strict=True))
                )
            )
    for r in reports:
        for m in r.survivors:
            print(f"\n## {r.target}: {m.status}: {m.name}\n{m.diff}")
            if stubs:
                print("\n[[equivalent]]")
                print(f"target = {toml_value(r.target)}")
                print(f"mutant = {toml_value(m.name)}")
                print(f"change = {toml_value(m.change)}")
                print(f"reason = {toml_value(UNREVIEWED)}")
        for review in r.stale:
            print(f"\n## {r.target}: stale review (no such surviving mutant): {review['mutant']}")
            print(f"   change: {review['change']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "targets",
        nargs="*",
        choices=[[], *TARGETS],
        metavar="TARGET",
        help=f"some of: {', '.join(TARGETS)} (default: all)",
    )
    parser.add_argument("--max-children", type=int, default=2, help="mutmut workers (default 2)")
    parser.add_argument(
        "--keep",
        action="store_true",
        help="reuse mutants/<target> from the last run instead of starting afresh",
    )
    parser.add_argument(
        "--rerun-survivors",
        action="store_true",
        help="run the last run's unreviewed survivors again (after adding tests)",
    )
    parser.add_argument(
        "--mutants",
        nargs="+",
        metavar="GLOB",
        help="only these mutants (mutmut names or globs), e.g. for one function",
    )
    parser.add_argument(
        "--list",
        action="store_true",
        help="only generate the mutants and list them (name | change)",
    )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="do not run mutmut; report the results of the last run",
    )
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    parser.add_argument(
        "--review-stubs",
        action="store_true",
        help="after each survivor, an [[equivalent]] entry to paste once reviewed",
    )
    args = parser.parse_args()
    names = args.targets or list(TARGETS)
    reviews = load_equivalents()
    unknown = {r["target"] for r in reviews} - TARGETS.keys()
    if unknown:
        sys.exit(f"{EQUIVALENTS}: unknown targets {sorted(unknown)}")
    reports = []
    for name in names:
        target = TARGETS[name]
        start = time.monotonic()
        work = SCRATCH / name
        if args.list:
            list_mutants(prepare(name, target, keep=True), list(args.mutants or target.only))
            continue
        if args.rerun_survivors:
            names = [m.name for m in collect(name, target, work, reviews).survivors]
            print(f"== {name}: {target.title}: {len(names)} survivors again", flush=True)
            if names:
                run_mutmut(prepare(name, target, keep=True), names, max_children=args.max_children)
        elif not args.report_only:
            print(f"== {name}: {target.title}", flush=True)
            work = prepare(name, target, keep=args.keep)
            run_mutmut(work, list(args.mutants or target.only), max_children=args.max_children)
        report = collect(name, target, work, reviews)
        report.seconds = time.monotonic() - start
        reports.append(report)
    print()
    print_report(reports, markdown=args.markdown, stubs=args.review_stubs)


if __name__ == "__main__":
    main()

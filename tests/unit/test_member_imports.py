"""The member side loads no broker code: the SDK and the member CLI stay small.

Members install the same package as the broker but run only the SDK and `drl`'s member
commands, which must not pull in the database, the web stack or the embedded EVM (the broker
host's `drl serve` and `drl chain` import those inside their commands). Each probe is a fresh
interpreter that imports what a member runs, then prints the top-level modules it loaded and
its resident memory. ``lint-imports`` checks the same rule statically (pyproject.toml).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: What only the broker needs: SQL and migrations, the web server, the embedded EVM (py-evm).
BROKER_ONLY = (
    "sqlalchemy",
    "sqlmodel",
    "alembic",
    "fastapi",
    "starlette",
    "uvicorn",
    "eth_tester",
    "eth",
)

REPORT = """
import json, sys
rss = next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:"))
print(json.dumps({"modules": sorted({m.split(".")[0] for m in sys.modules}), "rss_kib": rss}))
"""


@dataclass(frozen=True)
class Loaded:
    modules: frozenset[str]
    rss_kib: int
    output: str


def probe(code: str) -> Loaded:
    """Run ``code`` in a fresh interpreter; what it loaded, its VmRSS, and what it printed."""
    done = subprocess.run(
        [sys.executable, "-c", code + REPORT],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},  # wide enough for one line per command
        check=False,
    )
    assert done.returncode == 0, done.stderr
    *printed, last = done.stdout.strip().splitlines()
    report = json.loads(last)
    return Loaded(frozenset(report["modules"]), int(report["rss_kib"]), "\n".join(printed))


def test_the_sdk_and_the_member_commands_load_no_broker_stack() -> None:
    member = probe("import ledger.client.sdk, ledger.cli.commands")
    assert {"ledger", "httpx", "typer"} <= member.modules  # the probe saw the imports
    assert sorted(member.modules & set(BROKER_ONLY)) == []


def test_the_members_own_checks_load_no_broker_stack() -> None:
    """`drl verify`, `drl trace` and every SDK write check the broker on the member's machine:
    the pinned deployment, signed checkpoints, the chain read through a node or the broker's
    relay, and the local audit. None of it may need the broker's stack."""
    checks = probe(
        "import ledger.client.sdk, ledger.client.trust, ledger.client.relay\n"
        "import ledger.client.audit_sources, ledger.audit, ledger.protocol.checkpoint\n"
        "import ledger.chain.client, ledger.chain.rpc\n"
    )
    assert {"ledger", "web3", "httpx"} <= checks.modules
    assert sorted(checks.modules & set(BROKER_ONLY)) == []


def test_drl_help_lists_every_command_without_loading_the_broker_stack() -> None:
    shown = probe(
        "from ledger.cli import app\n"
        "assert app(['--help'], standalone_mode=False, prog_name='drl') == 0\n"
    )
    for command in ("serve", "member", "admin", "dataset", "access", "credits", "trace", "verify"):
        assert f" {command} " in shown.output, command
    assert " chain " in shown.output
    assert sorted(shown.modules & set(BROKER_ONLY)) == []


def test_the_probe_sees_the_broker_stack_where_it_is_loaded() -> None:
    """Positive control: the broker's app loads what the member side must not, and weighs more."""
    broker = probe("import api.main")
    member = probe("import ledger.client.sdk, ledger.cli.commands")
    assert {"sqlalchemy", "sqlmodel", "alembic", "fastapi", "starlette"} <= broker.modules
    assert member.rss_kib < broker.rss_kib

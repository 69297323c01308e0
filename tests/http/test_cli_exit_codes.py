"""Every failing `drl` command exits non-zero, says why in one line and writes nothing.

Each case runs the installed ``drl`` executable in a subprocess, as a script or a cron job
would (typer's CliRunner never reaches ``main()``, which turns errors into exit codes), and
checks the exit code, the message on stderr, that no traceback is printed, and that nothing
was written where a failure must leave no trace (keystores and the ADMIN key, the log, a
fetch's output file, the checkpoint kept by ``drl verify``, a new broker home).

A user mistake or a refusal is one line ``error [code]: message`` and exit 1 (codes from
:class:`~ledger.protocol.codes.ErrorCode`); a usage error is click's message and exit 2; a
failed check (``verify``, ``trace``, ``admin self-check``) prints its ``FAIL`` lines and
exits 1.

Failure paths already covered elsewhere, not repeated here:

- tests/http/test_cli_errors.py: ``dataset show`` of an unknown dataset, ``dataset fetch``
  without a grant, ``dataset register`` by a regulator and with rows failing the schema,
  ``dataset list`` with a wrong passphrase, an unreachable broker and an unknown identity,
  ``access request`` by a member not onboarded, ``member new`` with an unknown kind,
  ``admin cosign`` of an unknown request, ``admin reinstate`` of an active member and without
  the ADMIN key, ``verify`` by a department.
- tests/http/test_cli_chain.py (broker stopped): ``chain anchor`` shrinking the tree and with
  a malformed root, ``chain dataset`` of an unknown and a non-numeric id, ``chain status``
  with a wrong passphrase.

``drl verify`` checks the log against the chain from the member's machine; it never reads the
broker's blobs. A flipped blob byte is therefore caught by ``drl admin self-check`` (the
broker's check of itself, which the issue's ``verify`` output came from) and by the fetch that
serves it; a rewritten log row is caught by ``drl verify`` and ``drl trace``.
"""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from ledger.client import keystore
from ledger.client.sdk import BrokerClient
from ledger.protocol.codes import ErrorCode
from tests.support.broker import DRL
from tests.support.http_kit import (
    PASSPHRASE,
    RunningBroker,
    env_for,
    new_member,
    running_broker,
)
from tests.support.net import free_port

#: What the module's broker holds (the fixture checks these ids).
DATASET, GRANTED_REQUEST, GRANT, PENDING_REQUEST = 1, 1, 1, 2
#: An address that is not a member.
STRANGER = "0x" + "11" * 20


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    """One broker: office owns dataset 1; ent holds grant 1 on it and has request 2 pending."""
    root = tmp_path_factory.mktemp("cli-exit-codes")
    with running_broker(root / "home") as b:
        new_member(b, "office", "department", "Office")
        new_member(b, "ent", "enterprise", "Enterprise")
        new_member(b, "dpa", "regulator", "Regulator")
        source = root / "d.csv"
        source.write_text("a,b\n1,2\n3,4\n")
        with b.client("office") as office, b.client("ent") as ent:
            assert office.register(source, title="D").id == DATASET
            first = ent.request_access(DATASET, purpose="a purpose long enough", days=3, uses=5)
            grant = office.approve(first.id).grant
            assert first.id == GRANTED_REQUEST
            assert grant is not None
            assert grant.id == GRANT
            second = ent.request_access(DATASET, purpose="another long purpose", days=3, uses=5)
            assert second.id == PENDING_REQUEST
        yield b


def drl(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The installed executable, stdin not a terminal (so nothing prompts)."""
    return subprocess.run(
        [DRL, *args],
        capture_output=True,
        text=True,
        env=env,
        stdin=subprocess.DEVNULL,
        timeout=timeout,
    )


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stdout + result.stderr, result.stderr


def one_line_error(result: subprocess.CompletedProcess[str], code: str) -> str:
    """Exit 1 and exactly ``error [code]: message`` on stderr; the message is returned."""
    no_traceback(result)
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    prefix = f"error [{code}]: "
    assert lines[0].startswith(prefix), result.stderr
    return lines[0].removeprefix(prefix)


def usage_error(result: subprocess.CompletedProcess[str], names: str) -> None:
    no_traceback(result)
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Error:" in result.stderr, result.stderr
    assert names in result.stderr, result.stderr


def files(root: Path) -> dict[str, str]:
    """Every file under ``root`` with the hash of its bytes."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def sql(home: Path, query: str, *params: object) -> list[tuple[Any, ...]]:
    """Run one statement on the broker's database, behind the broker's back, and commit."""
    with closing(sqlite3.connect(home / "broker" / "broker.db")) as db, db:
        return db.execute(query, params).fetchall()


def log_size(home: Path) -> int:
    return int(sql(home, "SELECT count(*) FROM log_records")[0][0])


# -- usage errors (exit 2) --------------------------------------------------------------------

USAGE = {
    "member list with an unknown option": (("member", "list", "--bogus"), "--bogus"),
    "serve on port 0": (("serve", "--port", "0"), "--port"),
}


@pytest.mark.parametrize(("args", "names"), USAGE.values(), ids=USAGE.keys())
def test_bad_arguments_exit_2_and_write_nothing(
    broker: RunningBroker, args: tuple[str, ...], names: str
) -> None:
    before = log_size(broker.home)
    usage_error(drl(broker.env, *args), names)
    assert log_size(broker.home) == before


# -- local mistakes: refused before the broker is asked ---------------------------------------


def test_member_new_with_a_taken_handle_keeps_the_old_keys(broker: RunningBroker) -> None:
    before = files(broker.home / "members")
    result = drl(broker.env, "member", "new", "office", "--kind", "department", "--name", "X")
    assert "'office' already exists" in one_line_error(result, ErrorCode.HANDLE_TAKEN)
    assert files(broker.home / "members") == before


def test_member_list_with_a_damaged_profile_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "members" / "bad").mkdir(parents=True)
    (tmp_path / "members" / "bad" / "profile.json").write_text('{"handle": "bad"}')
    result = drl(env_for(tmp_path, f"http://127.0.0.1:{free_port()}"), "member", "list")
    assert "damaged profile" in one_line_error(result, ErrorCode.CONFIGURATION_ERROR)


def test_admin_init_over_an_existing_key_keeps_it(broker: RunningBroker) -> None:
    before = files(broker.home / "admin")
    result = drl(broker.env, "admin", "init")
    assert "already exists" in one_line_error(result, ErrorCode.BAD_ARGUMENTS)
    assert files(broker.home / "admin") == before


def test_admin_suspend_of_an_unknown_handle(broker: RunningBroker) -> None:
    result = drl(broker.env, "admin", "suspend", "nobody")
    assert "'nobody'" in one_line_error(result, ErrorCode.NO_IDENTITY)


def test_trace_of_a_dataset_and_a_member_at_once(broker: RunningBroker) -> None:
    result = drl(broker.env, "trace", "1", "--member", "ent", "--as", "dpa")
    one_line_error(result, ErrorCode.BAD_ARGUMENTS)


def test_credits_with_a_wrong_passphrase(broker: RunningBroker) -> None:
    env = broker.env | {"DRL_PASSPHRASE": "not the passphrase"}
    one_line_error(drl(env, "credits", "--as", "ent"), ErrorCode.WRONG_PASSPHRASE)


# -- refused by the broker (or by the chain it reports): exit 1, nothing logged -----------------

REFUSED = {
    "admin onboard of a member": (("admin", "onboard", "ent"), ErrorCode.ALREADY_MEMBER),
    "admin suspend of a stranger": (("admin", "suspend", STRANGER), ErrorCode.NOT_A_MEMBER),
    "admin reassign of an unknown dataset": (
        ("admin", "reassign", "99", "ent", "--reason", "dispute"),
        ErrorCode.DATASET_NOT_FOUND,
    ),
    "access approve by the requester": (
        ("access", "approve", str(PENDING_REQUEST), "--as", "ent"),
        ErrorCode.NOT_OWNER,
    ),
    "access deny by the requester": (
        ("access", "deny", str(PENDING_REQUEST), "--as", "ent"),
        ErrorCode.NOT_OWNER,
    ),
    "access revoke of an unknown grant": (
        ("access", "revoke", "99", "--as", "office"),
        ErrorCode.GRANT_NOT_FOUND,
    ),
}


@pytest.mark.parametrize(("args", "code"), REFUSED.values(), ids=REFUSED.keys())
def test_a_refused_action_exits_1_and_logs_nothing(
    broker: RunningBroker, args: tuple[str, ...], code: ErrorCode
) -> None:
    before = log_size(broker.home)
    one_line_error(drl(broker.env, *args), code)
    assert log_size(broker.home) == before


# -- the broker unreachable; no broker at this home -------------------------------------------

UNREACHABLE = {
    "admin anchor": ("admin", "anchor"),
    "access list": ("access", "list", "--as", "ent"),
}


@pytest.mark.parametrize("args", UNREACHABLE.values(), ids=UNREACHABLE.keys())
def test_broker_unreachable(broker: RunningBroker, args: tuple[str, ...]) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    message = one_line_error(drl(env_for(broker.home, closed), *args), ErrorCode.BROKER_UNREACHABLE)
    assert closed in message


def test_chain_status_on_a_home_without_a_broker_deploys_nothing(tmp_path: Path) -> None:
    result = drl(env_for(tmp_path, f"http://127.0.0.1:{free_port()}"), "chain", "status")
    assert "no broker deployment" in one_line_error(result, ErrorCode.NO_DEPLOYMENT)
    assert files(tmp_path) == {}


# -- drl serve that cannot start ----------------------------------------------------------------


def test_serve_with_an_unknown_database_scheme_writes_nothing(tmp_path: Path) -> None:
    env = env_for(tmp_path / "home", "") | {"DRL_DATABASE_URL": "mongodb://127.0.0.1/drl"}
    result = drl(env, "serve", "--port", str(free_port()), timeout=60)
    assert "'mongodb'" in one_line_error(result, ErrorCode.CONFIGURATION_ERROR)
    assert files(tmp_path / "home") == {}


def test_serve_on_an_occupied_port_is_refused_before_anything_is_made(
    broker: RunningBroker, tmp_path: Path
) -> None:
    port = broker.url.rsplit(":", 1)[1]
    result = drl(env_for(tmp_path / "home", ""), "serve", "--port", port, timeout=60)
    message = one_line_error(result, ErrorCode.PORT_IN_USE)
    assert f"127.0.0.1:{port}" in message
    assert "in use" in message
    assert files(tmp_path / "home") == {}  # no keys made, nothing deployed
    assert broker.process.poll() is None  # the broker holding the port is untouched


# -- tampering: the checks that must catch it exit 1 and name it -------------------------------


def self_check_ok(broker: RunningBroker) -> bool:
    with broker.client("operator") as operator:
        return operator.self_check().ok


def test_a_flipped_blob_byte_fails_self_check_and_the_fetch(
    broker: RunningBroker, tmp_path: Path
) -> None:
    assert self_check_ok(broker)  # the positive control: the failure below is the flip's
    (blob,) = (p for p in (broker.home / "broker" / "blobs").rglob("*") if p.is_file())
    original, mode = blob.read_bytes(), blob.stat().st_mode
    altered = bytearray(original)
    altered[len(altered) // 2] ^= 0x01
    blob.chmod(0o600)  # the store keeps blobs read-only
    blob.write_bytes(bytes(altered))
    try:
        check = drl(broker.env, "admin", "self-check")
        no_traceback(check)
        assert check.returncode == 1, check.stdout
        assert f"FAIL dataset {DATASET}: ciphertext blob 0x{blob.name} was altered" in check.stdout

        out = tmp_path / "out.csv"
        fetch = drl(broker.env, "dataset", "fetch", str(DATASET), "--as", "ent", "-o", str(out))
        # The code is not asserted: the broker finds the alteration only after the response
        # has started, drops the connection, and the client can only say the download broke.
        no_traceback(fetch)
        assert fetch.returncode == 1, fetch.stderr
        assert fetch.stderr.startswith("error ["), fetch.stderr
        assert list(tmp_path.iterdir()) == []
    finally:
        blob.write_bytes(original)
        blob.chmod(mode)
    assert self_check_ok(broker)


def test_a_rewritten_log_row_fails_verify_and_trace(broker: RunningBroker) -> None:
    """A row appended after the member's last checkpoint is rewritten in broker.db.

    (A row already verified is not read again: the member's verified copy stands.)
    """
    dpa = keystore.unlock(broker.home, "dpa", PASSPHRASE)
    with BrokerClient(broker.url, dpa, trust_dir=broker.home / "trust") as auditor:
        first = auditor.audit()  # the positive control, and the checkpoint kept on this machine
        assert first.ok
        with broker.client("ent") as ent:
            ent.request_access(DATASET, purpose="a third long purpose", days=3, uses=5)
        ((seq, leaf),) = sql(
            broker.home, "SELECT seq, leaf FROM log_records ORDER BY seq DESC LIMIT 1"
        )
        assert seq == first.tree_size  # the new record, past the checkpoint
        at = leaf.index(b'"purpose":"a third') + len(b'"purpose":"')
        forged = leaf[:at] + b"A" + leaf[at + 1 :]
        sql(broker.home, "UPDATE log_records SET leaf = ? WHERE seq = ?", forged, seq)
        try:
            named = f"FAIL [{ErrorCode.RECORD_MISMATCH}] log record {seq}:"
            for args in (("verify", "--as", "dpa"), ("trace", str(DATASET), "--as", "dpa")):
                result = drl(broker.env, *args)
                no_traceback(result)
                assert result.returncode == 1, (args, result.stdout, result.stderr)
                assert named in result.stderr, (args, result.stderr)
        finally:
            sql(broker.home, "UPDATE log_records SET leaf = ? WHERE seq = ?", leaf, seq)
        after = auditor.audit()
    assert after.ok
    # Neither failed run moved the checkpoint past the forged record.
    assert after.previous_size == first.tree_size

"""Every CLI failure is one line `error [code]: message` and a non-zero exit, never a traceback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.http_kit import RunningBroker, new_member, running_broker


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    with running_broker(tmp_path_factory.mktemp("cli-errors") / "home") as b:
        new_member(b, "office", "department", "Office")
        new_member(b, "ent", "enterprise", "Enterprise")
        new_member(b, "dpa", "regulator", "Regulator")
        new_member(b, "newcomer", "enterprise", "Not yet onboarded", onboard=False)
        yield b


def one_line_error(result: object, code: str) -> str:
    stderr = result.stderr  # type: ignore[attr-defined]
    assert result.returncode == 1, stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"error [{code}]: "), stderr
    return lines[0]


def test_unknown_dataset(broker: RunningBroker) -> None:
    one_line_error(broker.drl("dataset", "show", "999", "--as", "ent"), "dataset_not_found")


def test_fetch_without_a_grant(broker: RunningBroker, tmp_path: Path) -> None:
    source = tmp_path / "d.csv"
    source.write_text("a,b\n1,2\n")
    registered = broker.drl("dataset", "register", str(source), "--as", "office", "--title", "D")
    assert registered.returncode == 0, registered.stderr
    result = broker.drl("dataset", "fetch", "1", "--as", "ent", "-o", str(tmp_path / "out"))
    one_line_error(result, "no_grant")
    assert not (tmp_path / "out").exists()


def test_request_by_a_member_not_onboarded(broker: RunningBroker) -> None:
    result = broker.drl(
        "access",
        "request",
        "1",
        "--as",
        "newcomer",
        "--purpose",
        "a purpose long enough",
        "--days",
        "3",
    )
    one_line_error(result, "not_a_member")


def test_regulator_cannot_register(broker: RunningBroker, tmp_path: Path) -> None:
    source = tmp_path / "r.csv"
    source.write_text("a\n1\n")
    result = broker.drl("dataset", "register", str(source), "--as", "dpa", "--title", "R")
    one_line_error(result, "regulator_read_only")


def test_rows_failing_the_schema_are_refused_before_upload(
    broker: RunningBroker, tmp_path: Path
) -> None:
    source = tmp_path / "bad.csv"
    source.write_text("id,amount\n1,12\n2,twelve\n")
    schema = tmp_path / "schema.json"
    schema.write_text(
        '{"fields": [{"name": "id", "type": "integer"}, {"name": "amount", "type": "integer"}]}'
    )
    result = broker.drl(
        "dataset",
        "register",
        str(source),
        "--as",
        "office",
        "--title",
        "Bad",
        "--schema",
        str(schema),
    )
    line = one_line_error(result, "quality_check_failed")
    assert "line 3" in line


def test_wrong_passphrase(broker: RunningBroker) -> None:
    env = broker.env | {"DRL_PASSPHRASE": "not the passphrase"}
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "dataset", "list", "--as", "ent"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    one_line_error(result, "wrong_passphrase")


def test_broker_unreachable(broker: RunningBroker) -> None:
    env = broker.env | {"DRL_BROKER_URL": "http://127.0.0.1:9"}
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "ledger.cli", "dataset", "list", "--as", "ent"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    one_line_error(result, "broker_unreachable")


def test_unknown_identity(broker: RunningBroker) -> None:
    one_line_error(broker.drl("dataset", "list", "--as", "nobody"), "no_identity")


def test_usage_errors_exit_2_without_traceback(broker: RunningBroker) -> None:
    result = broker.drl("member", "new", "x", "--kind", "pirate", "--name", "X")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "pirate" in result.stderr


def test_cosign_of_an_unknown_request(broker: RunningBroker) -> None:
    one_line_error(broker.drl("admin", "cosign", "999"), "request_not_found")


def test_reinstating_an_active_member(broker: RunningBroker) -> None:
    one_line_error(broker.drl("admin", "reinstate", "ent"), "not_suspended")


def test_a_department_cannot_verify_the_whole_log(broker: RunningBroker) -> None:
    """`drl verify` reads every raw record: overseers only, refused in one line."""
    one_line_error(broker.drl("verify", "--as", "office"), "wrong_role")


def test_admin_commands_need_the_admin_key(broker: RunningBroker, tmp_path: Path) -> None:
    """Without the ADMIN keystore on this machine, `drl admin` refuses in one line."""
    import subprocess

    from tests.support.broker import DRL

    env = broker.env | {"DRL_ADMIN_KEY": str(tmp_path / "absent.key.json")}
    result = subprocess.run(
        [DRL, "admin", "reinstate", "ent"], capture_output=True, text=True, env=env, timeout=120
    )
    one_line_error(result, "key_not_found")

"""The `drl chain` commands: the on-chain walk continues across runs, bad input is one line."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

DRL = [sys.executable, "-m", "ledger.cli"]


def run(
    home: Path, *args: str, passphrase: str = "test-passphrase"
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "DRL_HOME": str(home),
        "DRL_PASSPHRASE": passphrase,
        "DRL_KDF_FAST": "1",
        "COLUMNS": "200",
    }
    env.pop("DRL_CHAIN_URL", None)
    return subprocess.run([*DRL, *args], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def walked_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("drl-home")
    first = run(home, "chain", "walk")
    assert first.returncode == 0, first.stderr
    assert "deploy DataRegistry" in first.stdout
    assert "register #1" in first.stdout
    return home


def test_walk_prints_each_step_with_tx_and_gas(walked_home: Path) -> None:
    status = run(walked_home, "chain", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert '"datasets": 1' in status.stdout
    assert '"anchored_tree_size": 3' in status.stdout


def test_second_walk_continues_the_same_chain(walked_home: Path) -> None:
    second = run(walked_home, "chain", "walk")
    assert second.returncode == 0, second.stderr
    assert "reopened chain" in second.stdout
    assert "deploy" not in second.stdout
    assert "register #2" in second.stdout
    assert "6 signed actions" in second.stdout


def test_shrinking_anchor_is_one_line_naming_the_custom_error(walked_home: Path) -> None:
    result = run(walked_home, "chain", "anchor", "1", "0x" + "ab" * 32)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(
        "error [flow_log_tree_not_growing]: FlowLogTreeNotGrowing("
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_unknown_dataset_names_the_custom_error(walked_home: Path) -> None:
    result = run(walked_home, "chain", "dataset", "999")
    assert result.returncode == 1
    assert "DataRegistryUnknownDataset(datasetId=999)" in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_root_is_refused_before_any_transaction(walked_home: Path) -> None:
    before = run(walked_home, "chain", "status", "--json").stdout
    result = run(walked_home, "chain", "anchor", "100", "0x1234")
    assert result.returncode == 1
    assert "error [bad_hex]" in result.stderr
    assert run(walked_home, "chain", "status", "--json").stdout == before


def test_wrong_passphrase_is_a_clear_error(walked_home: Path) -> None:
    result = run(walked_home, "chain", "status", passphrase="not-the-passphrase")
    assert result.returncode == 1
    assert "error [wrong_passphrase]" in result.stderr
    assert "Traceback" not in result.stderr


def test_non_numeric_id_is_a_usage_error(walked_home: Path) -> None:
    result = run(walked_home, "chain", "dataset", "abc")
    assert result.returncode == 2
    assert "Invalid value" in result.stderr
    assert "Traceback" not in result.stderr

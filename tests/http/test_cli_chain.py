"""The `drl chain` commands on a broker home (broker stopped): status, anchor, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.http_kit import PASSPHRASE, running_broker

DRL = [str(Path(sys.executable).with_name("drl"))]  # the installed executable


def run(home: Path, *args: str, passphrase: str = PASSPHRASE) -> subprocess.CompletedProcess[str]:
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
def broker_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A broker home: `drl serve` deployed the contracts, then stopped (the chain file is free)."""
    home = tmp_path_factory.mktemp("drl-home")
    with running_broker(home):
        pass
    first = run(home, "chain", "anchor", "5", "0x" + "cd" * 32)
    assert first.returncode == 0, first.stderr
    return home


def test_status_reads_the_deployment_and_the_anchored_head(broker_home: Path) -> None:
    status = run(broker_home, "chain", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert '"datasets": 0' in status.stdout
    assert '"anchored_tree_size": 5' in status.stdout


def test_shrinking_anchor_is_one_line_naming_the_custom_error(broker_home: Path) -> None:
    result = run(broker_home, "chain", "anchor", "1", "0x" + "ab" * 32)
    assert result.returncode == 1
    assert result.stderr.strip().startswith(
        "error [flow_log_tree_not_growing]: FlowLogTreeNotGrowing("
    )
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_unknown_dataset_names_the_custom_error(broker_home: Path) -> None:
    result = run(broker_home, "chain", "dataset", "999")
    assert result.returncode == 1
    assert "DataRegistryUnknownDataset(datasetId=999)" in result.stderr
    assert "Traceback" not in result.stderr


def test_malformed_root_is_refused_before_any_transaction(broker_home: Path) -> None:
    before = run(broker_home, "chain", "status", "--json").stdout
    result = run(broker_home, "chain", "anchor", "100", "0x1234")
    assert result.returncode == 1
    assert "error [bad_hex]" in result.stderr
    assert run(broker_home, "chain", "status", "--json").stdout == before


def test_wrong_passphrase_is_a_clear_error(broker_home: Path) -> None:
    result = run(broker_home, "chain", "status", passphrase="not-the-passphrase")
    assert result.returncode == 1
    assert "error [wrong_passphrase]" in result.stderr
    assert "Traceback" not in result.stderr


def test_non_numeric_id_is_a_usage_error(broker_home: Path) -> None:
    result = run(broker_home, "chain", "dataset", "abc")
    assert result.returncode == 2
    assert "Invalid value" in result.stderr
    assert "Traceback" not in result.stderr

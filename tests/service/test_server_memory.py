"""The broker's key derivation leaves no 256 MiB peak in the long-lived server process.

Keystore v3's default scrypt cost (n = 2**18) allocates 256 MiB. `drl serve` creates and unlocks
its keys in short-lived children, so the server's peak resident set (VmHWM) stays near its
resident set at idle. Measured with the real KDF cost (no DRL_KDF_FAST).
"""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from tests.support.broker import start_broker, stop_broker
from tests.support.http_kit import env_for
from tests.support.net import free_port

MIB = 1024


def status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def test_a_broker_started_with_the_real_kdf_cost_peaks_near_its_idle_size(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = env_for(tmp_path / "home", url)
    del env["DRL_KDF_FAST"]  # the keystore default: scrypt n = 2**18, 256 MiB
    for restart in (False, True):  # first start creates the keys; the second unlocks them
        process = start_broker(env, port=port, log=tmp_path / "serve.log", timeout=120)
        try:
            assert httpx.get(f"{url}/v1/health", timeout=10).status_code == 200
            peak = status_kib(process.pid, "VmHWM")
            idle = status_kib(process.pid, "VmRSS")
        finally:
            stop_broker(process)
        assert peak - idle < 64 * MIB, (restart, peak // MIB, idle // MIB)
        assert peak < 256 * MIB, peak // MIB  # the KDF's 256 MiB never lived here
    key = tmp_path / "home" / "broker" / "broker.key.json"
    assert '"n": 262144' in key.read_text()  # it really was the default cost
    assert os.stat(key).st_mode & 0o777 == 0o600

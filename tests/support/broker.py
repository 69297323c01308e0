"""Start and stop a real broker: the installed ``drl serve`` on a free loopback port.

One helper for the tests (``tests.support.http_kit.running_broker``), ``scripts/demo`` and the
benches, so all of them run the broker the way an operator does.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx

#: The installed ``drl`` executable of this interpreter's environment.
DRL = str(Path(sys.executable).with_name("drl"))


class BrokerDidNotStart(RuntimeError):
    """``drl serve`` exited or did not answer /v1/health in time; the message has its log."""


def start_broker(
    env: dict[str, str],
    *,
    port: int,
    log: Path,
    timeout: float = 120.0,
    cwd: Path | None = None,
    args: tuple[str, ...] = (),
) -> subprocess.Popen[bytes]:
    """Run ``drl serve --port PORT [ARGS]`` (output appended to ``log``) until /v1/health
    answers."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [DRL, "serve", "--port", str(port), *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
        )
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise BrokerDidNotStart(f"broker exited ({process.returncode}):\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise BrokerDidNotStart(f"broker did not answer within {timeout:.0f} s")
        time.sleep(0.2)


def stop_broker(process: subprocess.Popen[bytes], *, timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``timeout``."""
    process.terminate()
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()

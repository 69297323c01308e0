"""`drl serve --workers N`: several processes answer one port as one broker.

The siblings are replicas of the first process: the embedded chain is served to them over a
private socket, the BROKER key's nonces are taken under a file lock, the database and blobs
are shared, and one of them anchors. Writes that reach the chain through both processes at
once never collide; the log stays one log that a regulator audits clean. A sibling that dies
is replaced, and stopping (or killing) the first process ends them all.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ledger.protocol.codes import ErrorCode
from tests.http.test_cli_exit_codes import drl, no_traceback, one_line_error
from tests.support.broker import start_broker, stop_broker
from tests.support.http_kit import RunningBroker, env_for, new_member, running_broker
from tests.support.net import free_port
from tests.support.processes import children, wait_until

PURPOSE = "Planning of rooftop solar installations in the harbour ward"
DEPARTMENTS = 4


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def replicas_answering(url: str, tries: int = 40) -> set[str]:
    """The replicas that answer ``tries`` fresh connections (the kernel spreads them)."""
    names = set()
    for _ in range(tries):
        with httpx.Client(base_url=url, timeout=10) as http:
            answer = http.get("/v1/health")
            assert answer.status_code == 200, answer.text
            names.add(answer.json()["replica"])
    return names


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningBroker]:
    root = tmp_path_factory.mktemp("workers")
    replica = {"DRL_REPLICA_ID": "district-broker"}
    with running_broker(root / "home", extra_env=replica, args=("--workers", "3")) as running:
        assert wait_until(lambda: len(children(running.process.pid)) == 2)
        # The siblings listen before the first process does (it starts them, then listens).
        assert wait_until(lambda: len(replicas_answering(running.url, tries=20)) == 3)
        yield running


def test_every_process_answers_the_port_under_a_name_of_its_own(broker: RunningBroker) -> None:
    # Each holds the anchoring lease under its own name, so exactly one of them anchors.
    names = replicas_answering(broker.url, tries=60)
    assert len(names) == 3, names
    assert all(name.startswith("district-broker") for name in names)
    worker = children(broker.process.pid)[0]
    assert "ledger.cli.workers" in Path(f"/proc/{worker}/cmdline").read_text()
    # The passphrase reached the sibling on its stdin, never in its environment or arguments.
    environ = Path(f"/proc/{worker}/environ").read_bytes().split(b"\0")
    assert not [v for v in environ if v.startswith(b"DRL_PASSPHRASE=")]
    assert b"DRL_CHAIN_URL=file://" in b"\0".join(environ)


def test_concurrent_chain_writes_through_both_processes_share_one_key_and_one_log(
    broker: RunningBroker, tmp_path: Path
) -> None:
    handles = [f"office{i}" for i in range(DEPARTMENTS)]
    for handle in handles:
        new_member(broker, handle, "department", f"District Office {handle}")
    new_member(broker, "coop", "enterprise", "Harbour Solar Cooperative")
    new_member(broker, "dpa", "regulator", "Data Protection Authority")
    with broker.client("dpa") as dpa:
        before = dpa.log_head().size

    def register_twice(handle: str) -> list[int]:
        ids = []
        for n in range(2):
            source = tmp_path / f"{handle}-{n}.csv"
            source.write_text(f"ward,roofs\n{handle},{n}\n")
            # A client per dataset: a fresh connection, which the kernel may give either process.
            with broker.client(handle) as office:
                ids.append(office.register(source, title=f"{handle} rooftops {n}").id)
        return ids

    with ThreadPoolExecutor(DEPARTMENTS) as pool:
        registered = [i for ids in pool.map(register_twice, handles) for i in ids]
    assert len(set(registered)) == 2 * DEPARTMENTS

    with broker.client("coop") as coop:
        requests = [coop.request_access(i, purpose=PURPOSE, days=30, uses=1) for i in registered]
    assert len({r.id for r in requests}) == len(registered)
    with broker.client("dpa") as dpa:
        assert dpa.log_head().size == before + 2 * len(registered)
        report = dpa.audit()
    assert report.ok, report.problems


def test_a_sibling_that_dies_is_replaced(broker: RunningBroker) -> None:
    worker, other = children(broker.process.pid)
    os.kill(worker, signal.SIGKILL)
    assert wait_until(lambda: len([p for p in children(broker.process.pid) if p != worker]) == 2)
    assert other in children(broker.process.pid)
    assert wait_until(lambda: len(replicas_answering(broker.url, tries=30)) == 3)
    served = (broker.home.parent / f"{broker.home.name}-serve.log").read_text()
    assert f"worker {worker} exited (-9); starting another" in served
    assert "Traceback" not in served  # the chain socket lost a connection mid-answer quietly


def test_a_service_manager_stopping_every_process_at_once_restarts_none(
    broker: RunningBroker,
) -> None:
    """Last of the module's broker: SIGTERM to every process together, as systemd stops a
    service's cgroup. The siblings finish and exit; none is taken for a crash and restarted,
    and the first process exits 0 after closing the broker."""
    siblings = children(broker.process.pid)
    for pid in [*siblings, broker.process.pid]:
        os.kill(pid, signal.SIGTERM)
    assert broker.process.wait(timeout=30) == 0
    assert wait_until(lambda: not any(alive(pid) for pid in siblings), timeout=15)
    served = (broker.home.parent / f"{broker.home.name}-serve.log").read_text()
    # Only the sibling SIGKILLed above was restarted.
    assert served.count("starting another") == served.count("(-9); starting another")
    assert "Traceback" not in served


def test_a_killed_first_process_takes_its_siblings_along(tmp_path: Path) -> None:
    """Killed with no chance to stop them, the first process still ends its siblings (their
    lifeline pipe closes), and the home opens again at once: no process holds the chain."""
    home = tmp_path / "home"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    process = start_broker(env_for(home, url), port=port, log=log, args=("--workers", "2"))
    assert wait_until(lambda: len(children(process.pid)) == 1)
    (worker,) = children(process.pid)
    process.kill()
    process.wait()
    assert wait_until(lambda: not alive(worker), timeout=15)
    process = start_broker(env_for(home, url), port=port, log=log)
    stop_broker(process)
    assert process.returncode == 0, log.read_text()
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize("count", ["0", "33", "two"])
def test_a_worker_count_out_of_range_is_a_usage_error(tmp_path: Path, count: str) -> None:
    result = drl(env_for(tmp_path / "home", ""), "serve", "--workers", count)
    no_traceback(result)
    assert result.returncode == 2, result.stderr
    assert "--workers" in result.stderr
    assert not (tmp_path / "home" / "broker").exists()


def test_a_port_taken_is_refused_before_anything_is_created(tmp_path: Path) -> None:
    port = free_port()
    with subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import socket,time;s=socket.create_server(('127.0.0.1',{port}));"
            "print('up',flush=True);time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
    ) as holder:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == b"up"
        try:
            result = drl(
                env_for(tmp_path / "home", ""), "serve", "--port", str(port), "--workers", "2"
            )
        finally:
            holder.kill()
    one_line_error(result, ErrorCode.PORT_IN_USE)
    assert not (tmp_path / "home" / "broker").exists()  # no key, no chain, no sibling

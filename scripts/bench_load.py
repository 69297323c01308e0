"""Load on a real broker: signed catalog reads and signed access requests from many clients.

Usage: ``.venv/bin/python scripts/bench_load.py [--seconds 10] [--clients 20 100]
[--url URL --home HOME] [--json]``

Starts ``drl serve`` (embedded chain, SQLite, file blobs, every limit of the hardening on, at
its defaults) on a free loopback port — or uses a running broker (``--url``, with ``--home``
holding its operator's ADMIN key, for the two-replica cluster) — onboards one department that
registers three datasets and one enterprise per client, then runs each phase for ``--seconds``
with an independent load generator (aiohttp, one event loop, one process: it shares the
machine's cores with the broker):

- ``config``: unsigned ``GET /v1/config``, the baseline of the same run (HTTP, routing and a
  JSON answer: what every request pays); every other phase's rate is shown as a ratio to it.
- ``read``: ``GET /v1/datasets?limit=10``, each request signed at send time as the SDK signs
  it (``ledger.protocol.http.sign_request``: fresh nonce and timestamp) by the client's member.
- ``write``: ``POST /v1/requests``, a signed RequestAccess per request (each client its own
  enterprise). The EIP-712 actions are signed before the phase starts — that is the members'
  work, on their own machines — the HTTP request signatures at send time.

Reported per phase and client count: requests/s, p50/p95/p99 latency, errors (anything but the
expected status), the broker's CPU (cores busy) and its peak resident set. After the write
phases the flow log must have grown by exactly one record per accepted write (nothing lost,
nothing duplicated), and a regulator's member-side audit (``BrokerClient.audit``: every record,
signature, anchor and chain event) must be clean.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402

from ledger.client.sdk import BrokerClient  # noqa: E402
from ledger.protocol import http as auth  # noqa: E402
from ledger.protocol.actions import SignedAction  # noqa: E402
from tests.support.broker import start_broker, stop_broker  # noqa: E402
from tests.support.http_kit import RunningBroker, env_for, new_member  # noqa: E402
from tests.support.net import free_port  # noqa: E402

#: Targets on a 2-core machine, load generator included (issue 9).
TARGET_READS_PER_S = 1000.0
TARGET_READ_P99_MS = 250.0
TARGET_WRITES_PER_S = 500.0
PURPOSE = "Load test: capacity planning of the district's open data service"


@dataclass
class Phase:
    name: str
    clients: int
    seconds: float
    requests: int
    errors: int
    rate: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    broker_cpu: float  # cores busy on average
    broker_peak_mib: float | None
    statuses: dict[str, int]
    ratio_to_baseline: float | None = None


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def peak_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


class Load:
    """The members, their signing keys and the deployment a load run signs for."""

    def __init__(self, broker: RunningBroker, clients: list[BrokerClient], datasets: list[int]):
        self.broker = broker
        self.clients = clients
        self.datasets = datasets
        config = clients[0].config()
        self.chain_id, self.deployment = config.chain_id, config.flow_log

    def headers(
        self, client: BrokerClient, method: str, target: str, body: bytes
    ) -> dict[str, str]:
        return auth.sign_request(
            client.require_keys().account,
            method=method,
            target=target,
            body_sha256=hashlib.sha256(body).hexdigest(),
            chain_id=self.chain_id,
            deployment=self.deployment,
        )


async def run_phase(
    load: Load,
    name: str,
    clients: int,
    seconds: float,
    pid: int | None,
    actions: list[list[SignedAction]] | None = None,
) -> Phase:
    url = load.broker.url
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    expected = 201 if name == "write" else 200
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)

    async def worker(index: int, session: aiohttp.ClientSession) -> None:
        client = load.clients[index % len(load.clients)]
        queue = actions[index] if actions is not None else None
        while time.monotonic() < stop_at:
            if name == "config":
                method, target, body, headers = "GET", "/v1/config", b"", {}
            elif name == "read":
                method, target, body = "GET", "/v1/datasets?limit=10", b""
                headers = load.headers(client, method, target, body)
            else:
                assert queue is not None
                if not queue:
                    return
                signed = queue.pop()
                method, target = "POST", "/v1/requests"
                body = json.dumps({"signed": signed.to_json()}).encode()
                headers = load.headers(client, method, target, body)
                headers["Content-Type"] = "application/json"
            started = time.perf_counter()
            try:
                async with session.request(method, url + target, data=body, headers=headers) as r:
                    await r.read()
                    status = r.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                statuses[type(exc).__name__] += 1
                continue
            latencies.append(time.perf_counter() - started)
            statuses[str(status)] += 1

    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        cpu_before = cpu_seconds(pid) if pid else 0.0
        began = time.monotonic()
        await asyncio.gather(*(worker(i, session) for i in range(clients)))
        wall = time.monotonic() - began
        cpu = (cpu_seconds(pid) - cpu_before) / wall if pid else float("nan")
    done = sum(statuses.values())
    ok = statuses.get(str(expected), 0)
    return Phase(
        name=name,
        clients=clients,
        seconds=round(wall, 2),
        requests=done,
        errors=done - ok,
        rate=ok / wall,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p95_ms=percentile(latencies, 0.95) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        broker_cpu=cpu,
        broker_peak_mib=peak_mib(pid) if pid else None,
        statuses=dict(statuses),
    )


def presign(load: Load, per_client: int, clients: int) -> list[list[SignedAction]]:
    """Each client's RequestAccess actions, signed ahead (a member's own machine does this)."""
    out = []
    for index in range(clients):
        client = load.clients[index % len(load.clients)]
        address = client.require_keys().address
        out.append(
            [
                client.sign(
                    "request",
                    {
                        "requester": address,
                        "datasetId": load.datasets[n % len(load.datasets)],
                        "purpose": PURPOSE,
                        "days": 30,
                        "maxUses": 3,
                    },
                )
                for n in range(per_client)
            ]
        )
    return out


def log_size(client: BrokerClient) -> int:
    return client.log_head().size


def setup(broker: RunningBroker, work: Path, members: int) -> Load:
    new_member(broker, "owner", "department", "District Statistics Office")
    new_member(broker, "regulator", "regulator", "Data Bureau Oversight")
    datasets = []
    with broker.client("owner") as owner:
        for n in range(3):
            source = work / f"d{n}.csv"
            source.write_text("ward,count\n" + "".join(f"w{i},{i * n}\n" for i in range(200)))
            datasets.append(owner.register(source, title=f"Ward counts {n}").id)
    clients = []
    for n in range(members):
        new_member(broker, f"ent{n}", "enterprise", f"Enterprise {n}")
        client = broker.client(f"ent{n}")
        client.config()
        clients.append(client)
    return Load(broker, clients, datasets)


def table(phases: list[Phase]) -> str:
    lines = [
        "| phase | clients | req/s | vs config | p50 ms | p95 ms | p99 ms | errors |"
        " broker CPU | broker peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in phases:
        ratio = "" if p.ratio_to_baseline is None else f"{p.ratio_to_baseline:.2f}"
        peak = "" if p.broker_peak_mib is None else f"{p.broker_peak_mib:.0f}"
        lines.append(
            f"| {p.name} | {p.clients} | {p.rate:,.0f} | {ratio} | {p.p50_ms:.1f} | "
            f"{p.p95_ms:.1f} | {p.p99_ms:.1f} | {p.errors} | {p.broker_cpu:.2f} | {peak} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--write-clients", type=int, nargs="+", default=[20])
    parser.add_argument("--url", help="a running broker (default: start one)")
    parser.add_argument("--home", type=Path, help="with --url: the DRL_HOME of its operator")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("DRL_KDF_FAST", "1")
    with tempfile.TemporaryDirectory(prefix="drl-load-") as tmp:
        work = Path(tmp)
        process = None
        if args.url:
            broker = RunningBroker(home=args.home, url=args.url, process=None)  # type: ignore[arg-type]
            pid = None
        else:
            home = work / "home"
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            process = start_broker(env_for(home, url), port=port, log=work / "serve.log")
            broker = RunningBroker(home=home, url=url, process=process)
            pid = process.pid
        try:
            members = max([*args.clients, *args.write_clients])
            print(f"setting up {members} members and 3 datasets ...", file=sys.stderr)
            load = setup(broker, work, members)
            phases: list[Phase] = []
            for clients in args.clients:
                for name in ("config", "read"):
                    phase = asyncio.run(run_phase(load, name, clients, args.seconds, pid))
                    phases.append(phase)
                    print(f"  {name} x{clients}: {phase.rate:,.0f}/s", file=sys.stderr)
            before = log_size(load.clients[0])
            accepted = 0
            for clients in args.write_clients:
                per_client = int(args.seconds * TARGET_WRITES_PER_S * 3 / clients) + 10
                print(f"  signing {per_client * clients} requests ahead ...", file=sys.stderr)
                actions = presign(load, per_client, clients)
                phase = asyncio.run(
                    run_phase(load, "write", clients, args.seconds, pid, actions=actions)
                )
                phases.append(phase)
                accepted += phase.statuses.get("201", 0)
                print(f"  write x{clients}: {phase.rate:,.0f}/s", file=sys.stderr)
            baseline = {p.clients: p.rate for p in phases if p.name == "config"}
            for p in phases:
                base = baseline.get(p.clients) or next(iter(baseline.values()), None)
                p.ratio_to_baseline = p.rate / base if base else None
            grown = log_size(load.clients[0]) - before
            with broker.client("regulator") as regulator:
                report = regulator.audit()
            result: dict[str, Any] = {
                "phases": [asdict(p) for p in phases],
                "accepted_writes": accepted,
                "log_records_added": grown,
                "audit_clean": report.ok,
                "audit_problems": [str(p) for p in report.problems][:10],
            }
            for client in load.clients:
                client.close()
        finally:
            if process is not None:
                stop_broker(process)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(table(phases))
    print(
        f"\naccepted writes {accepted}, log records added {grown} "
        f"({'exactly one each' if grown == accepted else 'MISMATCH'}); "
        f"member-side audit {'clean' if result['audit_clean'] else 'FAILED'}"
    )
    reads = [p for p in phases if p.name == "read" and p.clients == max(args.clients)]
    writes = [p for p in phases if p.name == "write"]
    if reads:
        r = reads[0]
        print(
            f"reads at {r.clients} clients: {r.rate:,.0f}/s "
            f"({r.rate / TARGET_READS_PER_S:.2f} of the {TARGET_READS_PER_S:,.0f}/s target), "
            f"p99 {r.p99_ms:.0f} ms (target < {TARGET_READ_P99_MS:.0f})"
        )
    if writes:
        w = writes[0]
        print(
            f"writes at {w.clients} clients: {w.rate:,.0f}/s "
            f"({w.rate / TARGET_WRITES_PER_S:.2f} of the {TARGET_WRITES_PER_S:,.0f}/s target)"
        )


if __name__ == "__main__":
    main()

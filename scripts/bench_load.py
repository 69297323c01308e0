"""Load on a real broker: signed catalog reads and signed access requests from many clients.

Usage: ``.venv/bin/python scripts/bench_load.py [--seconds 10] [--clients 20 100]
[--write-clients 20] [--cluster] [--json]``

Starts ``drl serve`` (embedded chain, SQLite, file blobs, every limit of the hardening on, at
its defaults) on a free loopback port — or, with ``--cluster``, the two-replica cluster of
docs/deploy.md (PostgreSQL, anvil, two ``drl serve`` sharing database, node and blob folder;
clients alternate between the replicas as a load balancer would) — onboards one department that
registers three datasets and one enterprise per client, then runs each phase for ``--seconds``
with an independent load generator (aiohttp, one event loop, one process: it shares the
machine's cores with the broker):

- ``config``: unsigned ``GET /v1/config``, the baseline of the same run (HTTP, routing and a
  JSON answer: what every request pays); every other phase's rate is shown as a ratio to it.
- ``read``: ``GET /v1/datasets?limit=10``, each request signed as the SDK signs it
  (``ledger.protocol.http.sign_request``: a fresh nonce, the current timestamp) by the client's
  member, just before the phase (a signature is valid for five minutes; signing is the
  members' work, on their own machines, so the load generator spends its core on HTTP).
- ``write``: ``POST /v1/requests``, a signed RequestAccess per request (each client its own
  enterprise). The EIP-712 actions are signed before the phase starts — that is the members'
  work, on their own machines — the HTTP request signatures at send time.

Reported per phase and client count: requests/s, p50/p95/p99 latency, errors (anything but the
expected status), the broker's CPU (cores busy, all its processes), the load generator's, and
the broker's peak resident set. After the write phases the flow log must have grown by exactly
one record per accepted write (nothing lost, nothing duplicated), and a regulator's member-side
audit (``BrokerClient.audit``: every record, signature, anchor and chain event) must be clean.

``--workers N`` (default: one per core) runs the single broker as ``drl serve --workers N``; its
CPU and peak are those of all its processes (CPU summed, peak the largest).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import uvloop  # noqa: E402
from eth_account.signers.local import LocalAccount  # noqa: E402

from ledger.client import keystore  # noqa: E402
from ledger.client.member import MemberKeys  # noqa: E402
from ledger.client.sdk import BrokerClient  # noqa: E402
from ledger.crypto import generate_keypair  # noqa: E402
from ledger.keys import load_account  # noqa: E402
from ledger.protocol import http as auth  # noqa: E402
from ledger.protocol.actions import SignedAction  # noqa: E402
from tests.support.broker import start_broker, stop_broker  # noqa: E402
from tests.support.http_kit import PASSPHRASE, env_for  # noqa: E402
from tests.support.net import free_port  # noqa: E402
from tests.support.processes import children  # noqa: E402

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
    client_cpu: float  # the load generator's cores busy on average
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


@dataclass
class Target:
    """Where the load goes: the replicas' URLs and processes, and how to act as the operator."""

    urls: list[str]
    pids: list[int]
    members_home: Path
    operator: MemberKeys
    #: PostgreSQL's libpq conninfo (cluster only): connection churn is read from it.
    postgres: str | None = None
    #: ``drl serve --workers``: the first process, whose siblings are counted at each phase.
    parent: int | None = None

    def processes(self) -> list[int]:
        """The broker processes now (a sibling restarted since the start is counted too)."""
        if self.parent is None:
            return list(self.pids)
        return [self.parent, *children(self.parent)]


def sessions_opened(conninfo: str) -> int:
    """Sessions (connections) ever established to the database (PostgreSQL 14+ counts them)."""
    import psycopg

    with psycopg.connect(conninfo) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return int(row[0]) if row else 0


class Load:
    """The members, their signing keys and the deployment a load run signs for."""

    def __init__(self, target: Target, clients: list[BrokerClient], datasets: list[int]):
        self.target = target
        self.clients = clients
        self.datasets = datasets
        config = clients[0].config()
        self.chain_id, self.deployment = config.chain_id, config.flow_log

    def url(self, index: int) -> str:
        return self.target.urls[index % len(self.target.urls)]

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
    actions: list[list[SignedAction]] | None = None,
    signed_reads: list[list[dict[str, str]]] | None = None,
) -> Phase:
    pids = load.target.processes()
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    expected = 201 if name == "write" else 200
    stop_at = time.monotonic() + seconds
    connector = aiohttp.TCPConnector(limit=clients, force_close=False)
    timeout = aiohttp.ClientTimeout(total=30)

    async def worker(index: int, session: aiohttp.ClientSession) -> None:
        client = load.clients[index % len(load.clients)]
        url = load.url(index)
        queue = actions[index] if actions is not None else None
        while time.monotonic() < stop_at:
            if name == "config":
                method, target, body, headers = "GET", "/v1/config", b"", {}
            elif name == "read":
                method, target, body = "GET", READ_TARGET, b""
                ahead = signed_reads[index] if signed_reads else None
                headers = ahead.pop() if ahead else load.headers(client, method, target, body)
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
        cpu_before = sum(cpu_seconds(pid) for pid in pids)
        own_before = time.process_time()
        began = time.monotonic()
        await asyncio.gather(*(worker(i, session) for i in range(clients)))
        wall = time.monotonic() - began
        cpu = (sum(cpu_seconds(pid) for pid in pids) - cpu_before) / wall
        own = (time.process_time() - own_before) / wall
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
        client_cpu=own,
        broker_peak_mib=max((peak_mib(pid) or 0.0 for pid in pids), default=None),
        statuses=dict(statuses),
    )


#: The signed read: a page of the catalog.
READ_TARGET = "/v1/datasets?limit=10"


def presign_reads(load: Load, per_client: int, clients: int) -> list[list[dict[str, str]]]:
    """Each client's read requests, signed ahead (fresh nonces, timestamps valid for minutes)."""
    return [
        [
            load.headers(load.clients[index % len(load.clients)], "GET", READ_TARGET, b"")
            for _ in range(per_client)
        ]
        for index in range(clients)
    ]


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


def member(target: Target, handle: str, kind: str, name: str, url: str) -> BrokerClient:
    """A new member, onboarded by the operator, as a client of ``url``."""
    profile = keystore.create(
        target.members_home,
        handle,
        kind=kind,
        name=name,
        passphrase=PASSPHRASE,  # type: ignore[arg-type]
    )
    with BrokerClient(target.urls[0], target.operator) as op:
        op.onboard(
            address=profile.address,
            kind=profile.kind,
            name=profile.name,
            key_suite=profile.key_suite,
            encryption_key=bytes.fromhex(profile.encryption_key[2:]),
        )
    return BrokerClient(url, keystore.unlock(target.members_home, handle, PASSPHRASE))


def setup(target: Target, work: Path, members: int) -> tuple[Load, BrokerClient]:
    regulator = member(target, "regulator", "regulator", "Data Bureau Oversight", target.urls[-1])
    datasets = []
    with member(target, "owner", "department", "District Statistics Office", target.urls[0]) as o:
        for n in range(3):
            source = work / f"d{n}.csv"
            source.write_text("ward,count\n" + "".join(f"w{i},{i * n}\n" for i in range(200)))
            datasets.append(o.register(source, title=f"Ward counts {n}").id)
    clients = []
    for n in range(members):
        url = target.urls[n % len(target.urls)]
        client = member(target, f"ent{n}", "enterprise", f"Enterprise {n}", url)
        client.config()
        clients.append(client)
    return Load(target, clients, datasets), regulator


def table(phases: list[Phase]) -> str:
    lines = [
        "| phase | clients | req/s | vs config | p50 ms | p95 ms | p99 ms | errors |"
        " broker CPU | client CPU | broker peak MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in phases:
        ratio = "" if p.ratio_to_baseline is None else f"{p.ratio_to_baseline:.2f}"
        peak = "" if p.broker_peak_mib is None else f"{p.broker_peak_mib:.0f}"
        lines.append(
            f"| {p.name} | {p.clients} | {p.rate:,.0f} | {ratio} | {p.p50_ms:.1f} | "
            f"{p.p95_ms:.1f} | {p.p99_ms:.1f} | {p.errors} | {p.broker_cpu:.2f} | "
            f"{p.client_cpu:.2f} | {peak} |"
        )
    return "\n".join(lines)


@contextmanager
def single_broker(work: Path, workers: int) -> Iterator[Target]:
    """One ``drl serve [--workers N]`` on the embedded defaults, as ``./scripts/demo`` runs it."""
    home = work / "home"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    process = start_broker(
        env_for(home, url), port=port, log=work / "serve.log", args=("--workers", str(workers))
    )
    try:
        admin = load_account(home / "admin" / "admin.key.json", PASSPHRASE)
        yield Target(
            [url], [process.pid], work / "members", operator_keys(admin), parent=process.pid
        )
    finally:
        stop_broker(process)


@contextmanager
def two_replicas(work: Path) -> Iterator[Target]:
    """The cluster of docs/deploy.md and tests/scaleout: PostgreSQL, anvil, replicas a and b."""
    from tests.scaleout.cluster import local_cluster
    from tests.support.chain import running_anvil
    from tests.support.pg import fresh_database, throwaway_cluster

    with ExitStack() as stack:
        pg = stack.enter_context(throwaway_cluster())
        node = stack.enter_context(running_anvil(work))
        database_url = fresh_database(pg)
        cluster = stack.enter_context(
            local_cluster(work / "brokers", database_url=database_url, node_url=node)
        )
        replicas = [cluster.replicas["a"], cluster.replicas["b"]]
        admin = load_account(cluster.admin_key, PASSPHRASE)
        yield Target(
            [r.url for r in replicas],
            [r.process.pid for r in replicas],
            work / "members",
            operator_keys(admin),
            postgres=pg.conninfo(database_url.rsplit("/", 1)[1]),
        )


@contextmanager
def profiled(target: Target, folder: Path | None, phase: str, seconds: float) -> Iterator[None]:
    """With ``--profile``: py-spy samples each broker process for the phase (where CPU goes).

    Only the thread holding the GIL is sampled (``--gil``): the broker's Python runs on one
    core at a time, so that is the resource shared out; without it, threads waiting for the
    GIL count as busy and the admission thread's share doubles.
    """
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    spy = str(Path(sys.executable).parent / "py-spy")
    duration = str(max(1, int(seconds)))
    samplers = [
        subprocess.Popen(
            [
                spy,
                "record",
                "-p",
                str(pid),
                "-d",
                duration,
                "-r",
                "200",
                "-f",
                "raw",
                "--nonblocking",
                "--gil",
                "-o",
                str(folder / f"{phase}-{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in target.processes()
    ]
    try:
        yield
    finally:
        for sampler in samplers:
            sampler.wait(timeout=seconds + 30)
    shares = hardening_shares(sorted(folder.glob(f"{phase}-*.txt")))
    if shares:
        parts = ", ".join(f"{name} {share:.1%}" for name, share in shares.items())
        print(f"  {phase}: hardening's share of GIL-held samples: {parts}", file=sys.stderr)


#: The hardening of issue 9 on the request path, by the frames that do it: a sample counts
#: if any frame of its stack is one of these (the body checks only when they are the frame
#: running, since the rest of the app runs inside them).
HARDENING = {
    "single-use nonces and standing (admission)": ("Admission.admit",),
    "write rate": ("WriteRate.take",),
    "transfer limits": ("Transfers.", "PacedDownload.", "Pace."),
    "body size and depth": ("too_deep", "_read_body", "_replay"),
}
_BODY_LIMIT_SELF = "BodyLimit.__call__"


def hardening_shares(files: list[Path]) -> dict[str, float]:
    """Each hardening step's share of the samples py-spy took of the broker (and their total)."""
    counts: Counter[str] = Counter()
    total = 0
    for file in files:
        for line in file.read_text().splitlines():
            stack, _, n = line.rpartition(" ")
            if not stack or not n.isdigit():
                continue
            total += int(n)
            frames = stack.split(";")
            for name, marks in HARDENING.items():
                if any(mark in frame for frame in frames for mark in marks):
                    counts[name] += int(n)
                    break
            else:
                if _BODY_LIMIT_SELF in frames[-1]:
                    counts["body size and depth"] += int(n)
    if not total:
        return {}
    shares = {name: counts[name] / total for name in HARDENING}
    shares["total"] = sum(counts.values()) / total
    return shares


def operator_keys(admin: LocalAccount) -> MemberKeys:
    """The ADMIN key as a client identity (its HPKE key is never used: it reads no data)."""
    return MemberKeys(account=admin, hpke=generate_keypair()[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--write-clients", type=int, nargs="*", default=[20])
    parser.add_argument("--cluster", action="store_true", help="two replicas on PostgreSQL")
    parser.add_argument(
        "--workers",
        type=int,
        default=os.cpu_count() or 1,
        help="`drl serve --workers N` for the single broker (default: one per core)",
    )
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="sample each broker with py-spy during each phase (raw stacks, one file per phase)",
    )
    args = parser.parse_args()
    os.environ.setdefault("DRL_KDF_FAST", "1")
    with tempfile.TemporaryDirectory(prefix="drl-load-") as tmp:
        work = Path(tmp)
        deployment = (
            two_replicas(work) if args.cluster else single_broker(work, workers=args.workers)
        )
        with deployment as target:
            members = max([*args.clients, *args.write_clients])
            print(f"setting up {members} members and 3 datasets ...", file=sys.stderr)
            load, regulator = setup(target, work, members)
            phases: list[Phase] = []
            sessions_before = sessions_opened(target.postgres) if target.postgres else 0
            for clients in args.clients:
                for name in ("config", "read"):
                    reads = None
                    if name == "read":
                        per_client = int(args.seconds * TARGET_READS_PER_S * 2 / clients) + 10
                        reads = presign_reads(load, per_client, clients)
                    with profiled(target, args.profile, f"{name}-{clients}", args.seconds):
                        phase = uvloop.run(
                            run_phase(load, name, clients, args.seconds, signed_reads=reads)
                        )
                    phases.append(phase)
                    print(f"  {name} x{clients}: {phase.rate:,.0f}/s", file=sys.stderr)
            before = log_size(load.clients[0])
            accepted = 0
            for clients in args.write_clients:
                per_client = int(args.seconds * TARGET_WRITES_PER_S * 3 / clients) + 10
                print(f"  signing {per_client * clients} requests ahead ...", file=sys.stderr)
                actions = presign(load, per_client, clients)
                with profiled(target, args.profile, f"write-{clients}", args.seconds):
                    phase = uvloop.run(
                        run_phase(load, "write", clients, args.seconds, actions=actions)
                    )
                phases.append(phase)
                accepted += phase.statuses.get("201", 0)
                print(f"  write x{clients}: {phase.rate:,.0f}/s", file=sys.stderr)
            baseline = {p.clients: p.rate for p in phases if p.name == "config"}
            for p in phases:
                base = baseline.get(p.clients) or next(iter(baseline.values()), None)
                p.ratio_to_baseline = p.rate / base if base else None
            grown = log_size(load.clients[0]) - before
            # One session is this script's own reading after the load.
            churn = (
                sessions_opened(target.postgres) - sessions_before - 1 if target.postgres else None
            )
            with regulator:
                report = regulator.audit()
            result: dict[str, Any] = {
                "deployment": (
                    "two replicas"
                    if args.cluster
                    else f"single broker, drl serve --workers {args.workers}"
                ),
                "phases": [asdict(p) for p in phases],
                "accepted_writes": accepted,
                "log_records_added": grown,
                "audit_clean": report.ok,
                "postgres_connections_opened_under_load": churn,
                "audit_problems": [str(p) for p in report.problems][:10],
            }
            for client in load.clients:
                client.close()
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(table(phases))
    print(
        f"\naccepted writes {accepted}, log records added {grown} "
        f"({'exactly one each' if grown == accepted else 'MISMATCH'}); "
        f"member-side audit {'clean' if result['audit_clean'] else 'FAILED'}"
    )
    if result["postgres_connections_opened_under_load"] is not None:
        print(
            "PostgreSQL connections opened during the load (both replicas): "
            f"{result['postgres_connections_opened_under_load']} (pools sized to the request "
            "threads, with pre-ping, open each connection once)"
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

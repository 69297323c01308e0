"""Trace at scale: dataset and member traces over a log of a million signed records.

Usage: ``.venv/bin/python scripts/bench_trace.py [--records 1000000] [--datasets 1000]
[--members 200] [--queries 200] [--rebuild] [--json]``

**Build** (cached under ``.bench/`` by its parameters; ``--rebuild`` starts over). A broker
home is created as ``drl serve`` creates it (``ledger.broker.open_broker``: embedded py-evm
chain, SQLite, file blobs, ADMIN and BROKER keys); the operator onboards ``--members`` members
(a fifth departments, one regulator, the rest enterprises), the departments register
``--datasets`` small datasets (a tenth derived from an earlier one, a twentieth a new version
of their own), each through the registration service and its chain transaction. The rest of
the log is signed access requests from the enterprises, over datasets drawn with a Zipf
(s = 1) skew (a few popular datasets, a long tail), each signed with the member's key
(EIP-712, libsecp256k1: ``SignedAction.digest`` + ``ledger.protocol.http.sign_digest``, in a
worker process) and recorded through the broker's batch path (``requests.request_access_batch``,
what ``POST /v1/requests`` coalesces into: every signature, nonce, member and dataset checked,
one transaction per batch). Heads are anchored on chain every 100,000 records. Copies of the
home are kept at the sizes the verification steps need.

**Measured** (each step against the cached home):

1. The broker's traces over HTTP: a real ``drl serve`` on the home; ``--queries`` signed
   ``GET /v1/trace/datasets/ID`` and ``GET /v1/trace/members/ADDRESS`` (first page, up to 500
   flows, as the console and ``BrokerClient.trace_*`` ask) for random datasets and members,
   signed by the regulator just before sending (signing is not timed), against the unsigned
   ``GET /v1/config`` of the same run, and the signed ``GET /v1/datasets?limit=10`` (what any
   signed request pays: signature recovery, the single-use nonce written). Target: p95 < 50 ms.
2. Local verification as the log grows (10k, 100k, 1M records, up to ``--records``): the
   regulator's ``BrokerClient.audit`` (``ledger.audit.verify`` over HTTP from the broker's raw
   records and the embedded chain through the broker's relay), in a child process: wall time
   and peak resident memory. ``full``: from scratch, at 99% of the size (on the copy of the
   home kept then); ``incremental``: then the broker at the full size, from the checkpoint that
   run kept: the last 1% only.
3. The member-side trace over the regulator's own audit state (``ledger.audit.dataset_trace``
   and ``member_trace``), as ``drl trace`` and the console compute it, and the console's
   ``/data/flow`` and ``/data/timeline`` endpoints when ``ledger.console`` exists.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DRL_KDF_FAST", "1")

import httpx  # noqa: E402

from ledger.client import keystore  # noqa: E402
from ledger.protocol import http as auth  # noqa: E402
from ledger.protocol.actions import (  # noqa: E402
    UNSPECIFIED_FORM,
    Domains,
    SignedAction,
    default_deadline,
    new_nonce,
    sign_action,
    to_json_value,
)
from tests.support.broker import start_broker, stop_broker  # noqa: E402
from tests.support.http_kit import PASSPHRASE, env_for  # noqa: E402
from tests.support.net import free_port  # noqa: E402

#: Log sizes local verification is measured at (those up to --records, and --records itself).
SCALE = (10_000, 100_000, 1_000_000)
TARGET_P95_MS = 50.0
#: Bump when the build changes: a cached log of another version is not reused.
BUILD_VERSION = 1
BATCH = 5_000
ANCHOR_EVERY = 100_000
PURPOSES = (
    "quarterly statistics for the regional planning report",
    "rooftop solar potential study for the district",
    "traffic model calibration for the new tram line",
    "public health surveillance of seasonal influenza",
    "academic research on housing affordability",
    "audit of subsidy payments by the court of auditors",
)


# -- building the log -------------------------------------------------------------------------


@dataclass
class Built:
    """What the cache holds: the home, its copies by log size, who is who."""

    records: int
    datasets: list[int]
    departments: list[str]
    enterprises: list[str]
    regulator: str
    snapshots: dict[str, str]  # log size -> home directory (a copy, or the home itself)
    build_seconds: float
    request_seconds: float


def cache_dir(args: argparse.Namespace) -> Path:
    return (
        ROOT
        / ".bench"
        / (f"trace-v{BUILD_VERSION}-r{args.records}-d{args.datasets}-m{args.members}")
    )


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def verify_sizes(records: int) -> list[int]:
    return sorted({s for s in SCALE if s < records} | {records})


def snapshot_sizes(records: int) -> list[int]:
    """Log sizes a copy of the home is kept at: 99% of each verified size, and each one."""
    out = set()
    for size in verify_sizes(records):
        out.add(size * 99 // 100)
        if size != records:
            out.add(size)
    return sorted(out)


_KEYS: list[tuple[bytes, str]] = []
_DATASETS: list[int] = []
_WEIGHTS: list[float] = []
_DOMAINS: Domains | None = None


def _init_signer(
    keys: list[tuple[bytes, str]], datasets: list[int], weights: list[float], domains: Domains
) -> None:
    global _DOMAINS
    _KEYS[:] = keys
    _DATASETS[:] = datasets
    _WEIGHTS[:] = weights
    _DOMAINS = domains


def request_message(requester: str, dataset_id: int, rng: random.Random) -> dict[str, Any]:
    message = {
        **UNSPECIFIED_FORM,
        "requester": requester,
        "datasetId": dataset_id,
        "purpose": rng.choice(PURPOSES),
        "days": rng.choice((7, 30, 90, 365)),
        "maxUses": rng.choice((1, 3, 10)),
        "nonce": new_nonce(),
        "deadline": default_deadline(),
    }
    return {k: to_json_value(v) for k, v in message.items()}


def fast_sign(key: bytes, address: str, message: dict[str, Any], domains: Domains) -> SignedAction:
    """A request signed as ``sign_action`` signs it, with libsecp256k1 (RFC 6979: same bytes)."""
    unsigned = SignedAction("request", address, message, b"")
    return SignedAction(
        "request", address, message, auth.sign_digest(key, unsigned.digest(domains))
    )


def _sign_batch(job: tuple[int, int]) -> list[SignedAction]:
    """``count`` requests from random enterprises over Zipf-drawn datasets (a worker's job)."""
    seed, count = job
    assert _DOMAINS is not None
    rng = random.Random(seed)
    picks = rng.choices(_DATASETS, weights=_WEIGHTS, k=count)
    out = []
    for dataset_id in picks:
        key, address = _KEYS[rng.randrange(len(_KEYS))]
        out.append(fast_sign(key, address, request_message(address, dataset_id, rng), _DOMAINS))
    return out


def _signed_batches(
    keys: list[tuple[bytes, str]],
    datasets: list[int],
    domains: Domains,
    sizes: Sequence[int],
) -> Iterator[list[SignedAction]]:
    """Batches of signed requests, signed by one worker process a few batches ahead."""
    weights = [1.0 / (rank + 1) for rank in range(len(datasets))]
    shuffled = list(datasets)
    random.Random(7).shuffle(shuffled)  # popularity is not registration order
    with Pool(1, initializer=_init_signer, initargs=(keys, shuffled, weights, domains)) as pool:
        pending = []
        jobs = iter(enumerate(sizes))
        for _ in range(3):
            job = next(jobs, None)
            if job is not None:
                pending.append(pool.apply_async(_sign_batch, (job,)))
        while pending:
            batch = pending.pop(0).get()
            job = next(jobs, None)
            if job is not None:
                pending.append(pool.apply_async(_sign_batch, (job,)))
            yield batch


def build(args: argparse.Namespace, cache: Path) -> Built:
    """Create the home and its log (see the module docstring); ``built.json`` marks it done."""
    from eth_account import Account

    from ledger import crypto
    from ledger.broker import Broker, open_broker
    from ledger.client.member import MemberKeys, prepare_upload, sign
    from ledger.keys import load_account
    from ledger.services import datasets, flowlog, members, requests
    from ledger.settings import Settings
    from ledger.types import kind_code

    if cache.exists():
        shutil.rmtree(cache)
    home = cache / "home"
    work = cache / "work"
    work.mkdir(parents=True)
    settings = Settings(home=home, anchor_every_seconds=3600)
    began = time.perf_counter()

    def reopen() -> Broker:
        return open_broker(settings, PASSPHRASE)

    broker = reopen()
    ledger = broker.ledger
    admin = load_account(home / "admin" / "admin.key.json", PASSPHRASE)
    operator = MemberKeys(account=admin, hpke=crypto.generate_keypair("x25519")[0])

    def onboard(address: str, kind: str, name: str, suite: int, key: bytes) -> None:
        message = {
            "member": address,
            "kind": kind_code(kind),  # type: ignore[arg-type]
            "name": name,
            "keySuite": suite,
            "encryptionKey": key,
        }
        members.onboard(ledger, sign(operator, "onboard", message, ledger.domains))

    regulator = keystore.create(
        home, "regulator", kind="regulator", name="Data Bureau Oversight", passphrase=PASSPHRASE
    )
    onboard(
        regulator.address,
        "regulator",
        regulator.name,
        regulator.key_suite,
        bytes.fromhex(regulator.encryption_key[2:]),
    )
    n_departments = max(1, args.members // 5)
    n_enterprises = max(1, args.members - n_departments - 1)
    people: dict[str, list[MemberKeys]] = {"department": [], "enterprise": []}
    for kind, count in (("department", n_departments), ("enterprise", n_enterprises)):
        for n in range(count):
            private, public = crypto.generate_keypair("x25519")
            keys = MemberKeys(account=Account.create(), hpke=private)
            onboard(keys.address, kind, f"{kind.title()} {n}", public.suite.id, public.to_bytes())
            people[kind].append(keys)
    _say(f"  onboarded {args.members} members ({time.perf_counter() - began:.0f} s)")

    rng = random.Random(11)
    registered: list[tuple[int, str, str]] = []  # id, owner, classification
    for n in range(args.datasets):
        owner = people["department"][n % n_departments]
        classification = ("public", "internal", "internal", "sensitive")[n % 4]
        parents: tuple[int, ...] = ()
        previous = 0
        if registered and n % 10 == 5:
            parent = rng.choice(registered)
            parents = (parent[0],)
            levels = ("public", "internal", "sensitive")
            classification = max(classification, parent[2], key=levels.index)
        elif n % 20 == 7:
            own = [r for r in registered if r[1] == owner.address]
            if own:
                previous = rng.choice(own)[0]
        source = work / "data.csv"
        source.write_text(
            "ward,year,count\n" + "".join(f"w{i},{2000 + n % 25},{i * n}\n" for i in range(20))
        )
        prepared = prepare_upload(
            owner,
            source,
            workdir=work,
            title=f"Dataset {n} of {owner.address[:8]}",
            domains=ledger.domains,
            chain_nonce=ledger.chain.nonce("DataRegistry", owner.address),
            classification=classification,  # type: ignore[arg-type]
            parents=parents,
            previous_version=previous,
        )
        with prepared.ciphertext_path.open("rb") as fh:
            row = datasets.register(
                ledger,
                prepared.signed,
                metadata=prepared.metadata,
                owner_wrapped_key=prepared.owner_wrapped_key,
                ciphertext=fh,
            )
        prepared.ciphertext_path.unlink()
        registered.append((row.id, owner.address, classification))
        if (n + 1) % 100 == 0:
            _say(f"  registered {n + 1}/{args.datasets} ({time.perf_counter() - began:.0f} s)")

    def size() -> int:
        with ledger.db.session() as session:
            return flowlog.size(session)

    start = size()
    if start >= args.records:
        raise SystemExit(f"--records must exceed the {start} setup records")
    broker.anchorer.run_once()
    # Batches cut so that the log reaches each snapshot size exactly.
    stops = [s for s in snapshot_sizes(args.records) if s > start] + [args.records]
    sizes: list[int] = []
    at = start
    for stop in stops:
        while at < stop:
            sizes.append(min(BATCH, stop - at))
            at += sizes[-1]
    keys = [(bytes(k.account.key), k.address) for k in people["enterprise"]]
    dataset_ids = [r[0] for r in registered]
    sample = fast_sign(keys[0][0], keys[0][1], request_message(keys[0][1], 1, rng), ledger.domains)
    assert (
        sample.signature
        == sign_action(
            people["enterprise"][0].account, "request", sample.message, ledger.domains
        ).signature
    ), "libsecp256k1 signing differs from eth_account's"

    snapshots: dict[str, str] = {}
    requests_began = time.perf_counter()
    last_anchor = start
    at = start
    batches = _signed_batches(keys, dataset_ids, ledger.domains, sizes)
    for batch in batches:
        outcome = requests.request_access_batch(ledger, batch)
        if outcome.refused:
            raise SystemExit(f"refused: {outcome.refused[:3]}")
        at += len(batch)
        if at - last_anchor >= ANCHOR_EVERY:
            broker.anchorer.run_once()
            last_anchor = at
        if at in stops and at != args.records:
            broker.anchorer.run_once()  # nothing pending in the copy: serving it changes no log
            last_anchor = at
            broker.close()
            target = cache / "snapshots" / str(at)
            shutil.copytree(home, target / "home")
            snapshots[str(at)] = str(target / "home")
            broker = reopen()
            ledger = broker.ledger
            _say(f"  kept a copy at {at:,} records")
        done = at - start
        if done % 50_000 < len(batch) or at == args.records:
            rate = done / (time.perf_counter() - requests_began)
            _say(
                f"  requests {done:,}/{args.records - start:,} ({rate:,.0f}/s, "
                f"{time.perf_counter() - began:.0f} s)"
            )
    broker.anchorer.run_once()
    assert size() == args.records, (size(), args.records)
    broker.close()
    shutil.rmtree(work)
    snapshots[str(args.records)] = str(home)
    built = Built(
        records=args.records,
        datasets=dataset_ids,
        departments=[k.address for k in people["department"]],
        enterprises=[k.address for k in people["enterprise"]],
        regulator=regulator.address,
        snapshots=snapshots,
        build_seconds=time.perf_counter() - began,
        request_seconds=time.perf_counter() - requests_began,
    )
    (cache / "built.json").write_text(json.dumps(asdict(built), indent=1))
    return built


def cached_or_built(args: argparse.Namespace) -> tuple[Built, bool]:
    cache = cache_dir(args)
    marker = cache / "built.json"
    if marker.exists() and not args.rebuild:
        return Built(**json.loads(marker.read_text())), True
    _say(f"building a log of {args.records:,} records in {cache} ...")
    return build(args, cache), False


# -- measuring --------------------------------------------------------------------------------


def drop_page_cache() -> None:
    """Write back and drop the OS page cache (Linux, root), or stop saying why not."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
    except OSError as exc:
        raise SystemExit(f"--cold: cannot drop the page cache ({exc}); run as root") from None
    _say("  page cache dropped: the broker reads its database from disk")


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass
class Timing:
    """Latencies of one kind of query, in milliseconds, and what the answers held."""

    what: str
    where: str
    queries: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    rows_median: float
    ratio_p95: float | None = None

    @classmethod
    def of(cls, what: str, where: str, ms: list[float], rows: list[int]) -> Timing:
        _say(
            f"    {what} ({where}): p50 {percentile(ms, 0.5):.1f} ms, "
            f"p95 {percentile(ms, 0.95):.1f} ms"
        )
        return cls(
            what,
            where,
            len(ms),
            percentile(ms, 0.50),
            percentile(ms, 0.95),
            percentile(ms, 0.99),
            max(ms),
            percentile([float(r) for r in rows], 0.5) if rows else 0.0,
        )


@contextmanager
def serving(home: Path, port: int, log: Path) -> Iterator[str]:
    url = f"http://127.0.0.1:{port}"
    process = start_broker(env_for(home, url), port=port, log=log)
    try:
        yield url
    finally:
        stop_broker(process)


def over_http(url: str, home: Path, built: Built, queries: int, rng: random.Random) -> list[Timing]:
    """The broker's traces and the unsigned config, each timed from send to the last byte."""
    keys = keystore.unlock(home, "regulator", PASSPHRASE)
    with httpx.Client(base_url=url, timeout=60) as http:
        config = http.get("/v1/config").json()

        def timed(target: str, signed: bool) -> tuple[float, Any]:
            headers = (
                auth.sign_request(
                    keys.account,
                    method="GET",
                    target=target,
                    body_sha256=auth.EMPTY_SHA256,
                    chain_id=int(config["chain_id"]),
                    deployment=str(config["flow_log"]),
                )
                if signed
                else {}
            )
            began = time.perf_counter()
            response = http.get(target, headers=headers)
            content = response.content
            elapsed = (time.perf_counter() - began) * 1000
            if response.status_code != 200:
                raise SystemExit(f"{target}: {response.status_code} {content[:300]!r}")
            return elapsed, json.loads(content)

        members = built.departments + built.enterprises
        for _ in range(20):  # warm up: connections, caches, the first compiled statements
            timed("/v1/config", False)
            timed(f"/v1/trace/datasets/{rng.choice(built.datasets)}", True)
            timed(f"/v1/trace/members/{rng.choice(members)}", True)
        out = []
        for what, target, signed in (
            ("config (baseline, unsigned)", lambda: "/v1/config", False),
            ("signed read (floor of a signed request)", lambda: "/v1/datasets?limit=10", True),
            ("dataset trace", lambda: f"/v1/trace/datasets/{rng.choice(built.datasets)}", True),
            ("member trace", lambda: f"/v1/trace/members/{rng.choice(members)}", True),
        ):
            ms, rows = [], []
            for _ in range(queries):
                elapsed, body = timed(target(), signed)
                ms.append(elapsed)
                rows.append(len(body.get("flows", [])))
            out.append(Timing.of(what, "broker, HTTP", ms, rows))
        base = out[0].p95_ms
        for t in out:
            t.ratio_p95 = t.p95_ms / base
    return out


@dataclass
class VerifyRun:
    size: int
    mode: str  # "full" or "incremental"
    records_read: int
    seconds: float
    peak_rss_mib: float
    rss_before_mib: float
    ok: bool


def child_verify(url: str, trust: str, home: str) -> None:
    """Run in a child process: one audit, its wall time and this process's memory as JSON."""
    from ledger.client.sdk import BrokerClient

    keys = keystore.unlock(Path(home), "regulator", PASSPHRASE)
    with BrokerClient(url, keys, trust_dir=Path(trust)) as client:
        client.config()
        before = _rss_mib()
        began = time.perf_counter()
        report = client.audit()
        seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        json.dumps(
            {
                "seconds": seconds,
                "records_read": report.counts.get("records", 0),
                "tree_size": report.tree_size,
                "peak_rss_mib": peak,
                "rss_before_mib": before,
                "ok": report.ok,
                "problems": [str(p) for p in report.problems[:5]],
            }
        )
    )


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def audit_in_child(url: str, trust: Path, home: Path, size: int, mode: str) -> VerifyRun:
    done = subprocess.run(
        [sys.executable, __file__, "--child-verify", url, str(trust), str(home)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"verify child failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not result["ok"] or result["tree_size"] != size:
        raise SystemExit(f"verify at {size}: {result}")
    _say(
        f"    {mode} at {size:,}: {result['seconds']:.1f} s, peak {result['peak_rss_mib']:.0f} MiB"
    )
    return VerifyRun(
        size=size,
        mode=mode,
        records_read=int(result["records_read"]),
        seconds=float(result["seconds"]),
        peak_rss_mib=float(result["peak_rss_mib"]),
        rss_before_mib=float(result["rss_before_mib"]),
        ok=bool(result["ok"]),
    )


def verification(
    built: Built, work: Path, up_to: int | None = None
) -> tuple[list[VerifyRun], Path]:
    """Full and incremental local verification at each size; the trust folder of the largest."""
    runs: list[VerifyRun] = []
    port = free_port()
    trust = work / "trust-full"
    for size in verify_sizes(built.records):
        if up_to is not None and size > up_to:
            break
        home = Path(built.snapshots[str(size)])
        before = size * 99 // 100
        trust = work / f"trust-{size}"
        with serving(Path(built.snapshots[str(before)]), port, work / "serve.log") as url:
            _say(f"  verifying {before:,} records from scratch ...")
            runs.append(audit_in_child(url, trust, home, before, "full"))
        with serving(home, port, work / "serve.log") as url:
            _say(f"  verifying the last {size - before:,} records from the checkpoint ...")
            runs.append(audit_in_child(url, trust, home, size, "incremental"))
    return runs, trust


def _state_file(trust: Path) -> Path:
    found = sorted(trust.rglob("*.audit.sqlite"))
    if not found:
        raise SystemExit(f"no audit state under {trust}")
    return found[0]


def member_side(built: Built, trust: Path, queries: int, rng: random.Random) -> list[Timing]:
    """``dataset_trace`` and ``member_trace`` over the regulator's own verified state."""
    from ledger.audit import AuditState, dataset_trace, member_trace

    members = built.departments + built.enterprises
    out = []
    with AuditState.open(_state_file(trust)) as state:
        for what, run in (
            ("dataset trace", lambda: len(dataset_trace(state, rng.choice(built.datasets)).flows)),
            ("member trace", lambda: len(member_trace(state, rng.choice(members)).entries)),
        ):
            for _ in range(5):
                run()
            ms, rows = [], []
            for _ in range(queries):
                began = time.perf_counter()
                rows.append(run())
                ms.append((time.perf_counter() - began) * 1000)
            out.append(Timing.of(what, "member side, audit state", ms, rows))
    return out


def console_endpoints(
    url: str, home: Path, trust: Path, built: Built, queries: int, rng: random.Random, work: Path
) -> list[Timing]:
    """The console's ``/data/flow`` and ``/data/timeline`` (first page) on the verified state.

    ``drl console --as regulator`` runs as a member would run it, with the audit state the
    verification step kept (its own verify at start finds nothing new); each request carries
    the console's cookie, as the browser's do.
    """
    import importlib.util
    import re

    if importlib.util.find_spec("ledger.console") is None:
        _say("  no ledger.console in this tree: console endpoints not timed")
        return []
    console_home = work / "console-home"
    console_home.mkdir()
    (console_home / "members").symlink_to(home / "members")
    shutil.copytree(trust, console_home / "trust")
    env = env_for(console_home, url)
    log = (work / "console.log").open("w")
    process = subprocess.Popen(
        [
            str(Path(sys.executable).with_name("drl")),
            "console",
            "--as",
            "regulator",
            "--no-browser",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        found = re.search(r"(http://127\.0\.0\.1:\d+)/\?token=\S+", line)
        if found is None:
            raise SystemExit(f"drl console printed {line!r}")
        members = built.departments + built.enterprises
        with httpx.Client(base_url=found.group(1), timeout=120, follow_redirects=True) as http:
            http.get(found.group(0)).raise_for_status()  # the token becomes the cookie
            deadline = time.monotonic() + 3600
            while http.get("/data/verify").json()["job"].get("running"):
                if time.monotonic() > deadline:
                    raise SystemExit("the console's own verify did not finish")
                time.sleep(1)
            out = []
            for what, target in (
                (
                    "flow graph of a dataset",
                    lambda: f"/data/flow?dataset={rng.choice(built.datasets)}",
                ),
                ("flow graph of a member", lambda: f"/data/flow?member={rng.choice(members)}"),
                (
                    "timeline of a dataset",
                    lambda: f"/data/timeline?dataset={rng.choice(built.datasets)}",
                ),
                ("timeline of a member", lambda: f"/data/timeline?member={rng.choice(members)}"),
            ):
                for _ in range(5):
                    http.get(target()).raise_for_status()
                ms, rows = [], []
                for _ in range(queries):
                    began = time.perf_counter()
                    response = http.get(target())
                    content = response.content
                    ms.append((time.perf_counter() - began) * 1000)
                    if response.status_code != 200:
                        raise SystemExit(f"console: {response.status_code} {content[:300]!r}")
                    body = json.loads(content)
                    rows.append(len(body.get("records", body.get("edges", []))))
                out.append(Timing.of(what, "console, HTTP", ms, rows))
        return out
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def query_plans(trust: Path) -> list[str]:
    """SQLite's plan for the member-side trace queries (an index, not a scan, is the point)."""
    connection = sqlite3.connect(_state_file(trust))
    plans = []
    for label, query, params in (
        ("dataset", "SELECT seq FROM leaves WHERE dataset_id = ? ORDER BY seq", (1,)),
        (
            "member",
            "SELECT seq FROM leaves WHERE seq IN (SELECT seq FROM parties WHERE address = ?) "
            "ORDER BY seq",
            ("0x",),
        ),
        ("registrations", "SELECT seq FROM leaves WHERE action IN (?) ORDER BY seq", ("register",)),
    ):
        rows = connection.execute(f"EXPLAIN QUERY PLAN {query}", params).fetchall()
        plans.append(f"{label}: " + "; ".join(str(r[-1]) for r in rows))
    connection.close()
    return plans


def flows_per_dataset(home: Path) -> tuple[int, int, int]:
    """Min, median and max number of log records per dataset (from the broker's index)."""
    connection = sqlite3.connect(home / "broker" / "broker.db")
    counts = sorted(
        n
        for (n,) in connection.execute(
            "SELECT COUNT(*) FROM log_records WHERE dataset_id IS NOT NULL GROUP BY dataset_id"
        )
    )
    connection.close()
    return counts[0], counts[len(counts) // 2], counts[-1]


# -- report -----------------------------------------------------------------------------------


def timing_table(rows: list[Timing]) -> str:
    lines = [
        "| query | where | queries | p50 ms | p95 ms | p99 ms | max ms | rows (median) "
        "| p95 vs config |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in rows:
        ratio = "" if t.ratio_p95 is None else f"{t.ratio_p95:.1f}x"
        lines.append(
            f"| {t.what} | {t.where} | {t.queries} | {t.p50_ms:.1f} | {t.p95_ms:.1f} | "
            f"{t.p99_ms:.1f} | {t.max_ms:.1f} | {t.rows_median:,.0f} | {ratio} |"
        )
    return "\n".join(lines)


def verify_table(runs: list[VerifyRun]) -> str:
    lines = [
        "| log size | mode | records read | seconds | records/s | peak RSS MiB | "
        "of which the audit |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {r.size:,} | {r.mode} | {r.records_read:,} | {r.seconds:,.1f} | "
            f"{r.records_read / r.seconds:,.0f} | {r.peak_rss_mib:,.0f} | "
            f"{r.peak_rss_mib - r.rss_before_mib:,.0f} |"
        )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) == 5 and sys.argv[1] == "--child-verify":
        child_verify(*sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--records", type=int, default=1_000_000, help="log size")
    parser.add_argument("--datasets", type=int, default=1_000)
    parser.add_argument("--members", type=int, default=200)
    parser.add_argument("--queries", type=int, default=200, help="queries per kind")
    parser.add_argument("--rebuild", action="store_true", help="ignore a cached log")
    parser.add_argument("--skip-verify", action="store_true", help="only the trace latencies")
    parser.add_argument(
        "--verify-up-to",
        type=int,
        metavar="N",
        help="verify only the sizes up to N records (the member side and the console are "
        "then not timed)",
    )
    parser.add_argument(
        "--cold",
        action="store_true",
        help="drop the OS page cache before the broker is timed (root only), so every trace "
        "reads the database from disk as after a restart",
    )
    parser.add_argument(
        "--reuse-verified",
        action="store_true",
        help="time the member side and the console on the audit state a full run kept, "
        "without verifying again",
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.members < 5 or args.datasets < 1 or args.queries < 1:
        parser.error("--members is at least 5, --datasets and --queries at least 1")
    began = time.perf_counter()
    built, cached = cached_or_built(args)
    rng = random.Random(2024)
    home = Path(built.snapshots[str(built.records)])
    result: dict[str, Any] = {
        "records": built.records,
        "datasets": len(built.datasets),
        "members": len(built.departments) + len(built.enterprises) + 1,
        "build_seconds": built.build_seconds,
        "request_phase_seconds": built.request_seconds,
        "cached": cached,
        "flows_per_dataset_min_median_max": flows_per_dataset(home),
    }
    with tempfile.TemporaryDirectory(prefix="drl-trace-") as tmp:
        work = Path(tmp)
        with serving(home, free_port(), work / "serve.log") as url:
            if args.cold:
                drop_page_cache()
            _say("timing the broker's traces over HTTP ...")
            timings = over_http(url, home, built, args.queries, rng)
        runs: list[VerifyRun] = []
        kept = cache_dir(args) / "trust-verified"
        if args.reuse_verified and not kept.exists():
            parser.error(f"no verified state kept at {kept}: run once without --reuse-verified")
        if not args.skip_verify:
            # Verifying only the smaller sizes leaves no state of the whole log to time on.
            whole = args.verify_up_to is None or args.verify_up_to >= built.records
            if args.reuse_verified:
                trust = kept
            else:
                runs, trust = verification(built, work, args.verify_up_to)
                if whole:
                    shutil.rmtree(kept, ignore_errors=True)
                    shutil.copytree(trust, kept)
            if whole:
                _say("timing the member-side traces ...")
                timings += member_side(built, trust, args.queries, rng)
                result["query_plans"] = query_plans(trust)
                with serving(home, free_port(), work / "serve.log") as url:
                    _say("timing the console's data endpoints ...")
                    timings += console_endpoints(url, home, trust, built, args.queries, rng, work)
    result["timings"] = [asdict(t) for t in timings]
    result["verification"] = [asdict(r) for r in runs]
    result["seconds"] = time.perf_counter() - began
    if args.json:
        print(json.dumps(result, indent=2))
        return
    low, median, high = result["flows_per_dataset_min_median_max"]
    print(
        f"log of {built.records:,} signed records, {len(built.datasets):,} datasets, "
        f"{result['members']} members; records per dataset min {low:,}, median {median:,}, "
        f"max {high:,}; built in {built.build_seconds:,.0f} s "
        f"({'cached' if cached else 'this run'})\n"
    )
    print(timing_table(timings))
    if runs:
        print()
        print(verify_table(runs))
        print()
        for plan in result.get("query_plans", []):
            print(f"- {plan}")
    slow = [t for t in timings if t.where.startswith("broker") and t.what.endswith("trace")]
    verdict = all(t.p95_ms < TARGET_P95_MS for t in slow)
    print(f"\nbroker traces p95 < {TARGET_P95_MS:.0f} ms: {'met' if verdict else 'MISSED'}")


if __name__ == "__main__":
    main()

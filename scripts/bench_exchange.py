"""Benchmark the exchange through a real broker on loopback: register and fetch a large dataset.

Usage: ``.venv/bin/python scripts/bench_exchange.py [--size-mib 1024] [--dir DIR] [--json]
[--py-spy DIR]``

Starts ``drl serve`` (embedded chain, SQLite, file blob store) on a free loopback port, creates
and onboards an owner and a consumer, writes a random file, then runs each step in a fresh
client process, as a member would with the SDK:

- register: ``BrokerClient.register`` -- encrypt to a temporary file (content hash, ciphertext
  SHA-256, fsync), then the signed intent and the streamed ``PUT`` of the ciphertext, which the
  broker hashes, stores (fsync) and registers on chain. "upload alone" is timed from the first
  body chunk sent to the broker's answer; "encrypt + upload" is the whole call.
- fetch: ``BrokerClient.fetch`` -- the signed fetch (one use recorded on chain), the streamed
  ciphertext, decryption, content hash check, fsync and rename, and the signed receipt.
- download: the same signed fetch, but the ciphertext is read and dropped: the transport alone.

MB/s is plaintext bytes (10^6) per second of wall time. Peak memory is the peak resident set
(``VmHWM``) during the step: a client resets its own (``/proc/self/clear_refs``) once its
imports are done and its keys are unlocked, just before the step, and again when the upload
starts, so encryption and upload are told apart; the broker's is reset before each step and
read after it (``/proc/PID/clear_refs``, ``/proc/PID/status``). What comes before a step is
reported too: each client process's whole peak (``ru_maxrss`` from ``wait4``: interpreter,
imports, key derivation included), the resident sets when the step starts, and the broker's
overall peak (``wait4`` when it exits, start-up and deployment included). The machine may be
shared: other load lowers the figures, so look at a few runs.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.broker import BrokerDidNotStart, start_broker  # noqa: E402
from tests.support.net import free_port  # noqa: E402

MIB = 1 << 20
PASSPHRASE = "bench-exchange-passphrase"  # noqa: S105 - a throwaway home
OWNER, CONSUMER = "bench-owner", "bench-consumer"
TARGET_MBPS = 200.0
TARGET_PEAK_MIB = 150.0
STEPS = ("register", "fetch", "download")


# -- memory and CPU of a process ----------------------------------------------------------


def _status_kib(pid: int | str, field: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def peak_kib(pid: int | str = "self") -> int | None:
    """``VmHWM``: peak resident set since the process started or its last reset, in KiB."""
    return _status_kib(pid, "VmHWM")


def rss_kib(pid: int | str = "self") -> int | None:
    """``VmRSS``: resident set now, in KiB."""
    return _status_kib(pid, "VmRSS")


def reset_peak(pid: int | str = "self") -> bool:
    """Reset a process's ``VmHWM`` to its current resident set (Linux 4.0+)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


def mib(kib: int | None) -> float | None:
    return None if kib is None else kib / 1024


# -- the client steps (each in its own process) -------------------------------------------


def _client(url: str, home: Path, handle: str) -> Any:
    from ledger.client import keystore
    from ledger.client.sdk import BrokerClient

    client = BrokerClient(url, keystore.unlock(home, handle, PASSPHRASE), timeout=600)
    client.config()
    return client


def _measured(step: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``step`` with this process's peak reset first; add timing and memory."""
    before = rss_kib()
    reset = reset_peak()
    start = time.perf_counter()
    result = step()
    result["total_s"] = time.perf_counter() - start
    result["rss_before_kib"] = before
    result["peak_kib"] = peak_kib() if reset else None
    return result


def child_register(url: str, home: Path, source: Path) -> dict[str, Any]:
    marks: dict[str, Any] = {}

    def progress(_: int) -> None:
        if "upload_start" not in marks:
            marks["upload_start"] = time.perf_counter()
            marks["encrypt_peak_kib"] = peak_kib()
            reset_peak()

    with _client(url, home, OWNER) as client:

        def step() -> dict[str, Any]:
            marks["start"] = time.perf_counter()
            dataset = client.register(source, title="bench", progress=progress)
            end = time.perf_counter()
            upload_peak = peak_kib()
            return {
                "dataset_id": dataset.id,
                "ciphertext_size": dataset.ciphertext_size,
                "encrypt_s": marks["upload_start"] - marks["start"],
                "upload_s": end - marks["upload_start"],
                "encrypt_peak_kib": marks["encrypt_peak_kib"],
                "upload_peak_kib": upload_peak,
            }

        result = _measured(step)
    # The step's peak is the larger of the two phases (the reset at the upload start hid the
    # encryption's from VmHWM).
    peaks = [p for p in (result["encrypt_peak_kib"], result["upload_peak_kib"]) if p]
    result["peak_kib"] = max(peaks) if peaks else None
    return result


def child_fetch(url: str, home: Path, dataset_id: int, out: Path) -> dict[str, Any]:
    with _client(url, home, CONSUMER) as client:
        result = _measured(lambda: {"uses_left": client.fetch(dataset_id, out).uses_left})
    result["plaintext_size"] = out.stat().st_size
    out.unlink()
    return result


def child_download(url: str, home: Path, dataset_id: int) -> dict[str, Any]:
    """The signed fetch with the ciphertext read and dropped (no decryption, no disk)."""
    with _client(url, home, CONSUMER) as client:

        def step() -> dict[str, Any]:
            received = 0
            with client.open_fetch(dataset_id) as response:  # the SDK's own signed fetch
                for chunk in response.iter_raw():
                    received += len(chunk)
            return {"ciphertext_received": received}

        return _measured(step)


def run_child(args: argparse.Namespace) -> None:
    home, url = Path(args.home), args.url
    if args.child == "register":
        result = child_register(url, home, Path(args.file))
    elif args.child == "fetch":
        result = child_fetch(url, home, args.dataset_id, Path(args.file))
    else:
        result = child_download(url, home, args.dataset_id)
    Path(args.result).write_text(json.dumps(result))


@dataclass
class Step:
    """A client step's result, the client process's own usage and the broker's meanwhile."""

    result: dict[str, Any]
    process_peak_kib: int
    cpu_s: float
    broker_before_kib: int | None = None
    broker_peak_kib: int | None = None
    broker_cpu_s: float = 0.0
    broker_sys_s: float = 0.0


def spawn(env: dict[str, str], *args: str, profile: Path | None = None) -> Step:
    """Run this script as a client child; its own ``ru_maxrss`` comes from ``wait4``."""
    with tempfile.NamedTemporaryFile(prefix="drl-bench-", suffix=".json") as result:
        command = [sys.executable, __file__, *args, "--result", result.name]
        if profile is not None:  # py-spy runs the child: its rusage then includes py-spy's
            command = [*_py_spy(profile), "--", *command]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, cwd=ROOT)
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise SystemExit(f"client step {args[1]} failed ({process.returncode})")
        return Step(
            result=json.loads(Path(result.name).read_text()),
            process_peak_kib=usage.ru_maxrss,
            cpu_s=usage.ru_utime + usage.ru_stime,
        )


def _py_spy(out: Path) -> list[str]:
    """py-spy recording collapsed stacks ("raw": flamegraph.pl or speedscope draw them)."""
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    options = ["--rate", "250", "--threads", "--nonblocking", "--format", "raw"]
    return [exe, "record", *options, "-o", str(out)]


# -- the broker ---------------------------------------------------------------------------


def stop_broker(process: subprocess.Popen[bytes]) -> int | None:
    """Stop the broker; returns its overall peak resident set (KiB) from ``wait4``."""
    process.terminate()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            process.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_maxrss
        time.sleep(0.1)
    process.kill()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    return None


def write_random(path: Path, size: int) -> None:
    block = 16 * MIB
    with path.open("wb") as out:
        left = size
        while left:
            n = min(block, left)
            out.write(os.urandom(n))
            left -= n


# -- the run ------------------------------------------------------------------------------


def bench(size_mib: int, runs: int, where: str | None, as_json: bool, spy_dir: Path | None) -> None:
    from ledger.client import keystore
    from ledger.client.member import MemberKeys
    from ledger.client.sdk import BrokerClient
    from ledger.crypto import generate_keypair
    from ledger.keys import load_account

    size = size_mib * MIB
    work = Path(tempfile.mkdtemp(prefix="drl-bench-exchange-", dir=where))
    home = work / "home"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DRL_")}
    env.update(
        DRL_HOME=str(home),
        DRL_PASSPHRASE=PASSPHRASE,
        DRL_KDF_FAST="1",
        DRL_BROKER_URL=url,
        DRL_ANCHOR_EVERY_SECONDS="3600",
        DRL_MAX_UPLOAD_BYTES=str(size + 64 * MIB),
    )
    os.environ["DRL_KDF_FAST"] = "1"
    try:
        broker = start_broker(env, port=port, log=work / "broker.log", cwd=ROOT)
    except BrokerDidNotStart as exc:
        raise SystemExit(str(exc)) from None
    rounds: list[dict[str, Step]] = []

    def step(name: str, *args: str) -> Step:
        spy = None
        if spy_dir is not None:
            spy_dir.mkdir(parents=True, exist_ok=True)
            spy = subprocess.Popen(
                [
                    *_py_spy(spy_dir / f"broker-{name}-{len(rounds)}.folded"),
                    "--pid",
                    str(broker.pid),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
        reset_peak(broker.pid)
        before, cpu_before = rss_kib(broker.pid), cpu_seconds(broker.pid)
        client_profile = None
        if spy_dir is not None:
            client_profile = spy_dir / f"client-{name}-{len(rounds)}.folded"
        run = spawn(
            env, "--child", name, "--home", str(home), "--url", url, *args, profile=client_profile
        )
        run.broker_before_kib, run.broker_peak_kib = before, peak_kib(broker.pid)
        user, system = cpu_seconds(broker.pid)
        run.broker_cpu_s = user + system - sum(cpu_before)
        run.broker_sys_s = system - cpu_before[1]
        if spy is not None:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)
        rounds[-1][name] = run
        return run

    try:
        operator = MemberKeys(
            account=load_account(home / "broker" / "operator.key.json", PASSPHRASE),
            hpke=generate_keypair()[0],
        )
        with BrokerClient(url, operator) as op:
            for handle, kind in ((OWNER, "department"), (CONSUMER, "enterprise")):
                identity = keystore.create(
                    home, handle, kind=kind, name=handle, passphrase=PASSPHRASE
                )
                op.onboard(
                    address=identity.address,
                    kind=identity.kind,
                    name=identity.name,
                    key_suite=identity.key_suite,
                    encryption_key=bytes.fromhex(identity.encryption_key[2:]),
                )
        source = work / "data.bin"
        for _ in range(runs):
            rounds.append({})
            write_random(source, size)  # new bytes each round: a content hash registers once
            dataset_id = step("register", "--file", str(source)).result["dataset_id"]
            with (
                BrokerClient(url, keystore.unlock(home, OWNER, PASSPHRASE)) as owner,
                BrokerClient(url, keystore.unlock(home, CONSUMER, PASSPHRASE)) as consumer,
            ):
                request = consumer.request_access(
                    int(dataset_id), purpose="benchmarking the exchange", days=1, uses=2
                )
                owner.approve(request.id)
            step("fetch", "--dataset-id", str(dataset_id), "--file", str(work / "out.bin"))
            step("download", "--dataset-id", str(dataset_id))
    finally:
        broker_overall = stop_broker(broker)
        shutil.rmtree(work, ignore_errors=True)
    report(size_mib, rounds, broker_overall, as_json)


def report(
    size_mib: int, rounds: list[dict[str, Step]], broker_overall: int | None, as_json: bool
) -> None:
    """The table: median MB/s over the rounds (range beside it), the highest peaks."""
    size = size_mib * MIB

    def rows(steps: dict[str, Step]) -> list[tuple[str, float, int | None, Step]]:
        reg, fetch, down = steps["register"], steps["fetch"], steps["download"]
        r = reg.result
        return [
            ("register: encrypt + upload", r["total_s"], r["peak_kib"], reg),
            ("upload alone (PUT; broker hashes, fsyncs, registers)", r["upload_s"],
             r["upload_peak_kib"], reg),
            ("fetch: download + decrypt + verify + receipt", fetch.result["total_s"],
             fetch.result["peak_kib"], fetch),
            ("download alone (ciphertext read and dropped)", down.result["total_s"],
             down.result["peak_kib"], down),
        ]  # fmt: skip

    per_round = [rows(steps) for steps in rounds]
    table = []
    for i, (name, *_) in enumerate(per_round[0]):
        rates = [size / r[i][1] / 1e6 for r in per_round]
        clients = [r[i][2] for r in per_round]
        brokers = [r[i][3].broker_peak_kib for r in per_round]
        table.append(
            {
                "direction": name,
                "mb_per_s": statistics.median(rates),
                "mb_per_s_runs": rates,
                "client_peak_mib": mib(max((c for c in clients if c), default=None)),
                "broker_peak_mib": mib(max((b for b in brokers if b), default=None)),
            }
        )
    if as_json:
        detail = [
            {
                name: {
                    **s.result,
                    "client_process_peak_kib": s.process_peak_kib,
                    "client_cpu_s": s.cpu_s,
                    "broker_rss_before_kib": s.broker_before_kib,
                    "broker_peak_kib": s.broker_peak_kib,
                    "broker_cpu_s": s.broker_cpu_s,
                    "broker_sys_s": s.broker_sys_s,
                }
                for name, s in steps.items()
            }
            for steps in rounds
        ]
        document = {
            "size_mib": size_mib,
            "table": table,
            "rounds": detail,
            "broker_overall_peak_kib": broker_overall,
        }
        print(json.dumps(document, indent=2))
        return
    runs = len(rounds)
    print(
        f"{size_mib} MiB of random data through a broker on loopback, {runs} round(s), "
        f"{os.cpu_count()} cores; MB/s is the median (range), peaks are the highest\n"
    )
    print("| direction | MB/s | client peak MiB | broker peak MiB | target |")
    print("|---|---:|---:|---:|---|")
    for row in table:
        rate, client, broker = row["mb_per_s"], row["client_peak_mib"], row["broker_peak_mib"]
        spread = row["mb_per_s_runs"]
        shown = f"{rate:.0f}" if runs == 1 else f"{rate:.0f} ({min(spread):.0f}-{max(spread):.0f})"
        print(
            f"| {row['direction']} | {shown} | {_fmt(client)} | {_fmt(broker)} | "
            f"{_verdict(rate, client, broker)} |"
        )
    print()
    for n, steps in enumerate(rounds, 1):
        r = steps["register"].result
        print(
            f"round {n}: encrypt {r['encrypt_s']:.2f} s (client peak "
            f"{_fmt(mib(r['encrypt_peak_kib']))} MiB), upload {r['upload_s']:.2f} s"
        )
        for name, s in steps.items():
            print(
                f"  {name}: {s.result['total_s']:.2f} s; resident at the start: client "
                f"{_fmt(mib(s.result['rss_before_kib']))} MiB, broker "
                f"{_fmt(mib(s.broker_before_kib))} MiB; client process peak (imports and key "
                f"unlock included) {_fmt(mib(s.process_peak_kib))} MiB; CPU: client process "
                f"{s.cpu_s:.2f} s, broker {s.broker_cpu_s:.2f} s ({s.broker_sys_s:.2f} s system)"
            )
    print(
        f"broker process peak (start-up and deployment included): {_fmt(mib(broker_overall))} MiB"
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _verdict(rate: float, client: float | None, broker: float | None) -> str:
    ok = rate >= TARGET_MBPS and all(
        peak is not None and peak < TARGET_PEAK_MIB for peak in (client, broker)
    )
    return f"{'met' if ok else 'missed'}: >= {TARGET_MBPS:.0f} MB/s, < {TARGET_PEAK_MIB:.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="dataset size (MiB)")
    parser.add_argument("--runs", type=int, default=1, help="rounds (each with a new file)")
    parser.add_argument("--dir", default=None, help="where to put the temporary files")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--py-spy",
        metavar="DIR",
        type=Path,
        help="profile the broker and each client step with py-spy into DIR (skews the figures)",
    )
    parser.add_argument("--child", choices=STEPS, help=argparse.SUPPRESS)
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--dataset-id", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
    else:
        bench(args.size_mib, args.runs, args.dir, args.json, args.py_spy)


if __name__ == "__main__":
    main()

"""Benchmark the exchange through a real broker on loopback: register and fetch a large dataset.

Usage: ``.venv/bin/python scripts/bench_exchange.py [--size-mib 1024] [--dir DIR] [--json]``

Starts ``drl serve`` (embedded chain, SQLite, file blob store) on a free loopback port, creates
and onboards an owner and a consumer, writes a random file, then runs each step in a fresh
client process, as a member would with the SDK:

- register: ``BrokerClient.register`` -- encrypt to a temporary file (content hash, ciphertext
  SHA-256), then the signed intent and the streamed ``PUT`` of the ciphertext, which the broker
  hashes, stores (fsync) and registers on chain. "upload" alone is timed from the first body
  chunk sent to the broker's answer; "encrypt + upload" is the whole call.
- fetch: ``BrokerClient.fetch`` -- the signed fetch (one use recorded on chain), the streamed
  ciphertext, decryption, content hash check, fsync and rename, and the signed receipt.
- download: the same signed fetch, but the ciphertext is read and dropped: the transport alone.

MB/s is plaintext bytes (10^6) per second of wall time. Peak memory is the peak resident set
(``VmHWM``): the client's is read by the client itself (reset with ``/proc/self/clear_refs``
when the upload starts, so encryption and upload are told apart; the whole process's
``ru_maxrss`` from ``wait4`` is reported for the whole call); the broker's is reset before
each step and read after it (``/proc/PID/clear_refs`` and ``/proc/PID/status``), and its
overall peak comes from ``wait4`` when it exits.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MIB = 1 << 20
PASSPHRASE = "bench-exchange-passphrase"  # noqa: S105 - a throwaway home
OWNER, CONSUMER = "bench-owner", "bench-consumer"
TARGET_MBPS = 200.0
TARGET_PEAK_MIB = 150.0


# -- peak memory --------------------------------------------------------------------------


def peak_kib(pid: int | str = "self") -> int | None:
    """``VmHWM`` of a process (peak resident set since start or the last reset), in KiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def reset_peak(pid: int | str = "self") -> bool:
    """Reset a process's ``VmHWM`` to its current resident set (Linux 4.0+)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def mib(kib: int | None) -> float | None:
    return None if kib is None else kib / 1024


# -- the client steps (run in their own processes) ----------------------------------------


def _client(url: str, home: Path, handle: str) -> Any:
    from ledger.client import keystore
    from ledger.client.sdk import BrokerClient

    return BrokerClient(url, keystore.unlock(home, handle, PASSPHRASE), timeout=600)


def child_register(url: str, home: Path, source: Path) -> dict[str, Any]:
    marks: dict[str, Any] = {}

    def progress(_: int) -> None:
        if "upload_start" not in marks:
            marks["upload_start"] = time.perf_counter()
            marks["encrypt_peak_kib"] = peak_kib()
            marks["reset"] = reset_peak()

    with _client(url, home, OWNER) as client:
        client.config()
        start = time.perf_counter()
        dataset = client.register(source, title="bench", progress=progress)
        end = time.perf_counter()
    return {
        "dataset_id": dataset["id"],
        "ciphertext_size": dataset["ciphertext_size"],
        "total_s": end - start,
        "encrypt_s": marks["upload_start"] - start,
        "upload_s": end - marks["upload_start"],
        "encrypt_peak_kib": marks["encrypt_peak_kib"],
        "upload_peak_kib": peak_kib() if marks["reset"] else None,
    }


def child_fetch(url: str, home: Path, dataset_id: int, out: Path) -> dict[str, Any]:
    with _client(url, home, CONSUMER) as client:
        client.config()
        start = time.perf_counter()
        result = client.fetch(dataset_id, out)
        end = time.perf_counter()
    size = out.stat().st_size
    out.unlink()
    return {"total_s": end - start, "plaintext_size": size, "uses_left": result["uses_left"]}


def child_download(url: str, home: Path, dataset_id: int) -> dict[str, Any]:
    """The signed fetch with the ciphertext read and dropped (no decryption, no disk)."""
    import hashlib

    from ledger.client.member import sign

    with _client(url, home, CONSUMER) as client:
        keys = client.keys
        start = time.perf_counter()
        signed = sign(
            keys, "fetch", {"grantee": keys.address, "datasetId": dataset_id}, client.domains
        )
        body = json.dumps({"signed": signed.to_json()}).encode()
        target = f"/v1/datasets/{dataset_id}/fetch"
        headers = client._headers("POST", target, hashlib.sha256(body).hexdigest())
        headers["content-type"] = "application/json"
        received = 0
        with client._http.stream("POST", target, content=body, headers=headers) as response:
            response.raise_for_status()
            for chunk in response.iter_raw(MIB):
                received += len(chunk)
        end = time.perf_counter()
    return {"total_s": end - start, "ciphertext_received": received}


def run_child(args: argparse.Namespace) -> None:
    home, url = Path(args.home), args.url
    if args.child == "register":
        result = child_register(url, home, Path(args.file))
    elif args.child == "fetch":
        result = child_fetch(url, home, args.dataset_id, Path(args.file))
    else:
        result = child_download(url, home, args.dataset_id)
    print(json.dumps(result))


@dataclass
class ChildRun:
    result: dict[str, Any]
    maxrss_kib: int


def spawn(env: dict[str, str], *args: str, profile: Path | None = None) -> ChildRun:
    """Run this script as a client child; its own ``ru_maxrss`` comes from ``wait4``."""
    command = [sys.executable, __file__, *args]
    if profile is not None:  # py-spy runs the child itself: the child's rusage includes it
        command = [*_py_spy(profile), "--", *command]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, cwd=ROOT)
    assert process.stdout is not None
    out = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"client step {args[1]} failed ({process.returncode})")
    return ChildRun(result=json.loads(out), maxrss_kib=usage.ru_maxrss)


# -- the broker ---------------------------------------------------------------------------


def _py_spy(out: Path) -> list[str]:
    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return [exe, "record", "--rate", "250", "--threads", "--nonblocking", "-o", str(out)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_broker(home: Path, env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    import httpx

    process = subprocess.Popen(
        [sys.executable, "-m", "ledger.cli", "serve", "--port", str(port)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    deadline = time.monotonic() + 120
    while True:
        if process.poll() is not None:
            raise SystemExit(f"broker exited:\n{log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise SystemExit("broker did not start within 120 s")
        time.sleep(0.2)


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


def bench(size_mib: int, where: str | None, as_json: bool, spy_dir: Path | None) -> None:
    from ledger.client import keystore
    from ledger.client.member import MemberKeys
    from ledger.client.sdk import BrokerClient
    from ledger.crypto import generate_keypair
    from ledger.keys import load_account

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
        DRL_MAX_UPLOAD_BYTES=str(size_mib * MIB + 64 * MIB),
    )
    os.environ["DRL_KDF_FAST"] = "1"
    size = size_mib * MIB
    broker = start_broker(home, env, port, work / "broker.log")
    broker_peaks: dict[str, float | None] = {}
    try:
        with BrokerClient(url) as anonymous:
            anonymous.config()
        operator = MemberKeys(
            account=load_account(home / "broker" / "operator.key.json", PASSPHRASE),
            hpke=generate_keypair()[0],
        )
        with BrokerClient(url, operator) as op:
            for handle, kind in ((OWNER, "department"), (CONSUMER, "enterprise")):
                profile = keystore.create(
                    home, handle, kind=kind, name=handle, passphrase=PASSPHRASE
                )
                op.onboard(
                    address=profile.address,
                    kind=profile.kind,
                    name=profile.name,
                    key_suite=profile.key_suite,
                    encryption_key=bytes.fromhex(profile.encryption_key[2:]),
                )
        source = work / "data.bin"
        write_random(source, size)

        def step(name: str, *args: str) -> ChildRun:
            spy = None
            if spy_dir is not None:
                spy_dir.mkdir(parents=True, exist_ok=True)
                spy = subprocess.Popen(
                    [*_py_spy(spy_dir / f"broker-{name}.svg"), "--pid", str(broker.pid)],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
                time.sleep(1)
            reset_peak(broker.pid)
            client_profile = None if spy_dir is None else spy_dir / f"client-{name}.svg"
            run = spawn(
                env,
                "--child",
                name,
                "--home",
                str(home),
                "--url",
                url,
                *args,
                profile=client_profile,
            )
            broker_peaks[name] = mib(peak_kib(broker.pid))
            if spy is not None:
                spy.send_signal(signal.SIGINT)
                spy.wait(timeout=60)
            return run

        registered = step("register", "--file", str(source))
        dataset_id = str(registered.result["dataset_id"])
        with (
            BrokerClient(url, keystore.unlock(home, OWNER, PASSPHRASE)) as owner,
            BrokerClient(url, keystore.unlock(home, CONSUMER, PASSPHRASE)) as consumer,
        ):
            request = consumer.request_access(
                int(dataset_id), purpose="benchmarking the exchange", days=1, uses=2
            )
            owner.approve(int(request["id"]))
        fetched = step("fetch", "--dataset-id", dataset_id, "--file", str(work / "out.bin"))
        downloaded = step("download", "--dataset-id", dataset_id)
    finally:
        broker_overall = mib(stop_broker(broker))
        shutil.rmtree(work, ignore_errors=True)

    reg = registered.result
    rows = [
        (
            "register: encrypt + upload",
            size / reg["total_s"] / 1e6,
            mib(registered.maxrss_kib),
            broker_peaks["register"],
        ),
        (
            "upload alone (ciphertext PUT, broker hash + fsync + chain)",
            size / reg["upload_s"] / 1e6,
            mib(reg["upload_peak_kib"]),
            broker_peaks["register"],
        ),
        (
            "fetch: download + decrypt + verify + receipt",
            size / fetched.result["total_s"] / 1e6,
            mib(fetched.maxrss_kib),
            broker_peaks["fetch"],
        ),
        (
            "download alone (ciphertext read and dropped)",
            size / downloaded.result["total_s"] / 1e6,
            mib(downloaded.maxrss_kib),
            broker_peaks["download"],
        ),
    ]
    if as_json:
        print(
            json.dumps(
                {
                    "size_mib": size_mib,
                    "rows": rows,
                    "register": reg,
                    "fetch": fetched.result,
                    "download": downloaded.result,
                    "broker_overall_peak_mib": broker_overall,
                },
                indent=2,
            )
        )
        return
    cpus = os.cpu_count()
    print(f"{size_mib} MiB of random data through a broker on loopback ({cpus} cores)\n")
    print("| direction | MB/s | client peak MiB | broker peak MiB | target |")
    print("|---|---:|---:|---:|---|")
    for name, rate, client_peak, broker_peak in rows:
        print(
            f"| {name} | {rate:.0f} | {_fmt(client_peak)} | {_fmt(broker_peak)} | "
            f"{_verdict(rate, client_peak, broker_peak)} |"
        )
    print(
        f"\nencrypt {reg['encrypt_s']:.2f} s (client peak {_fmt(mib(reg['encrypt_peak_kib']))}"
        f" MiB), upload {reg['upload_s']:.2f} s, fetch {fetched.result['total_s']:.2f} s, "
        f"download {downloaded.result['total_s']:.2f} s; broker overall peak "
        f"{_fmt(broker_overall)} MiB"
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0f}"


def _verdict(rate: float, client: float | None, broker: float | None) -> str:
    ok = rate >= TARGET_MBPS and (client or 0) < TARGET_PEAK_MIB and (broker or 0) < TARGET_PEAK_MIB
    return f"{'met' if ok else 'missed'}: >= {TARGET_MBPS:.0f} MB/s, < {TARGET_PEAK_MIB:.0f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="dataset size (MiB)")
    parser.add_argument("--dir", default=None, help="where to put the temporary files")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument(
        "--py-spy",
        metavar="DIR",
        type=Path,
        help="profile the broker and each client step with py-spy into DIR (skews the figures)",
    )
    parser.add_argument(
        "--child", choices=("register", "fetch", "download"), help=argparse.SUPPRESS
    )
    parser.add_argument("--home", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--dataset-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_child(args)
    else:
        bench(args.size_mib, args.dir, args.json, args.py_spy)


if __name__ == "__main__":
    main()

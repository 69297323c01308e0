"""Benchmark dataset encryption against this machine's one-core AES-GCM + SHA-256 bound.

Usage: ``.venv/bin/python scripts/bench_crypto.py [--size-mib 1024] [--runs 3]``

Writes a random file to a temporary directory, then times, each in a fresh child process:

- encrypt: AES-256-GCM, content hash (Merkle root of chunk hashes) and ciphertext SHA-256;
- decrypt: authenticate every chunk and recompute the content hash;
- decrypt_file: decryption through ``decrypt_file`` (temporary file, fsync, rename).

Encrypt and decrypt run twice: writing a fresh output file, and into a sink that discards the
bytes (as when streaming to the network). The second isolates the crypto pipeline from the cost
of allocating page cache for a new file, which on some virtual machines is as large as the
hashing itself and varies from run to run.

The bound is what one core could do for encrypt-and-hash, ``1 / (1/aes + 1/sha)``, from
``openssl speed -evp`` on 16 KiB blocks measured in the same run. Peak memory is each child's
``ru_maxrss``, read with ``getrusage(RUSAGE_CHILDREN)`` by a wrapper process whose only child
is the measured one (interpreter and imports included). "cores" is the child's CPU time over
wall time during the operation: above 1 means the thread pool overlapped work; "other load" is
the CPU other processes used meanwhile (from ``/proc/stat``), which lowers the figures on a
shared machine. The best of ``--runs`` is reported beside the median.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MIB = 1 << 20
KEY = bytes(range(32))
OPERATIONS = ("encrypt", "encrypt_discard", "decrypt", "decrypt_discard", "decrypt_file")
LABELS = {
    "encrypt": "encrypt → file",
    "encrypt_discard": "encrypt → discard",
    "decrypt": "decrypt → file",
    "decrypt_discard": "decrypt → discard",
    "decrypt_file": "decrypt_file (fsync, rename)",
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="plaintext size (MiB)")
    parser.add_argument("--runs", type=int, default=3, help="runs per operation")
    parser.add_argument("--dir", default=None, help="where to put the temporary files")
    parser.add_argument("--child", choices=OPERATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=OPERATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--work", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_operation(args.child, Path(args.work))
    elif args.measure:
        measure(args.measure, args.work)
    else:
        bench(args.size_mib, args.runs, args.dir)


def bench(size_mib: int, runs: int, where: str | None) -> None:
    aes = openssl_speed("aes-256-gcm")
    sha = openssl_speed("sha256")
    bound = 1 / (1 / aes + 1 / sha)
    with tempfile.TemporaryDirectory(prefix="bench-crypto-", dir=where) as tmp:
        work = Path(tmp)
        write_random(work / "plain.bin", size_mib * MIB)
        results: dict[str, list[Run]] = {op: [] for op in OPERATIONS}
        for _ in range(runs):
            for op in OPERATIONS:
                results[op].append(spawn(op, work))
        hashes = {r.content_hash for rs in results.values() for r in rs}
        if len(hashes) != 1:
            raise SystemExit(f"content hashes disagree: {hashes}")

    print(f"Plaintext {size_mib} MiB, {runs} runs per operation, {os.cpu_count()} CPUs.")
    print(
        f"openssl speed -evp, 16 KiB blocks: AES-256-GCM {aes:,.0f} MB/s, "
        f"SHA-256 {sha:,.0f} MB/s; one-core bound 1/(1/aes+1/sha) = {bound:,.0f} MB/s.\n"
    )
    print(
        "| operation | MB/s best | MB/s median | best / bound | cores used "
        "| other load (cores) | peak RSS MiB |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for op in OPERATIONS:
        rates = [size_mib * MIB / r.seconds / 1e6 for r in results[op]]
        best = max(range(len(rates)), key=rates.__getitem__)
        top = results[op][best]
        peak = max(r.peak_kib for r in results[op]) / 1024
        print(
            f"| {LABELS[op]} | {rates[best]:,.0f} | {statistics.median(rates):,.0f} "
            f"| {rates[best] / bound:.2f} | {top.cpu_seconds / top.seconds:.2f} "
            f"| {top.other_cpu_seconds / top.seconds:.2f} | {peak:.1f} |"
        )


def openssl_speed(algorithm: str) -> float:
    """MB/s (10^6 bytes) of ``openssl speed -evp`` on 16 KiB blocks for two seconds."""
    out = subprocess.run(
        ["openssl", "speed", "-evp", algorithm, "-bytes", "16384", "-seconds", "2"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    match = re.search(r"^\S+\s+([\d.]+)k\s*$", out, re.MULTILINE)
    if match is None:
        raise SystemExit(f"cannot parse openssl speed output:\n{out}")
    return float(match.group(1)) * 1000 / 1e6


def write_random(path: Path, size: int) -> None:
    with path.open("wb") as out:
        for start in range(0, size, 16 * MIB):
            out.write(os.urandom(min(16 * MIB, size - start)))


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float
    other_cpu_seconds: float
    content_hash: str
    peak_kib: int


def spawn(op: str, work: Path) -> Run:
    """Run ``op`` under a wrapper process that reports its child's peak RSS."""
    cmd = [sys.executable, __file__, "--measure", op, "--work", str(work)]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return Run(**json.loads(out))


def measure(op: str, work: str) -> None:
    # This process has exactly one child, so RUSAGE_CHILDREN's ru_maxrss is that child's peak.
    cmd = [sys.executable, __file__, "--child", op, "--work", work]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    result = json.loads(out)
    result["peak_kib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps(result))


def run_operation(op: str, work: Path) -> None:
    from ledger.crypto import decrypt, decrypt_file, encrypt

    plain, sealed, out = work / "plain.bin", work / "sealed.bin", work / "out.bin"
    # Every run writes a fresh output file, as a real first encryption or download would.
    (sealed if op == "encrypt" else out).unlink(missing_ok=True)
    busy0, cpu0, t0 = system_busy_seconds(), time.process_time(), time.perf_counter()
    if op in ("encrypt", "encrypt_discard"):
        with plain.open("rb") as src, output(op, sealed) as dst:
            digest = encrypt(src, dst, KEY).content_hash
    elif op in ("decrypt", "decrypt_discard"):
        with sealed.open("rb") as src, output(op, out) as dst:
            digest = decrypt(src, dst, KEY).content_hash
    else:
        digest = decrypt_file(sealed, out, KEY).content_hash
    seconds, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    others = max(0.0, system_busy_seconds() - busy0 - cpu)
    result = {"seconds": seconds, "cpu_seconds": cpu, "other_cpu_seconds": others}
    print(json.dumps({**result, "content_hash": digest.hex()}))


class Discard(io.RawIOBase):
    """A sink that accepts and drops every byte."""

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        return len(memoryview(data))


def output(op: str, path: Path) -> BinaryIO:
    if op.endswith("_discard"):
        return cast(BinaryIO, Discard())
    return path.open("wb")


def system_busy_seconds() -> float:
    """CPU seconds spent by all processes so far (Linux ``/proc/stat``; 0 elsewhere)."""
    try:
        fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


if __name__ == "__main__":
    main()

"""Benchmark the owner-side quality check (frictionless) on a large CSV: time and peak memory.

Usage: ``.venv/bin/python scripts/bench_quality.py [--size-mib 1024] [--dir /tmp]``

Writes a CSV of about ``--size-mib`` MiB (permit-like rows: integer id, district, date, units,
area, status) and runs, each in a fresh child process so that peak memory is the child's own
(``ru_maxrss`` of a wrapper whose only child is the measured one, interpreter included):

- infer: ``ledger.quality.infer_schema`` (frictionless samples the first rows);
- validate: ``ledger.quality.validate_file`` against the inferred schema plus constraints
  (required, enum, minimum/maximum, pattern) on every row;
- validate+unique: the same with ``primaryKey: id`` — frictionless keeps one entry per key, so
  this one's memory grows with the number of rows (the price of the key check).

A benchmark, not a test: the numbers go into the README's table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

MIB = 1 << 20

CONSTRAINTS = {
    "id": {"required": True, "minimum": 0},
    "district": {"required": True, "pattern": "D[0-9]+", "maxLength": 4},
    "units": {"minimum": 0, "maximum": 1000},
    "status": {"enum": ["open", "closed"]},
}


def write_csv(path: Path, size: int) -> int:
    rows = 0
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write("id,district,issued_on,units,area,status\n")
        block: list[str] = []
        while fh.tell() < size:
            for _ in range(10_000):
                i = rows
                block.append(
                    f"{i},D{i % 23},2024-{1 + i % 12:02d}-{1 + i % 28:02d},{i % 50},"
                    f"{(i % 9973) * 0.37:.2f},{'open' if i % 3 else 'closed'}\n"
                )
                rows += 1
            fh.write("".join(block))
            block.clear()
    return rows


CHILD = r"""
import json, sys, time
from pathlib import Path
from ledger.quality import infer_schema, validate_file
op, path, schema_path = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
t = time.perf_counter()
if op == "infer":
    result = {"fields": len(infer_schema(path)["fields"])}
else:
    schema = json.loads(Path(schema_path).read_text())
    r = validate_file(path, schema)
    result = {"rows": r.rows, "errors": r.error_count}
result["seconds"] = time.perf_counter() - t
print(json.dumps(result))
"""

WRAPPER = r"""
import json, resource, subprocess, sys
out = subprocess.run(sys.argv[1:], capture_output=True, text=True, check=True).stdout
r = json.loads(out.strip().splitlines()[-1])
r["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps(r))
"""


def measure(op: str, data: Path, schema: Path) -> dict[str, float]:
    cmd = [sys.executable, "-c", WRAPPER, sys.executable, "-c", CHILD, op, str(data), str(schema)]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    result: dict[str, float] = json.loads(out.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mib", type=int, default=1024, help="CSV size (MiB)")
    parser.add_argument("--dir", default=None, help="where to put the temporary files")
    parser.add_argument("--skip-unique", action="store_true", help="skip the primary-key run")
    args = parser.parse_args()
    from ledger.quality import infer_schema

    with tempfile.TemporaryDirectory(dir=args.dir, prefix="drl-bench-quality-") as tmp:
        data = Path(tmp) / "permits.csv"
        started = time.perf_counter()
        rows = write_csv(data, args.size_mib * MIB)
        size = data.stat().st_size
        print(
            f"wrote {size / MIB:,.0f} MiB, {rows:,} rows in {time.perf_counter() - started:.0f} s",
            flush=True,
        )
        schema = infer_schema(data)
        for f in schema["fields"]:
            if f["name"] in CONSTRAINTS:
                f["constraints"] = CONSTRAINTS[f["name"]]
        plain = Path(tmp) / "schema.json"
        plain.write_text(json.dumps(schema))
        keyed = Path(tmp) / "schema-pk.json"
        keyed.write_text(json.dumps({**schema, "primaryKey": ["id"]}))
        runs = [("infer", plain), ("validate", plain)]
        if not args.skip_unique:
            runs.append(("validate+unique", keyed))
        print(
            "| operation | rows | seconds | rows/s | MB/s | peak RSS MiB |\n"
            "|---|---:|---:|---:|---:|---:|",
            flush=True,
        )
        for name, schema_file in runs:
            op = "infer" if name == "infer" else "validate"
            r = measure(op, data, schema_file)
            seconds = r["seconds"]
            counted = int(r.get("rows", 0)) if op == "validate" else 0
            rate = f"{counted / seconds:,.0f}" if counted else ""
            mbs = f"{size / 1e6 / seconds:,.1f}" if counted else ""
            print(
                f"| {name} | {counted:,} | {seconds:,.1f} | {rate} | {mbs} "
                f"| {r['peak_rss_mib']:,.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()

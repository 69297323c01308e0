"""The test vectors re-derived in Node.js with ethers (tests/js/vectors.test.mjs).

A second implementation in the language most member clients will be written in: if ethers
and node:crypto agree with every EIP-712 digest, request signer and content hash of
tests/vectors/protocol.json, a Node.js client built from docs/protocol.md can too.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "js" / "vectors.test.mjs"


def test_vectors_hold_in_node_with_ethers() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    if not (ROOT / "node_modules" / "ethers" / "package.json").exists():
        pytest.skip("ethers is not installed: run scripts/bootstrap (npm ci)")
    done = subprocess.run(
        [node, "--test", str(SCRIPT)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "# fail 0" in done.stdout

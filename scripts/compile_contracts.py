"""Compile contracts/ with py-solc-x and write the artifacts the ledger package ships.

Each artifact (``ledger/chain/artifacts/<Contract>.json``) holds the ABI, creation and runtime
bytecode, the exact compiler version and settings, and the SHA-256 of every source that went in,
so installing and running never needs a compiler and a test can prove the committed artifacts
match the sources (``--check``).

Compiler choice: a native ``solc`` of the pinned version (on PATH or installed by py-solc-x) when
present, else solc-js from npm through ``scripts/solc-shim`` (these machines cannot download solc).
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import solcx

ROOT = Path(__file__).resolve().parent.parent
CONTRACTS = ROOT / "contracts"
ARTIFACTS = ROOT / "ledger" / "chain" / "artifacts"
SHIM = ROOT / "scripts" / "solc-shim"
SOLC_VERSION = "0.8.28"
DEPLOYABLE = ("MemberRegistry", "DataRegistry", "AccessLedger", "FlowLog", "SharingCredits")
SETTINGS: dict[str, Any] = {
    "optimizer": {"enabled": True, "runs": 1000},
    "evmVersion": "cancun",
    "metadata": {"bytecodeHash": "ipfs"},
    "outputSelection": {"*": {"*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"]}},
}


def find_compiler() -> Path:
    """Native solc of the pinned version if available, else the solc-js shim."""
    native = shutil.which("solc")
    if native:
        out = subprocess.run([native, "--version"], capture_output=True, text=True, check=False)
        if f"Version: {SOLC_VERSION}+" in out.stdout:
            return Path(native)
    with contextlib.suppress(Exception):  # not installed through py-solc-x: use solc-js
        return Path(solcx.get_executable(SOLC_VERSION))
    if not (ROOT / "node_modules" / ".bin" / "solcjs").exists():
        raise SystemExit("no solc found: run `npm ci` (solc-js) or put solc on PATH")
    return SHIM


def sources() -> dict[str, str]:
    return {
        path.relative_to(ROOT).as_posix(): path.read_text()
        for path in sorted(CONTRACTS.rglob("*.sol"))
    }


def compile_all(solc: Path) -> dict[str, dict[str, Any]]:
    """Compile every source and return the artifact of each deployable contract."""
    srcs = sources()
    standard_input = {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in srcs.items()},
        "settings": SETTINGS,
    }
    try:
        output = solcx.compile_standard(
            standard_input, solc_binary=solc, base_path=str(ROOT), allow_paths=[str(ROOT)]
        )
    except solcx.exceptions.SolcError as exc:
        raise SystemExit(f"compilation failed:\n{exc.message}") from None
    version = str(solcx.wrapper.get_solc_version(solc, with_commit_hash=True))
    source_hashes = {name: hashlib.sha256(text.encode()).hexdigest() for name, text in srcs.items()}
    artifacts: dict[str, dict[str, Any]] = {}
    for name in DEPLOYABLE:
        compiled = output["contracts"][f"contracts/{name}.sol"][name]
        artifacts[name] = {
            "contractName": name,
            "abi": compiled["abi"],
            "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
            "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
            "compiler": {"version": version.split("+")[0], "settings": SETTINGS},
            "sources": source_hashes,
        }
    return artifacts


def render(artifact: dict[str, Any]) -> str:
    return json.dumps(artifact, indent=1, sort_keys=True) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if artifacts are stale")
    args = parser.parse_args()
    solc = find_compiler()
    artifacts = compile_all(solc)
    stale = []
    for name, artifact in artifacts.items():
        path = ARTIFACTS / f"{name}.json"
        text = render(artifact)
        if path.exists() and path.read_text() == text:
            continue
        stale.append(name)
        if not args.check:
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if args.check and stale:
        print(f"stale artifacts (run scripts/compile_contracts.py): {', '.join(stale)}")
        return 1
    print(
        f"compiled with {solc.name}: {', '.join(artifacts)}"
        + (" (up to date)" if not stale else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Compiled contract artifacts and the decoding of custom errors and events.

Artifacts are produced by ``scripts/compile_contracts.py`` and shipped inside the package, so no
compiler is needed at run time. Reverts bubble up through cross-contract calls unchanged, so
errors are decoded against the union of every contract's ABI.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any, Final

from eth_abi.abi import decode as abi_decode
from eth_utils.abi import function_signature_to_4byte_selector
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

CONTRACT_NAMES: Final = (
    "MemberRegistry",
    "DataRegistry",
    "AccessLedger",
    "FlowLog",
    "SharingCredits",
)

_PANIC_REASONS: Final = {
    0x01: "assertion failed",
    0x11: "arithmetic overflow",
    0x12: "division by zero",
    0x21: "invalid enum value",
    0x32: "array index out of bounds",
}


@dataclass(frozen=True)
class Artifact:
    """ABI and bytecode of one contract, with the compiler that made them."""

    name: str
    abi: list[dict[str, Any]]
    bytecode: str
    deployed_bytecode: str
    compiler_version: str


@cache
def artifact(name: str) -> Artifact:
    """Load the committed artifact of a contract."""
    raw = resources.files("ledger.chain").joinpath(f"artifacts/{name}.json").read_text()
    data = json.loads(raw)
    return Artifact(
        name=name,
        abi=data["abi"],
        bytecode=data["bytecode"],
        deployed_bytecode=data["deployedBytecode"],
        compiler_version=data["compiler"]["version"],
    )


def _canonical_type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        inner = ",".join(_canonical_type(c) for c in param["components"])
        return f"({inner}){kind[5:]}"
    return kind


def _signature(entry: dict[str, Any]) -> str:
    return f"{entry['name']}({','.join(_canonical_type(p) for p in entry['inputs'])})"


@dataclass(frozen=True)
class _ErrorAbi:
    name: str
    types: tuple[str, ...]
    names: tuple[str, ...]


@cache
def _error_table() -> dict[bytes, _ErrorAbi]:
    table: dict[bytes, _ErrorAbi] = {}
    for name in CONTRACT_NAMES:
        for entry in artifact(name).abi:
            if entry["type"] != "error":
                continue
            selector = function_signature_to_4byte_selector(_signature(entry))
            table[selector] = _ErrorAbi(
                name=entry["name"],
                types=tuple(_canonical_type(p) for p in entry["inputs"]),
                names=tuple(p["name"] or f"arg{i}" for i, p in enumerate(entry["inputs"])),
            )
    table[function_signature_to_4byte_selector("Error(string)")] = _ErrorAbi(
        "Error", ("string",), ("message",)
    )
    table[function_signature_to_4byte_selector("Panic(uint256)")] = _ErrorAbi(
        "Panic", ("uint256",), ("code",)
    )
    return table


def _plain(value: Any) -> Any:
    """ABI-decoded value as plain Python (checksummed addresses, bytes, ints, tuples)."""
    if isinstance(value, str) and value.startswith("0x") and len(value) == 42:
        return to_checksum_address(value)
    if isinstance(value, list | tuple):
        return tuple(_plain(v) for v in value)
    return value


def decode_error(data: bytes) -> tuple[str, dict[str, Any]]:
    """Decode revert data into (error name, named arguments); unknown data is reported raw."""
    if len(data) < 4:
        return ("EmptyRevert", {}) if not data else ("UnknownError", {"data": data})
    spec = _error_table().get(data[:4])
    if spec is None:
        return "UnknownError", {"selector": data[:4], "data": data[4:]}
    try:
        values = abi_decode(list(spec.types), data[4:])
    except Exception:
        return spec.name, {"data": data[4:]}
    args = {n: _plain(v) for n, v in zip(spec.names, values, strict=True)}
    if spec.name == "Panic":
        args["reason"] = _PANIC_REASONS.get(int(args["code"]), "panic")
    return spec.name, args


@dataclass(frozen=True)
class EventAbi:
    """One event of one contract, ready to decode logs."""

    contract: str
    name: str
    abi: dict[str, Any]
    topic: bytes


@cache
def event_table() -> dict[tuple[str, bytes], EventAbi]:
    """(contract name, topic0) -> event ABI for every event of every contract."""
    table: dict[tuple[str, bytes], EventAbi] = {}
    for name in CONTRACT_NAMES:
        for entry in artifact(name).abi:
            if entry["type"] == "event":
                topic = keccak(text=_signature(entry))
                table[(name, topic)] = EventAbi(name, entry["name"], entry, topic)
    return table


def event_abi(contract: str, event: str) -> EventAbi:
    """Look up an event by contract and name."""
    for (owner, _), spec in event_table().items():
        if owner == contract and spec.name == event:
            return spec
    raise KeyError(f"{contract} has no event {event}")

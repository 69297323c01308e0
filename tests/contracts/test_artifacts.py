"""Committed artifacts match the Solidity sources, and every error and event in them decodes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector, keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import Web3

from ledger.chain.abi import CONTRACT_NAMES, artifact, decode_error, event_abi, event_table
from ledger.chain.tx import Transactor

ROOT = Path(__file__).resolve().parents[2]
CONTRACT_ADDRESSES = {
    name: to_checksum_address(f"0x{index + 1:040x}") for index, name in enumerate(CONTRACT_NAMES)
}


def _entries(kind: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, entry)
        for name in CONTRACT_NAMES
        for entry in artifact(name).abi
        if entry["type"] == kind
    ]


def _type(param: dict[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        return f"({','.join(_type(c) for c in param['components'])}){kind[5:]}"
    return kind


def _sample(param: dict[str, Any], seed: int) -> Any:
    """A distinctive value of an ABI parameter's type, as the decoder hands it back."""
    kind = str(param["type"])
    if kind.endswith("]"):
        inner = {**param, "type": kind[: kind.rindex("[")]}
        return (_sample(inner, seed), _sample(inner, seed + 1))
    if kind == "tuple":
        return tuple(_sample(c, seed + i) for i, c in enumerate(param["components"]))
    if kind.startswith(("uint", "int")):
        return seed % 200 + 1
    if kind == "address":
        return to_checksum_address(f"0x{seed + 0xA0:040x}")
    if kind == "bool":
        return True
    if kind == "string":
        return f"text{seed}"
    if kind == "bytes":
        return bytes([seed % 256]) * 3
    if kind.startswith("bytes"):
        return bytes([seed % 256 + 1]) * int(kind[5:])
    raise AssertionError(f"no sample for ABI type {kind}")


def _signature(entry: dict[str, Any]) -> str:
    return f"{entry['name']}({','.join(_type(p) for p in entry['inputs'])})"


def test_committed_artifacts_match_the_contract_sources():
    done = subprocess.run(
        [sys.executable, "scripts/compile_contracts.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_every_artifact_records_its_compiler_and_code():
    for name in CONTRACT_NAMES:
        art = artifact(name)
        assert art.compiler_version.startswith("0.8.28"), (name, art.compiler_version)
        assert len(art.bytecode) > len(art.deployed_bytecode) > 2, name


@pytest.mark.parametrize(
    ("contract", "entry"),
    _entries("error"),
    ids=[f"{c}.{e['name']}" for c, e in _entries("error")],
)
def test_every_abi_error_decodes_with_its_name_and_arguments(contract, entry):
    inputs = entry["inputs"]
    values = [_sample(p, i) for i, p in enumerate(inputs)]
    data = function_signature_to_4byte_selector(_signature(entry)) + encode(
        [_type(p) for p in inputs], values
    )

    name, args = decode_error(data)

    assert name == entry["name"], contract
    assert args == {p["name"]: v for p, v in zip(inputs, values, strict=True)}


def test_unknown_and_empty_revert_data_is_reported_raw():
    assert decode_error(b"") == ("EmptyRevert", {})
    name, args = decode_error(b"\xde\xad\xbe\xef" + b"\x00" * 32)
    assert name == "UnknownError"
    assert args["selector"] == b"\xde\xad\xbe\xef"


@pytest.mark.parametrize(
    ("contract", "entry"),
    _entries("event"),
    ids=[f"{c}.{e['name']}" for c, e in _entries("event")],
)
def test_every_abi_event_decodes_from_a_log(contract, entry):
    spec = event_abi(contract, entry["name"])
    assert spec.topic == keccak(text=_signature(entry))
    assert event_table()[(contract, spec.topic)].name == entry["name"]
    values = {p["name"]: _sample(p, i) for i, p in enumerate(entry["inputs"])}
    indexed = [p for p in entry["inputs"] if p["indexed"]]
    plain = [p for p in entry["inputs"] if not p["indexed"]]
    assert all(
        not p["type"].endswith("]") and p["type"] not in ("bytes", "string") for p in indexed
    )
    log = {
        "address": CONTRACT_ADDRESSES[contract],
        "topics": [HexBytes(spec.topic)]
        + [HexBytes(encode([_type(p)], [values[p["name"]]])) for p in indexed],
        "data": HexBytes(encode([_type(p) for p in plain], [values[p["name"]] for p in plain])),
        "blockNumber": 7,
        "blockHash": HexBytes(b"\x01" * 32),
        "transactionHash": HexBytes(b"\x02" * 32),
        "transactionIndex": 0,
        "logIndex": 3,
        "removed": False,
    }
    w3 = Web3()
    contracts = {
        name: w3.eth.contract(address=CONTRACT_ADDRESSES[name], abi=artifact(name).abi)
        for name in CONTRACT_NAMES
    }

    (event,) = Transactor(w3, contracts).decode_logs([log])

    assert (event.contract, event.name, event.block_number, event.log_index) == (
        contract,
        entry["name"],
        7,
        3,
    )
    assert event.args == values

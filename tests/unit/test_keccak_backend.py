"""Keccak-256 is computed by safe-pysha3's C code, and is the same function as pycryptodome's.

Importing ``ledger`` chooses the backend of ``eth_hash.auto``, which eth-utils (and through it
eth-account, web3 and py-evm) hashes with, unless the operator chose one with
``ETH_HASH_BACKEND``. safe-pysha3 1.0.7 carries the XKCP fix for CVE-2022-37454 (the bounds
check in ``KeccakSponge.inc``'s absorb), which the retired pysha3 never received.
"""

from __future__ import annotations

import os
import subprocess
import sys

from eth_hash.backends import pycryptodome, pysha3
from hypothesis import given
from hypothesis import strategies as st

#: Keccak-256 of the empty string and of "abc" (Ethereum's Keccak, not NIST SHA3-256).
KNOWN = {
    b"": "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470",
    b"abc": "4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45",
}

PROBE = (
    "import ledger\n"
    "from eth_hash.auto import keccak\n"
    "import eth_utils.crypto\n"
    "assert eth_utils.crypto.keccak_256 is keccak\n"
    "keccak(b'')  # the backend is chosen on the first hash\n"
    "print(keccak.hasher.__module__)\n"
)


def backend_in_a_fresh_process(**env: str) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "ETH_HASH_BACKEND"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE],
        env={**environment, **env},
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return out.stdout.strip()


def test_importing_ledger_chooses_pysha3_for_eth_hash_and_eth_utils() -> None:
    assert backend_in_a_fresh_process() == "eth_hash.backends.pysha3"


def test_an_operators_choice_of_backend_wins() -> None:
    chosen = backend_in_a_fresh_process(ETH_HASH_BACKEND="pycryptodome")
    assert chosen == "eth_hash.backends.pycryptodome"


def test_both_backends_give_the_known_digests() -> None:
    for data, digest in KNOWN.items():
        assert pysha3.keccak256(data).hex() == digest
        assert pycryptodome.keccak256(data).hex() == digest


@given(st.binary(max_size=600))
def test_both_backends_compute_the_same_function(data: bytes) -> None:
    assert pysha3.keccak256(data) == pycryptodome.keccak256(data)

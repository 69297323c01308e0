"""Data Rights Ledger: on-chain data rights, a blind broker and an anchored flow log."""

import importlib.util
import os

from ledger import _deferred_bls

__version__ = "0.1.0"

# Before anything imports eth-account: its key-file module would load py_ecc's BLS tables.
_deferred_bls.install()

# Keccak-256 runs several times for each signed request (EIP-712 and EIP-191 digests, address
# checksums, the embedded chain). eth-hash takes pycryptodome first when both of its backends
# are installed, about 11 µs a hash through cffi; safe-pysha3's C code takes under 2 µs. Both
# compute the same function (tests/unit/test_keccak_backend.py). An operator's own choice wins.
if "ETH_HASH_BACKEND" not in os.environ and importlib.util.find_spec("sha3") is not None:
    os.environ["ETH_HASH_BACKEND"] = "pysha3"

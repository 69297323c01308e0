"""Data Rights Ledger: on-chain data rights, a blind broker and an anchored flow log."""

from ledger import _deferred_bls

__version__ = "0.1.0"

# Before anything imports eth-account: its key-file module would load py_ecc's BLS tables.
_deferred_bls.install()

"""Data Rights Ledger: on-chain data rights, a blind broker and an anchored flow log."""

__version__ = "0.1.0"

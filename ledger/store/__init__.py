"""Storage: the broker's database (SQLite or PostgreSQL), migrations, tree nodes, blobs.

- ``ledger.store.models`` -- the SQLModel tables;
- ``ledger.store.db`` -- ``Database``: sessions, write transactions, migrations; the log lock;
- ``ledger.store.nodes`` -- ``SqlNodeStore``, the Merkle tree's nodes in ``tree_nodes``;
- ``ledger.store.blobs`` -- ``BlobStore`` / ``FileBlobStore``, content-addressed ciphertext;
- ``ledger.store.errors`` -- the errors these raise.
"""

from ledger.store.blobs import BlobInfo, BlobStore, FileBlobStore
from ledger.store.db import Database, locked_log_size, set_log_size
from ledger.store.nodes import SqlNodeStore

__all__ = [
    "BlobInfo",
    "BlobStore",
    "Database",
    "FileBlobStore",
    "SqlNodeStore",
    "locked_log_size",
    "set_log_size",
]

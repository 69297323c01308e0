"""What a member keeps between audits of one broker's log, in one SQLite file.

- the last signed checkpoint verified (the note itself: evidence if the broker later shows
  another history) and the last chain block scanned;
- every verified record (its leaf, leaf hash, action, actor, dataset and the chain event it
  was matched to), so ``drl trace`` is answered locally, and the addresses each names;
- the Merkle tree's perfect-subtree nodes (``ledger.merkle.tree`` layout), so the next run
  opens the tree at the kept size and appends only the new leaves, and roots of past sizes
  (anchored heads) cost ``O(log n)``;
- the nonces seen (a signed action logged twice is a replay);
- what is still unmatched: records waiting for their chain event, chain events no record
  explains yet, and anchored heads beyond the kept checkpoint;
- evidence: pairs of signed notes no append-only log can both have.

The file is created ``0600`` in a ``0700`` directory. A run writes inside one transaction
(:meth:`AuditState.transaction`): it commits whole or not at all, so a run that fails midway
leaves the previous state as it was.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from ledger.errors import ConfigurationError, StorageError
from ledger.merkle.tree import Node, NodeKey

SCHEMA_VERSION: Final = 1

_LEAF_COLUMNS: Final = (
    "seq, leaf_hash, action, actor, dataset_id, dataset_from, at, leaf, chain, tx_hash, "
    "block_number"
)

ChainStatus = Literal["none", "matched", "unmatched", "pending"]
"""A record's standing against the chain: no event expected, matched, missing, or not yet due."""

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS leaves (
    seq INTEGER PRIMARY KEY,
    leaf_hash BLOB NOT NULL,
    action TEXT NOT NULL,
    actor TEXT NOT NULL,
    dataset_id INTEGER,
    dataset_from TEXT,
    at TEXT NOT NULL,
    leaf BLOB NOT NULL,
    chain TEXT NOT NULL,
    tx_hash TEXT,
    block_number INTEGER
);
CREATE INDEX IF NOT EXISTS leaves_dataset ON leaves (dataset_id, seq);
CREATE INDEX IF NOT EXISTS leaves_action ON leaves (action, seq);
CREATE INDEX IF NOT EXISTS leaves_open ON leaves (chain) WHERE chain IN ('unmatched', 'pending');
CREATE TABLE IF NOT EXISTS parties (
    address TEXT NOT NULL, seq INTEGER NOT NULL, PRIMARY KEY (address, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nodes (
    level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY (level, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS nonces (
    domain TEXT NOT NULL, signer TEXT NOT NULL, nonce TEXT NOT NULL, seq INTEGER NOT NULL,
    PRIMARY KEY (domain, signer, nonce)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS open_events (
    id INTEGER PRIMARY KEY,
    contract TEXT NOT NULL,
    name TEXT NOT NULL,
    args TEXT NOT NULL,
    block_number INTEGER NOT NULL,
    tx_hash TEXT NOT NULL,
    log_index INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS anchors (
    id INTEGER PRIMARY KEY,
    tree_size INTEGER NOT NULL,
    root BLOB NOT NULL,
    block_number INTEGER NOT NULL,
    tx_hash TEXT NOT NULL,
    status TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS evidence (
    id INTEGER PRIMARY KEY,
    found_at TEXT NOT NULL,
    code TEXT NOT NULL,
    detail TEXT NOT NULL,
    kept_note TEXT NOT NULL,
    served_note TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class LeafRow:
    """A verified record as kept."""

    seq: int
    leaf_hash: bytes
    action: str
    actor: str
    dataset_id: int | None
    dataset_from: str | None  # "signed", "chain" or "context" (the broker's unsigned word)
    at: str
    leaf: bytes
    chain: ChainStatus
    tx_hash: str | None = None
    block_number: int | None = None
    parties: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredEvent:
    """A chain event kept for a later run (plain JSON arguments: bytes as ``0x``-hex)."""

    contract: str
    name: str
    args: dict[str, Any]
    block_number: int
    tx_hash: str
    log_index: int


@dataclass(frozen=True)
class StoredAnchor:
    """An anchored tree head read from the chain, and how it compared."""

    tree_size: int
    root: bytes
    block_number: int
    tx_hash: str
    status: Literal["ok", "pending", "mismatch"]


@dataclass(frozen=True)
class Evidence:
    """Two signed notes of one broker that no append-only log can both have."""

    found_at: str
    code: str
    detail: str
    kept_note: str
    served_note: str


def plain_json(value: Any) -> Any:
    """An event argument as JSON: bytes as ``0x``-hex, tuples as lists."""
    if isinstance(value, bytes | bytearray):
        return "0x" + bytes(value).hex()
    if isinstance(value, Mapping):
        return {str(k): plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain_json(v) for v in value]
    return value


class SqliteNodeStore:
    """``ledger.merkle.tree`` node store (batch and bulk) over the state's connection."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._db = connection

    def get(self, level: int, index: int) -> bytes | None:
        row = self._db.execute(
            "SELECT hash FROM nodes WHERE level = ? AND idx = ?", (level, index)
        ).fetchone()
        return None if row is None else bytes(row[0])

    def get_many(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        found: dict[NodeKey, bytes] = {}
        for level, index in keys:
            digest = self.get(level, index)
            if digest is not None:
                found[level, index] = digest
        return found

    def put(self, level: int, index: int, digest: bytes) -> None:
        self.put_many([Node(level, index, digest)])

    def put_many(self, nodes: Sequence[Node]) -> None:
        self._db.executemany(
            "INSERT INTO nodes (level, idx, hash) VALUES (?, ?, ?)",
            [(n.level, n.index, bytes(n.hash)) for n in nodes],
        )


class AuditState:
    """One broker's audit state (see the module docstring). Open with :meth:`open`."""

    def __init__(self, connection: sqlite3.Connection, path: Path | None = None) -> None:
        self._db = connection
        self.path = path
        self._db.executescript(_SCHEMA)
        version = self._meta("schema")
        if version is None:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
            )
        elif version != str(SCHEMA_VERSION):
            raise ConfigurationError(
                f"the audit state {path} has schema {version}, this code reads {SCHEMA_VERSION}"
            )
        self.nodes = SqliteNodeStore(self._db)

    @classmethod
    def open(cls, path: Path) -> AuditState:
        """Open (or create, ``0600`` in a ``0700`` directory) the state file at ``path``."""
        path = Path(path)
        if not path.parent.exists():
            path.parent.mkdir(parents=True, mode=0o700)
            path.parent.chmod(0o700)
        if not path.exists():
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
            os.close(fd)
        path.chmod(0o600)
        try:
            connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open the audit state {path}: {exc}") from exc
        return cls(connection, path)

    @classmethod
    def in_memory(cls) -> AuditState:
        """A state that lives as long as the object (tests, one-off checks)."""
        return cls(sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False))

    def close(self) -> None:
        self._db.close()

    @property
    def connection(self) -> sqlite3.Connection:
        """The state file's connection, for modules that keep tables of their own in the same
        file (``ledger.audit.warnings.store``), so that they commit with :meth:`transaction`."""
        return self._db

    def __enter__(self) -> AuditState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Everything inside commits together, or (on an exception) not at all."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- what was verified last ----------------------------------------------------------

    def _meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def _set_meta(self, key: str, value: str) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

    @property
    def origin(self) -> str | None:
        """The log this state audits (set by the first run)."""
        return self._meta("origin")

    @property
    def checkpoint_note(self) -> str | None:
        """The last signed checkpoint verified, as the broker signed it."""
        return self._meta("checkpoint")

    @property
    def last_block(self) -> int:
        """The last chain block scanned (-1 before the first run)."""
        value = self._meta("last_block")
        return -1 if value is None else int(value)

    @property
    def size(self) -> int:
        """Number of records kept (the kept checkpoint's tree size)."""
        row = self._db.execute("SELECT COUNT(*) FROM leaves").fetchone()
        return int(row[0])

    def advance(self, *, origin: str, checkpoint_note: str, last_block: int) -> None:
        """Record the checkpoint now verified and the last block scanned."""
        self._set_meta("origin", origin)
        self._set_meta("checkpoint", checkpoint_note)
        self._set_meta("last_block", str(last_block))

    # -- records -------------------------------------------------------------------------

    def add_leaves(self, rows: Sequence[LeafRow]) -> None:
        self._db.executemany(
            "INSERT INTO leaves (seq, leaf_hash, action, actor, dataset_id, dataset_from, at, "
            "leaf, chain, tx_hash, block_number) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    r.seq,
                    r.leaf_hash,
                    r.action,
                    r.actor,
                    r.dataset_id,
                    r.dataset_from,
                    r.at,
                    r.leaf,
                    r.chain,
                    r.tx_hash,
                    r.block_number,
                )
                for r in rows
            ],
        )
        self._db.executemany(
            "INSERT OR IGNORE INTO parties (address, seq) VALUES (?, ?)",
            [(address.lower(), r.seq) for r in rows for address in r.parties],
        )

    def set_chain(
        self,
        seq: int,
        status: ChainStatus,
        *,
        tx_hash: str | None = None,
        block_number: int | None = None,
        dataset_id: int | None = None,
    ) -> None:
        """A record's standing against the chain; a matched event may name its dataset."""
        self._db.execute(
            "UPDATE leaves SET chain = ?, tx_hash = ?, block_number = ? WHERE seq = ?",
            (status, tx_hash, block_number, seq),
        )
        if dataset_id is not None:
            self._db.execute(
                "UPDATE leaves SET dataset_id = ?, dataset_from = 'chain' "
                "WHERE seq = ? AND (dataset_from IS NULL OR dataset_from = 'context')",
                (dataset_id, seq),
            )

    def open_records(self, *, after: int = -1, limit: int = 1000) -> list[tuple[int, bytes]]:
        """``(seq, leaf)`` of records after ``after`` still waiting for their chain event."""
        rows = self._db.execute(
            "SELECT seq, leaf FROM leaves WHERE chain IN ('unmatched', 'pending') AND seq > ? "
            "ORDER BY seq LIMIT ?",
            (after, limit),
        )
        return [(int(seq), bytes(leaf)) for seq, leaf in rows]

    def leaf_rows(
        self,
        *,
        dataset_id: int | None = None,
        party: str | None = None,
        actions: Sequence[str] | None = None,
    ) -> list[LeafRow]:
        """Kept records in log order, filtered by dataset, by an address they name, or action."""
        where: list[str] = []
        params: list[Any] = []
        if dataset_id is not None:
            where.append("dataset_id = ?")
            params.append(dataset_id)
        if party is not None:
            where.append("seq IN (SELECT seq FROM parties WHERE address = ?)")
            params.append(party.lower())
        if actions is not None:
            where.append(f"action IN ({', '.join('?' for _ in actions)})")
            params.extend(actions)
        # Only fixed fragments and placeholders are joined: every value is a parameter.
        condition = " WHERE " + " AND ".join(where) if where else ""
        query = f"SELECT {_LEAF_COLUMNS} FROM leaves{condition} ORDER BY seq"  # noqa: S608
        return [
            LeafRow(
                seq=int(r[0]),
                leaf_hash=bytes(r[1]),
                action=str(r[2]),
                actor=str(r[3]),
                dataset_id=None if r[4] is None else int(r[4]),
                dataset_from=r[5],
                at=str(r[6]),
                leaf=bytes(r[7]),
                chain=r[8],
                tx_hash=r[9],
                block_number=None if r[10] is None else int(r[10]),
            )
            for r in self._db.execute(query, params)
        ]

    def nonce_seq(self, domain: str, signer: str, nonce: str) -> int | None:
        """The record that first used this nonce, if any."""
        row = self._db.execute(
            "SELECT seq FROM nonces WHERE domain = ? AND signer = ? AND nonce = ?",
            (domain, signer.lower(), nonce),
        ).fetchone()
        return None if row is None else int(row[0])

    def add_nonces(self, rows: Sequence[tuple[str, str, str, int]]) -> None:
        self._db.executemany(
            "INSERT INTO nonces (domain, signer, nonce, seq) VALUES (?, ?, ?, ?)",
            [(d, s.lower(), n, seq) for d, s, n, seq in rows],
        )

    # -- the chain side ------------------------------------------------------------------

    def open_events(self) -> list[StoredEvent]:
        """Chain events no record explained yet, oldest first."""
        rows = self._db.execute(
            "SELECT contract, name, args, block_number, tx_hash, log_index FROM open_events "
            "ORDER BY block_number, log_index, id"
        )
        return [
            StoredEvent(str(c), str(n), json.loads(a), int(b), str(t), int(i))
            for c, n, a, b, t, i in rows
        ]

    def replace_open_events(self, events: Sequence[StoredEvent]) -> None:
        self._db.execute("DELETE FROM open_events")
        self._db.executemany(
            "INSERT INTO open_events (contract, name, args, block_number, tx_hash, log_index) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    e.contract,
                    e.name,
                    json.dumps(plain_json(e.args)),
                    e.block_number,
                    e.tx_hash,
                    e.log_index,
                )
                for e in events
            ],
        )

    def anchors(self, status: str | None = None) -> list[StoredAnchor]:
        """Anchored heads read so far (optionally of one status), by tree size."""
        query = "SELECT tree_size, root, block_number, tx_hash, status FROM anchors"
        rows = (
            self._db.execute(query + " WHERE status = ? ORDER BY tree_size, id", (status,))
            if status is not None
            else self._db.execute(query + " ORDER BY tree_size, id")
        )
        return [StoredAnchor(int(s), bytes(r), int(b), str(t), st) for s, r, b, t, st in rows]

    def replace_anchors(self, anchors: Sequence[StoredAnchor]) -> None:
        """Drop the pending anchors and store these (checked or still pending)."""
        self._db.execute("DELETE FROM anchors WHERE status = 'pending'")
        self._db.executemany(
            "INSERT INTO anchors (tree_size, root, block_number, tx_hash, status) "
            "VALUES (?, ?, ?, ?, ?)",
            [(a.tree_size, a.root, a.block_number, a.tx_hash, a.status) for a in anchors],
        )

    # -- evidence ------------------------------------------------------------------------

    def add_evidence(self, *, code: str, detail: str, kept_note: str, served_note: str) -> None:
        self._db.execute(
            "INSERT INTO evidence (found_at, code, detail, kept_note, served_note) "
            "VALUES (?, ?, ?, ?, ?)",
            (
                dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                code,
                detail,
                kept_note,
                served_note,
            ),
        )

    def evidence(self) -> list[Evidence]:
        rows = self._db.execute(
            "SELECT found_at, code, detail, kept_note, served_note FROM evidence ORDER BY id"
        )
        return [Evidence(*map(str, row)) for row in rows]

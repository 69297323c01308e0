"""Incremental, append-only RFC 6962 Merkle tree over a pluggable node store.

Layout
------
Only *perfect* subtrees are stored. Node ``(level, index)`` is the hash of the perfect subtree
over leaves ``[index * 2**level, (index + 1) * 2**level)``; level 0 holds the leaf hashes.
Appending leaf ``n`` stores ``(0, n)`` and every perfect parent it completes (one per trailing
one-bit of ``n``), so an append writes at most ``log2(n + 1) + 1`` nodes and never rewrites
one: stored nodes are immutable.

Every subtree an RFC 6962 root or proof needs is either perfect or a "ragged" right edge whose
hash is the right fold of its perfect pieces (the binary decomposition of its width), so the
root of any past size and any inclusion or consistency proof is assembled from stored nodes
without touching the leaves. A proof needs ``O(log n)`` nodes (at most one sibling in a proof
is ragged) and they are fetched in a single ``get_many`` when the store offers it.

Node store protocol
-------------------
``NodeStore`` is deliberately tiny, so a SQL table can back it::

    get(level, index) -> bytes | None     # the 32-byte hash, or None when absent
    put(level, index, digest) -> None     # insert; nodes never change once written

``BatchNodeStore`` adds ``get_many(keys) -> Mapping[(level, index), bytes]`` (absent keys are
left out) so a proof costs one round trip; the tree uses it when present and falls back to
``get`` otherwise. A SQL store would be a table ``(level, idx, hash)`` with primary key
``(level, idx)``; ``put`` is a plain ``INSERT`` through the caller's session.
``BulkNodeStore`` adds ``put_many(nodes)``: ``append_leaf_hashes`` (and ``append_many``) then
write all the nodes of many leaves in one call, which a SQL store makes one bulk insert.

Transactions and concurrency
----------------------------
``append`` writes its nodes with ``store.put`` before it returns. A store bound to the caller's
database session therefore writes the nodes in the same transaction as the log record;
``append_with_nodes`` also returns them (``Appended.nodes``) for callers that insert rows
themselves or audit what was written. The tree keeps the right edge of the tree (its
"frontier", one node per one-bit of the size) in memory: if the transaction rolls back, drop
the ``MerkleTree`` and open a new one at the committed size. Appends must be serialised by the
caller (one writer, e.g. under the log's row lock); readers may open their own trees at any
committed size.

A caller that already knows the frontier of a committed size (it wrote it, and nothing can
change a committed prefix of an append-only log) may hand it to the constructor
(``MerkleTree(store, size, frontier=...)``) and skip reading it back; ``tree.frontier`` is the
frontier after the last append.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from ledger.errors import LogError
from ledger.merkle.proofs import (
    EMPTY_ROOT,
    HASH_SIZE,
    consistency_path_ranges,
    inclusion_path_ranges,
    leaf_hash,
    node_hash,
)
from ledger.protocol.codes import ErrorCode

NodeKey = tuple[int, int]
"""``(level, index)`` of a stored perfect-subtree node."""


@dataclass(frozen=True, slots=True)
class Node:
    """One stored node: the perfect subtree at ``(level, index)`` and its hash."""

    level: int
    index: int
    hash: bytes


class MissingNode(LogError, LookupError):
    """The node store lacks a node that the tree's size says must exist.

    The store and the size the tree was opened with disagree: nodes were lost, or the size
    came from a transaction the store does not see.
    """

    code = ErrorCode.MERKLE_NODE_MISSING

    def __init__(self, level: int, index: int) -> None:
        super().__init__(f"Merkle node (level={level}, index={index}) is missing from the store")
        self.level = level
        self.index = index


@runtime_checkable
class NodeStore(Protocol):
    """Where the tree keeps its perfect-subtree nodes. Nodes are written once, never changed."""

    def get(self, level: int, index: int) -> bytes | None:
        """The hash stored at ``(level, index)``, or ``None`` if there is none."""
        ...

    def put(self, level: int, index: int, digest: bytes) -> None:
        """Store ``digest`` at ``(level, index)``. May refuse to overwrite a different hash."""
        ...


@runtime_checkable
class BatchNodeStore(NodeStore, Protocol):
    """A ``NodeStore`` that can also fetch many nodes in one round trip."""

    def get_many(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        """The hashes stored under ``keys``; keys without a node are left out."""
        ...


@runtime_checkable
class BulkNodeStore(NodeStore, Protocol):
    """A ``NodeStore`` that can also write many nodes at once (same rules as ``put``)."""

    def put_many(self, nodes: Sequence[Node]) -> None:
        """Store every node of ``nodes``; all or none (the caller's transaction decides)."""
        ...


class MemoryNodeStore:
    """``BatchNodeStore`` in a dict, for tests and for trees that need no persistence."""

    def __init__(self) -> None:
        self._nodes: dict[NodeKey, bytes] = {}

    def get(self, level: int, index: int) -> bytes | None:
        return self._nodes.get((level, index))

    def get_many(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        return {key: self._nodes[key] for key in keys if key in self._nodes}

    def put(self, level: int, index: int, digest: bytes) -> None:
        key = (level, index)
        existing = self._nodes.get(key)
        if existing is not None and existing != digest:
            raise ValueError(f"Merkle node (level={level}, index={index}) is already stored")
        self._nodes[key] = bytes(digest)

    def __len__(self) -> int:
        return len(self._nodes)


@dataclass(frozen=True, slots=True)
class Appended:
    """Result of one append: the leaf's index and the nodes written, leaf node first."""

    index: int
    nodes: tuple[Node, ...]


def _pieces(start: int, end: int) -> list[NodeKey]:
    """Perfect subtrees making up the RFC subtree ``[start, end)``, leftmost (largest) first.

    ``start`` must be a multiple of the largest power of two not above ``end - start``, which
    holds for ``[0, size)`` and for every range of a proof.
    """
    keys: list[NodeKey] = []
    width, pos = end - start, start
    for level in range(width.bit_length() - 1, -1, -1):
        if width >> level & 1:
            keys.append((level, pos >> level))
            pos += 1 << level
    return keys


def _fold(hashes: Sequence[bytes]) -> bytes:
    """Hash of a subtree from its perfect pieces: ``H(p1, H(p2, ... H(pk-1, pk)))``."""
    acc = hashes[-1]
    for piece in reversed(hashes[:-1]):
        acc = node_hash(piece, acc)
    return acc


class MerkleTree:
    """Append-only RFC 6962 Merkle tree whose nodes live in a ``NodeStore``.

    ``MerkleTree(store, size)`` opens the tree the store holds at ``size`` leaves (0 for a new
    log). Roots and proofs can be asked for any size up to the current one.
    """

    def __init__(
        self, store: NodeStore, size: int = 0, *, frontier: Sequence[Node] | None = None
    ) -> None:
        if size < 0:
            raise ValueError(f"tree size must not be negative, got {size}")
        self._store = store
        self._size = size
        # Perfect pieces of [0, size), largest first; loaded from the store on first need.
        self._frontier: list[Node] | None = [] if size == 0 else None
        if frontier is not None:
            shape = [(node.level, node.index) for node in frontier]
            if shape != _pieces(0, size) or any(len(n.hash) != HASH_SIZE for n in frontier):
                raise ValueError(f"the frontier given is not that of a tree of size {size}")
            self._frontier = list(frontier)

    @property
    def store(self) -> NodeStore:
        """The node store the tree reads and writes."""
        return self._store

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def frontier(self) -> tuple[Node, ...]:
        """The right edge at the current size: one perfect subtree per one-bit, largest first."""
        return tuple(self._load_frontier())

    # -- appending ---------------------------------------------------------------------------

    def append(self, leaf_data: bytes) -> int:
        """Append raw leaf data, write its nodes to the store, and return the leaf's index."""
        return self.append_leaf_hash(leaf_hash(leaf_data)).index

    def append_many(self, leaves: Iterable[bytes]) -> range:
        """Append each of ``leaves`` in order; returns the range of their indices."""
        first = self._size
        self.append_leaf_hashes([leaf_hash(leaf) for leaf in leaves])
        return range(first, self._size)

    def append_with_nodes(self, leaf_data: bytes) -> Appended:
        """Like ``append``, and also return every node written (``(level, index, hash)``)."""
        return self.append_leaf_hash(leaf_hash(leaf_data))

    def append_leaf_hash(self, hashed_leaf: bytes) -> Appended:
        """Append a leaf given its leaf hash ``SHA-256(0x00 || data)``."""
        return self.append_leaf_hashes([hashed_leaf])[0]

    def append_leaf_hashes(self, hashed_leaves: Sequence[bytes]) -> list[Appended]:
        """Append many leaves given their leaf hashes; one ``put_many`` if the store has it.

        Either every node is written and the tree moves on, or (a write failed) the tree
        stays where it was.
        """
        for hashed in hashed_leaves:
            if len(hashed) != HASH_SIZE:
                raise ValueError(f"a leaf hash is {HASH_SIZE} bytes, got {len(hashed)}")
        frontier = list(self._load_frontier())
        index = self._size
        results: list[Appended] = []
        for hashed in hashed_leaves:
            current = Node(0, index, bytes(hashed))
            written = [current]
            while frontier and frontier[-1].level == current.level:
                left = frontier.pop()
                current = Node(
                    current.level + 1, left.index >> 1, node_hash(left.hash, current.hash)
                )
                written.append(current)
            frontier.append(current)
            results.append(Appended(index=index, nodes=tuple(written)))
            index += 1
        store = self._store
        if isinstance(store, BulkNodeStore):
            store.put_many([node for result in results for node in result.nodes])
        else:
            for result in results:
                for node in result.nodes:
                    store.put(node.level, node.index, node.hash)
        # Only now that every put succeeded does the in-memory view move on.
        self._frontier = frontier
        self._size = index
        return results

    # -- reading -----------------------------------------------------------------------------

    def root(self, size: int | None = None) -> bytes:
        """Merkle tree hash of the first ``size`` leaves (default: all of them)."""
        size = self._checked_size(size)
        if size == 0:
            return EMPTY_ROOT
        if size == self._size:
            return _fold([node.hash for node in self._load_frontier()])
        return self._range_hashes([(0, size)])[0]

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Audit path of leaf ``index`` in the tree of ``size`` leaves (default: current size)."""
        size = self._checked_size(size)
        if not 0 <= index < size:
            raise ValueError(f"leaf index {index} is out of range for a tree of size {size}")
        return self._range_hashes(inclusion_path_ranges(index, size))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        """Consistency proof from size ``old_size`` to ``new_size`` (default: current size)."""
        new_size = self._checked_size(new_size)
        if not 0 <= old_size <= new_size:
            raise ValueError(
                f"consistency needs 0 <= old_size <= new_size, got old_size={old_size}, "
                f"new_size={new_size}"
            )
        return self._range_hashes(consistency_path_ranges(old_size, new_size))

    # -- internals ---------------------------------------------------------------------------

    def _checked_size(self, size: int | None) -> int:
        if size is None:
            return self._size
        if not 0 <= size <= self._size:
            raise ValueError(f"tree size {size} is out of range: the tree has {self._size} leaves")
        return size

    def _load_frontier(self) -> list[Node]:
        if self._frontier is None:
            keys = _pieces(0, self._size)
            found = self._fetch(keys)
            self._frontier = [Node(level, index, found[level, index]) for level, index in keys]
        return self._frontier

    def _range_hashes(self, ranges: Sequence[tuple[int, int]]) -> list[bytes]:
        """Subtree hash of each ``[start, end)`` in ``ranges``, from one batch of node reads."""
        plans = [_pieces(start, end) for start, end in ranges]
        found = self._fetch(list(dict.fromkeys(key for plan in plans for key in plan)))
        return [_fold([found[key] for key in plan]) for plan in plans]

    def _fetch(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        store = self._store
        found: Mapping[NodeKey, bytes]
        if isinstance(store, BatchNodeStore):
            found = store.get_many(keys)
        else:
            one_by_one: dict[NodeKey, bytes] = {}
            for level, index in keys:
                digest = store.get(level, index)
                if digest is not None:
                    one_by_one[level, index] = digest
            found = one_by_one
        for level, index in keys:
            if (level, index) not in found:
                raise MissingNode(level, index)
        return found

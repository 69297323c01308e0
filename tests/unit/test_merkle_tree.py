"""Incremental Merkle tree over a node store (ledger.merkle.tree).

The tree must serve exactly what the pure functions of ``ledger.merkle.proofs`` compute from the
full leaf list, for every past size, while touching only O(log n) stored nodes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pytest

from ledger.errors import LedgerError
from ledger.merkle.proofs import (
    EMPTY_ROOT,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root,
    verify_consistency,
    verify_inclusion,
)
from ledger.merkle.tree import (
    Appended,
    BatchNodeStore,
    MemoryNodeStore,
    MerkleTree,
    MissingNode,
    Node,
    NodeKey,
    NodeStore,
)

LEAVES = [f"signed action {i}".encode() for i in range(70)]


class CountingStore:
    """A batch store that counts node reads and writes."""

    def __init__(self, inner: MemoryNodeStore | None = None) -> None:
        self.inner = inner if inner is not None else MemoryNodeStore()
        self.reads = 0
        self.writes: list[Node] = []

    def get(self, level: int, index: int) -> bytes | None:
        self.reads += 1
        return self.inner.get(level, index)

    def get_many(self, keys: Sequence[NodeKey]) -> Mapping[NodeKey, bytes]:
        self.reads += len(keys)
        return self.inner.get_many(keys)

    def put(self, level: int, index: int, digest: bytes) -> None:
        self.writes.append(Node(level, index, digest))
        self.inner.put(level, index, digest)


class PlainStore:
    """A store with only ``get`` and ``put``: the tree must fall back to single reads."""

    def __init__(self) -> None:
        self.nodes: dict[NodeKey, bytes] = {}
        self.reads = 0

    def get(self, level: int, index: int) -> bytes | None:
        self.reads += 1
        return self.nodes.get((level, index))

    def put(self, level: int, index: int, digest: bytes) -> None:
        self.nodes[level, index] = digest


@pytest.fixture(scope="module")
def full_tree() -> MerkleTree:
    tree = MerkleTree(MemoryNodeStore())
    tree.append_many(LEAVES)
    return tree


def test_stores_satisfy_the_protocols() -> None:
    assert isinstance(MemoryNodeStore(), BatchNodeStore)
    assert isinstance(CountingStore(), BatchNodeStore)
    assert isinstance(PlainStore(), NodeStore)
    assert not isinstance(PlainStore(), BatchNodeStore)


def test_root_after_each_append_matches_the_pure_root() -> None:
    tree = MerkleTree(MemoryNodeStore())
    assert tree.size == 0
    assert tree.root() == EMPTY_ROOT
    for n, leaf in enumerate(LEAVES):
        assert tree.append(leaf) == n
        assert tree.size == n + 1
        assert tree.root() == root(LEAVES[: n + 1])


def test_root_of_every_past_size_matches_the_pure_root(full_tree: MerkleTree) -> None:
    for size in range(len(LEAVES) + 1):
        assert full_tree.root(size) == root(LEAVES[:size])


def test_inclusion_proofs_for_every_index_and_size_match_the_pure_builder(
    full_tree: MerkleTree,
) -> None:
    for size in range(1, len(LEAVES) + 1):
        leaves, tree_root = LEAVES[:size], full_tree.root(size)
        for index in range(size):
            proof = full_tree.inclusion_proof(index, size)
            assert proof == inclusion_proof(index, leaves)
            assert verify_inclusion(leaves[index], index, size, proof, tree_root)
    assert full_tree.inclusion_proof(3) == inclusion_proof(3, LEAVES)


def test_consistency_proofs_for_every_pair_of_sizes_match_the_pure_builder(
    full_tree: MerkleTree,
) -> None:
    roots = [full_tree.root(size) for size in range(len(LEAVES) + 1)]
    for new in range(len(LEAVES) + 1):
        for old in range(new + 1):
            proof = full_tree.consistency_proof(old, new)
            assert proof == consistency_proof(old, LEAVES[:new])
            assert verify_consistency(old, new, roots[old], roots[new], proof)
    assert full_tree.consistency_proof(5) == consistency_proof(5, LEAVES)


def test_append_writes_the_leaf_and_each_completed_parent_only() -> None:
    store = CountingStore()
    tree = MerkleTree(store)
    for n, leaf in enumerate(LEAVES):
        before = len(store.writes)
        appended = tree.append_with_nodes(leaf)
        written = store.writes[before:]
        new_size = n + 1
        assert appended == Appended(index=n, nodes=tuple(written))
        # One node per trailing one-bit of the index, plus the leaf: at most log2(n) + 1.
        trailing_ones = (n ^ (n + 1)).bit_length() - 1
        assert len(written) == 1 + trailing_ones
        assert len(written) <= new_size.bit_length()
        assert written[0] == Node(0, n, leaf_hash(leaf))
        for node in written[1:]:
            span = LEAVES[node.index << node.level : (node.index + 1) << node.level]
            assert len(span) == 1 << node.level
            assert node.hash == root(span)
    assert store.reads == 0  # a tree that starts empty never needs to read to append


def test_append_many_returns_the_indices_and_matches_single_appends() -> None:
    tree = MerkleTree(MemoryNodeStore())
    assert tree.append_many(LEAVES[:5]) == range(5)
    assert tree.append_many([]) == range(5, 5)
    assert tree.append_many(LEAVES[5:12]) == range(5, 12)
    assert tree.root() == root(LEAVES[:12])


def test_append_leaf_hash_equals_append_of_the_data() -> None:
    a, b = MerkleTree(MemoryNodeStore()), MerkleTree(MemoryNodeStore())
    for leaf in LEAVES[:9]:
        a.append(leaf)
        b.append_leaf_hash(leaf_hash(leaf))
    assert a.root() == b.root()
    with pytest.raises(ValueError, match="32 bytes"):
        b.append_leaf_hash(b"short")


@pytest.mark.parametrize("size", [1, 2, 7, 1000, 1023, 1024, 1025])
def test_proofs_read_a_logarithmic_number_of_nodes(size: int) -> None:
    store = CountingStore()
    tree = MerkleTree(store)
    tree.append_many(f"leaf {i}".encode() for i in range(size))
    bound = 2 * max(size.bit_length(), 1)
    probes = sorted({0, 1 % size, size // 3, size // 2, size - 2 if size > 1 else 0, size - 1})
    for index in probes:
        for tree_size in sorted({index + 1, size, (index + 1 + size) // 2}):
            store.reads = 0
            tree.inclusion_proof(index, tree_size)
            assert store.reads <= bound, (index, tree_size, store.reads)
    for old in sorted({0, 1, size // 3, size // 2, size - 1, size}):
        for new in sorted({max(old, 1), size, (old + size) // 2}):
            store.reads = 0
            tree.consistency_proof(min(old, new), new)
            assert store.reads <= bound, (old, new, store.reads)
    for past in sorted({1, size // 2, size - 1}):
        store.reads = 0
        tree.root(past)
        assert store.reads <= size.bit_length()
    store.reads = 0
    tree.root()
    assert store.reads == 0  # the current root comes from the in-memory frontier


def test_reopened_tree_continues_from_the_store() -> None:
    store = CountingStore()
    MerkleTree(store).append_many(LEAVES[:37])
    store.reads = 0
    reopened = MerkleTree(store, size=37)
    assert reopened.root() == root(LEAVES[:37])
    assert store.reads == bin(37).count("1")  # one read per frontier node, once
    reopened.append_many(LEAVES[37:])
    assert store.reads == bin(37).count("1")
    assert reopened.root() == root(LEAVES)
    assert reopened.consistency_proof(37) == consistency_proof(37, LEAVES)


def test_store_without_batch_reads_gives_the_same_answers() -> None:
    store = PlainStore()
    tree = MerkleTree(store)
    tree.append_many(LEAVES[:45])
    assert tree.root(30) == root(LEAVES[:30])
    assert tree.inclusion_proof(17, 40) == inclusion_proof(17, LEAVES[:40])
    assert tree.consistency_proof(13, 45) == consistency_proof(13, LEAVES[:45])
    reopened = MerkleTree(store, size=45)
    store.reads = 0
    assert reopened.root() == root(LEAVES[:45])
    assert store.reads == bin(45).count("1")


def test_a_store_missing_a_node_is_reported() -> None:
    store = PlainStore()
    MerkleTree(store).append_many(LEAVES[:6])
    del store.nodes[1, 2]  # the perfect pair over leaves 4 and 5
    tree = MerkleTree(store, size=6)
    with pytest.raises(MissingNode) as caught:
        tree.root()
    assert (caught.value.level, caught.value.index) == (1, 2)
    assert isinstance(caught.value, LedgerError)
    assert isinstance(caught.value, LookupError)
    assert caught.value.code == "merkle_node_missing"
    with pytest.raises(MissingNode):
        MerkleTree(store, size=6).inclusion_proof(0)


def test_a_failed_write_leaves_the_tree_unchanged() -> None:
    class FailingStore(MemoryNodeStore):
        fail = False

        def put(self, level: int, index: int, digest: bytes) -> None:
            if self.fail:
                raise OSError("disk full")
            super().put(level, index, digest)

    store = FailingStore()
    tree = MerkleTree(store)
    tree.append_many(LEAVES[:3])
    store.fail = True
    with pytest.raises(OSError, match="disk full"):
        tree.append(LEAVES[3])
    assert tree.size == 3
    assert tree.root() == root(LEAVES[:3])
    store.fail = False
    assert tree.append(LEAVES[3]) == 3
    assert tree.root() == root(LEAVES[:4])


def test_memory_store_refuses_to_rewrite_a_node() -> None:
    store = MemoryNodeStore()
    store.put(0, 0, leaf_hash(b"a"))
    store.put(0, 0, leaf_hash(b"a"))  # writing the same hash again is harmless
    assert len(store) == 1
    with pytest.raises(ValueError, match="already stored"):
        store.put(0, 0, leaf_hash(b"b"))
    assert store.get(0, 0) == leaf_hash(b"a")
    assert store.get(0, 1) is None
    assert store.get_many([(0, 0), (0, 1)]) == {(0, 0): leaf_hash(b"a")}


def test_stored_parents_are_rfc_node_hashes() -> None:
    store = MemoryNodeStore()
    MerkleTree(store).append_many(LEAVES[:4])
    assert store.get(1, 0) == node_hash(leaf_hash(LEAVES[0]), leaf_hash(LEAVES[1]))
    assert store.get(2, 0) == root(LEAVES[:4])
    assert len(store) == 4 + 2 + 1


def test_out_of_range_requests_are_refused(full_tree: MerkleTree) -> None:
    n = full_tree.size
    with pytest.raises(ValueError, match="out of range"):
        full_tree.root(n + 1)
    with pytest.raises(ValueError, match="out of range"):
        full_tree.root(-1)
    with pytest.raises(ValueError, match="out of range"):
        full_tree.inclusion_proof(n)
    with pytest.raises(ValueError, match="out of range"):
        full_tree.inclusion_proof(5, 5)
    with pytest.raises(ValueError, match="out of range"):
        full_tree.inclusion_proof(-1)
    with pytest.raises(ValueError, match="out of range"):
        full_tree.inclusion_proof(0, n + 1)
    with pytest.raises(ValueError, match="old_size"):
        full_tree.consistency_proof(6, 5)
    with pytest.raises(ValueError, match="old_size"):
        full_tree.consistency_proof(-1)
    with pytest.raises(ValueError, match="out of range"):
        full_tree.consistency_proof(1, n + 1)
    with pytest.raises(ValueError, match="negative"):
        MerkleTree(MemoryNodeStore(), size=-1)
    with pytest.raises(ValueError, match="out of range"):
        MerkleTree(MemoryNodeStore()).inclusion_proof(0)


def test_empty_and_single_leaf_trees() -> None:
    tree = MerkleTree(MemoryNodeStore())
    assert tree.consistency_proof(0) == []
    assert tree.root(0) == EMPTY_ROOT
    tree.append(b"first")
    assert tree.root() == leaf_hash(b"first")
    assert tree.inclusion_proof(0) == []
    assert tree.consistency_proof(0) == []
    assert tree.consistency_proof(1) == []
    assert tree.consistency_proof(0, 0) == []


def test_a_tree_reopened_at_one_leaf_reads_that_leaf() -> None:
    """Only the empty tree may start from an empty frontier without reading the store."""
    store = CountingStore()
    MerkleTree(store).append(LEAVES[0])
    store.reads = 0
    assert MerkleTree(store, size=1).root() == leaf_hash(LEAVES[0])
    assert store.reads == 1


def test_a_given_frontier_is_used_without_reading_the_store() -> None:
    """A frontier handed over (the flow log keeps it) replaces the read-back from the store."""
    grown = MerkleTree(MemoryNodeStore())
    grown.append_many(LEAVES[:13])
    store = CountingStore()  # empty: whatever the tree needs must come from the frontier
    tree = MerkleTree(store, 13, frontier=grown.frontier)
    assert tree.frontier == grown.frontier
    assert tree.root() == root(LEAVES[:13])
    tree.append(LEAVES[13])
    assert tree.root() == root(LEAVES[:14])
    assert store.reads == 0


@pytest.mark.parametrize("flaw", ["a-piece-missing", "another-size", "a-short-hash"])
def test_a_frontier_of_another_tree_is_refused(flaw: str) -> None:
    grown = MerkleTree(MemoryNodeStore())
    grown.append_many(LEAVES[:13])  # 13 = 8 + 4 + 1: three pieces
    frontier, size = list(grown.frontier), 13
    if flaw == "a-piece-missing":
        frontier = frontier[:-1]
    elif flaw == "another-size":
        size = 12
    else:
        last = frontier[-1]
        frontier[-1] = Node(last.level, last.index, last.hash[:31])
    expected = f"the frontier given is not that of a tree of size {size}"
    with pytest.raises(ValueError, match=expected):
        MerkleTree(MemoryNodeStore(), size, frontier=frontier)


def test_a_bulk_store_gets_a_batch_in_one_write() -> None:
    class BulkStore(MemoryNodeStore):
        def __init__(self) -> None:
            super().__init__()
            self.batches: list[list[Node]] = []

        def put(self, level: int, index: int, digest: bytes) -> None:
            raise AssertionError("a bulk store is written with put_many only")

        def put_many(self, nodes: Sequence[Node]) -> None:
            self.batches.append(list(nodes))
            for node in nodes:
                MemoryNodeStore.put(self, node.level, node.index, node.hash)

    store = BulkStore()
    tree = MerkleTree(store)
    tree.append_many(LEAVES[:5])
    assert [len(batch) for batch in store.batches] == [5 + 2 + 1]  # leaves, pairs, the four
    assert tree.root() == root(LEAVES[:5])
    assert MerkleTree(store, size=5).root() == root(LEAVES[:5])


def test_a_missing_node_names_itself() -> None:
    assert str(MissingNode(3, 7)) == "Merkle node (level=3, index=7) is missing from the store"

"""The flow log's Merkle nodes in SQL (ledger.store.nodes.SqlNodeStore).

A tree over ``SqlNodeStore`` must answer exactly what the pure functions of
``ledger.merkle.proofs`` compute from the leaf list, and what the same tree over
``MemoryNodeStore`` answers, on SQLite and PostgreSQL, with every append in its own
transaction under the log lock -- the way the broker appends.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlmodel import func, select

from ledger.merkle.proofs import consistency_proof, inclusion_proof, root, verify_inclusion
from ledger.merkle.tree import BatchNodeStore, MemoryNodeStore, MerkleTree
from ledger.store.db import Database, locked_log_size, set_log_size
from ledger.store.errors import NodeConflict
from ledger.store.models import TreeNode
from ledger.store.nodes import BATCH_SIZE, SqlNodeStore
from tests.support.pg import fresh_schema

SIZE = 40
LEAVES = [f"signed action {i}".encode() for i in range(SIZE)]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def filled(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """A log of SIZE leaves, appended one transaction each; shared by read-only tests."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('nodes') / 'broker.db'}"
    else:
        url = fresh_schema(request.getfixturevalue("pg_url"))
    database = Database(url)
    database.upgrade()
    for i, leaf in enumerate(LEAVES):
        assert append(database, leaf) == i
    yield database
    database.dispose()


def append(db: Database, leaf: bytes) -> int:
    """One append as the broker does it: lock the log, open the tree at its size, commit."""
    with db.transaction() as session:
        tree = MerkleTree(SqlNodeStore(session), size=locked_log_size(session))
        index = tree.append(leaf)
        set_log_size(session, tree.size)
    return index


def test_sql_store_is_a_batch_node_store(db: Database) -> None:
    with db.session() as session:
        assert isinstance(SqlNodeStore(session), BatchNodeStore)


def test_roots_and_proofs_match_the_pure_functions_for_every_size(filled: Database) -> None:
    with filled.session() as session:
        tree = MerkleTree(SqlNodeStore(session), size=SIZE)
        for size in range(SIZE + 1):
            assert tree.root(size) == root(LEAVES[:size]), size
            for index in range(size):
                proof = tree.inclusion_proof(index, size)
                assert proof == inclusion_proof(index, LEAVES[:size]), (index, size)
                assert verify_inclusion(LEAVES[index], index, size, proof, root(LEAVES[:size]))
            for old in range(size + 1):
                assert tree.consistency_proof(old, size) == consistency_proof(old, LEAVES[:size]), (
                    old,
                    size,
                )


def test_stored_nodes_are_those_of_the_memory_store(filled: Database) -> None:
    memory = MemoryNodeStore()
    MerkleTree(memory).append_many(LEAVES)

    with filled.session() as session:
        rows = session.exec(select(TreeNode.level, TreeNode.idx, TreeNode.hash)).all()
        keys = [(level, index) for level, index, _ in rows]
        batch = SqlNodeStore(session).get_many(keys)

    assert len(rows) == len(memory)
    assert {(level, index): digest for level, index, digest in rows} == memory.get_many(keys)
    assert batch == memory.get_many(keys)


def append_then_fail(db: Database, leaf: bytes) -> None:
    with db.transaction() as session:
        tree = MerkleTree(SqlNodeStore(session), size=locked_log_size(session))
        tree.append(leaf)
        set_log_size(session, tree.size)
        session.flush()
        raise RuntimeError("chain down")


def test_a_rolled_back_append_leaves_no_node_and_the_log_continues(db: Database) -> None:
    leaves = LEAVES[:5]
    for leaf in leaves:
        append(db, leaf)

    with pytest.raises(RuntimeError, match="chain down"):
        append_then_fail(db, b"never committed")

    with db.session() as session:
        count = session.exec(select(func.count()).select_from(TreeNode)).one()
    # n leaves plus one parent per completed pair: n + (n - popcount(n)) nodes.
    assert count == 2 * len(leaves) - len(leaves).bit_count()
    assert append(db, b"next") == len(leaves)
    with db.session() as session:
        tree = MerkleTree(SqlNodeStore(session), len(leaves) + 1)
        assert tree.root() == root([*leaves, b"next"])


def test_missing_nodes_are_none_or_left_out(filled: Database) -> None:
    with filled.session() as session:
        store = SqlNodeStore(session)
        assert store.get(0, SIZE) is None
        assert store.get(0, 3) is not None
        assert store.get_many([(0, 3), (9, 0), (0, SIZE)]).keys() == {(0, 3)}


def test_get_many_splits_large_batches(filled: Database) -> None:
    keys = [(0, i) for i in range(BATCH_SIZE + SIZE)]

    with filled.session() as session:
        found = SqlNodeStore(session).get_many(keys)

    assert sorted(found) == [(0, i) for i in range(SIZE)]


def test_rewriting_a_node_with_another_hash_is_refused_without_aborting(db: Database) -> None:
    with db.transaction() as session:
        store = SqlNodeStore(session)
        store.put(0, 0, b"\x01" * 32)
        store.put(0, 0, b"\x01" * 32)  # the same hash again is harmless
        with pytest.raises(NodeConflict) as info:
            store.put(0, 0, b"\x02" * 32)
        # The transaction is still usable (no aborted PostgreSQL transaction).
        store.put(0, 1, b"\x03" * 32)

    assert info.value.code == "merkle_node_conflict"
    with db.session() as session:
        assert SqlNodeStore(session).get_many([(0, 0), (0, 1)]) == {
            (0, 0): b"\x01" * 32,
            (0, 1): b"\x03" * 32,
        }

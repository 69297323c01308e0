"""RFC 6962 Merkle hashing, inclusion and consistency proofs (ledger.merkle.proofs).

Known answers are the published RFC 6962 test vectors of certificate-transparency's
``merkle_tree_test`` and transparency-dev/merkle's ``proof/verify_test.go`` (eight leaves, the
roots of sizes 1..8, and their inclusion and consistency proofs). Everything else is checked
against a small recursive reference written straight from the RFC text below.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.merkle.proofs import (
    EMPTY_ROOT,
    consistency_proof,
    consistency_proof_from_hashes,
    inclusion_proof,
    inclusion_proof_from_hashes,
    leaf_hash,
    root,
    root_from_inclusion_proof,
    root_from_leaf_hashes,
    verify_consistency,
    verify_inclusion,
    verify_inclusion_hash,
)

# --------------------------------------------------------------------------------------------
# Published vectors
# --------------------------------------------------------------------------------------------

LEAVES = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
]

# Root of the tree over LEAVES[:n] for n = 1..8.
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]

EMPTY_TREE_HASH = bytes.fromhex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


def _h(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(x) for x in hexes]


# (zero-based leaf index, tree size, proof). The published tables number leaves from 1.
INCLUSION_VECTORS = [
    (0, 1, []),
    (
        0,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        5,
        8,
        _h(
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (2, 3, _h("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125")),
    (
        1,
        5,
        _h(
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
]

# (old size, new size, proof).
CONSISTENCY_VECTORS = [
    (1, 1, []),
    (
        1,
        8,
        _h(
            "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ),
    ),
    (
        6,
        8,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
    (
        2,
        5,
        _h(
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ),
    ),
    (
        6,
        7,
        _h(
            "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ),
    ),
]

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")

# --------------------------------------------------------------------------------------------
# Independent reference: RFC 6962 section 2.1 transcribed literally, recursion and all.
# --------------------------------------------------------------------------------------------


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def ref_mth(d: list[bytes]) -> bytes:
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return hashlib.sha256(b"\x00" + d[0]).digest()
    k = _k(len(d))
    return hashlib.sha256(b"\x01" + ref_mth(d[:k]) + ref_mth(d[k:])).digest()


def ref_path(m: int, d: list[bytes]) -> list[bytes]:
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*ref_path(m, d[:k]), ref_mth(d[k:])]
    return [*ref_path(m - k, d[k:]), ref_mth(d[:k])]


def ref_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    n = len(d)
    if m == n:
        return [] if b else [ref_mth(d)]
    k = _k(n)
    if m <= k:
        return [*ref_subproof(m, d[:k], b), ref_mth(d[k:])]
    return [*ref_subproof(m - k, d[k:], False), ref_mth(d[:k])]


def ref_proof(m: int, d: list[bytes]) -> list[bytes]:
    if m in (0, len(d)):
        return []
    return ref_subproof(m, d, True)


def distinct_leaves(n: int) -> list[bytes]:
    return [f"record {i}".encode() for i in range(n)]


# --------------------------------------------------------------------------------------------
# Known answers
# --------------------------------------------------------------------------------------------


def test_empty_tree_hashes_to_sha256_of_nothing() -> None:
    assert root([]) == EMPTY_TREE_HASH == EMPTY_ROOT
    assert root_from_leaf_hashes([]) == EMPTY_TREE_HASH


@pytest.mark.parametrize("size", range(1, 9))
def test_roots_match_published_vectors(size: int) -> None:
    assert root(LEAVES[:size]) == ROOTS[size - 1]
    assert ref_mth(LEAVES[:size]) == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_inclusion_proofs_match_published_vectors(
    index: int, size: int, proof: list[bytes]
) -> None:
    assert inclusion_proof(index, LEAVES[:size]) == proof
    assert verify_inclusion(LEAVES[index], index, size, proof, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_consistency_proofs_match_published_vectors(old: int, new: int, proof: list[bytes]) -> None:
    assert consistency_proof(old, LEAVES[:new]) == proof
    assert verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)


def _inclusion_probes(
    index: int, size: int, proof: list[bytes], root_: bytes, hashed: bytes
) -> list[tuple[str, int, int, bytes, list[bytes], bytes]]:
    """The corruptions transparency-dev/merkle applies to each published inclusion proof."""
    probes = [
        ("index - 1", index - 1, size, hashed, proof, root_),
        ("index + 1", index + 1, size, hashed, proof, root_),
        ("index ^ 2", index ^ 2, size, hashed, proof, root_),
        ("size * 2", index, size * 2, hashed, proof, root_),
        ("size // 2", index, size // 2, hashed, proof, root_),
        ("wrong leaf", index, size, leaf_hash(b"WrongLeaf"), proof, root_),
        ("empty root", index, size, hashed, proof, EMPTY_TREE_HASH),
        ("random root", index, size, hashed, proof, SOME_HASH),
        ("trailing garbage", index, size, hashed, [*proof, b""], root_),
        ("trailing root", index, size, hashed, [*proof, root_], root_),
        ("preceding garbage", index, size, hashed, [b"", *proof], root_),
        ("preceding root", index, size, hashed, [root_, *proof], root_),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 8]) + wrong[i][1:]
        probes.append((f"proof[{i}] bit 3", index, size, hashed, wrong, root_))
    if proof:
        probes.append(("removed component", index, size, hashed, proof[:-1], root_))
    if len(proof) > 1:
        inserted = [proof[0], SOME_HASH, *proof[1:]]
        probes.append(("inserted component", index, size, hashed, inserted, root_))
    return probes


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_corrupted_published_inclusion_proofs_fail(
    index: int, size: int, proof: list[bytes]
) -> None:
    hashed = leaf_hash(LEAVES[index])
    accepted = [
        desc
        for desc, i, s, h, p, r in _inclusion_probes(index, size, proof, ROOTS[size - 1], hashed)
        if verify_inclusion_hash(h, i, s, p, r)
    ]
    assert accepted == []


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS[1:])
def test_corrupted_published_consistency_proofs_fail(
    old: int, new: int, proof: list[bytes]
) -> None:
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    probes = [
        ("old - 1", old - 1, new, r1, r2, proof),
        ("old + 1", old + 1, new, r1, r2, proof),
        ("old ^ 2", old ^ 2, new, r1, r2, proof),
        ("new * 2", old, new * 2, r1, r2, proof),
        ("new // 2", old, new // 2, r1, r2, proof),
        ("wrong old root", old, new, b"WrongRoot", r2, proof),
        ("wrong new root", old, new, r1, b"WrongRoot", proof),
        ("swapped roots", old, new, r2, r1, proof),
        ("empty proof", old, new, r1, r2, []),
        ("trailing garbage", old, new, r1, r2, [*proof, b""]),
        ("trailing old root", old, new, r1, r2, [*proof, r1]),
        ("trailing new root", old, new, r1, r2, [*proof, r2]),
        ("preceding garbage", old, new, r1, r2, [b"", *proof]),
        ("preceding old root", old, new, r1, r2, [r1, *proof]),
        ("preceding new root", old, new, r1, r2, [r2, *proof]),
        ("preceding proof[0]", old, new, r1, r2, [proof[0], *proof]),
        ("truncated", old, new, r1, r2, proof[:-1]),
    ]
    for i in range(len(proof)):
        wrong = list(proof)
        wrong[i] = bytes([wrong[i][0] ^ 16]) + wrong[i][1:]
        probes.append((f"proof[{i}] bit 4", old, new, r1, r2, wrong))
    accepted = [d for d, o, n, a, b, p in probes if verify_consistency(o, n, a, b, p)]
    assert accepted == []


# --------------------------------------------------------------------------------------------
# Agreement with the reference, exhaustively for small trees
# --------------------------------------------------------------------------------------------

SMALL = distinct_leaves(40)


def test_roots_and_proofs_agree_with_the_rfc_reference_up_to_40_leaves() -> None:
    for size in range(41):
        leaves = SMALL[:size]
        assert root(leaves) == ref_mth(leaves)
        for index in range(size):
            assert inclusion_proof(index, leaves) == ref_path(index, leaves)
        for old in range(size + 1):
            assert consistency_proof(old, leaves) == ref_proof(old, leaves)


def test_hash_variants_agree_with_the_raw_leaf_builders() -> None:
    hashes = [leaf_hash(leaf) for leaf in SMALL[:13]]
    for index in range(13):
        assert inclusion_proof_from_hashes(index, hashes) == inclusion_proof(index, SMALL[:13])
        assert root_from_inclusion_proof(
            hashes[index], index, 13, inclusion_proof(index, SMALL[:13])
        ) == root(SMALL[:13])
    for old in range(14):
        assert consistency_proof_from_hashes(old, hashes) == consistency_proof(old, SMALL[:13])


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@st.composite
def sized_index(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(min_value=1, max_value=40))
    return size, draw(st.integers(min_value=0, max_value=size - 1))


@st.composite
def size_pair(draw: st.DrawFn) -> tuple[int, int]:
    new = draw(st.integers(min_value=0, max_value=40))
    return draw(st.integers(min_value=0, max_value=new)), new


def _flip(proof: list[bytes], element: int, bit: int) -> list[bytes]:
    element %= len(proof)
    altered = bytearray(proof[element])
    altered[bit // 8] ^= 1 << (bit % 8)
    return [*proof[:element], bytes(altered), *proof[element + 1 :]]


def test_every_inclusion_proof_verifies_up_to_40_leaves() -> None:
    for size in range(1, 41):
        leaves = SMALL[:size]
        tree_root = root(leaves)
        for index in range(size):
            assert verify_inclusion(
                leaves[index], index, size, inclusion_proof(index, leaves), tree_root
            )


@settings(max_examples=300, deadline=None)
@given(sized_index(), st.data())
def test_altered_inclusion_proof_element_fails(where: tuple[int, int], data: st.DataObject) -> None:
    size, index = where
    leaves = SMALL[:size]
    proof = inclusion_proof(index, leaves)
    if not proof:
        return
    element = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=255))
    assert not verify_inclusion(
        leaves[index], index, size, _flip(proof, element, bit), root(leaves)
    )


@settings(max_examples=300, deadline=None)
@given(sized_index(), st.data())
def test_inclusion_proof_for_another_index_fails(
    where: tuple[int, int], data: st.DataObject
) -> None:
    size, index = where
    if size == 1:
        return
    other = data.draw(st.integers(min_value=0, max_value=size - 1).filter(lambda i: i != index))
    leaves = SMALL[:size]
    proof = inclusion_proof(index, leaves)
    assert not verify_inclusion(leaves[index], other, size, proof, root(leaves))
    assert not verify_inclusion(leaves[other], index, size, proof, root(leaves))


@settings(max_examples=200, deadline=None)
@given(sized_index(), st.binary(min_size=32, max_size=32))
def test_inclusion_proof_against_a_wrong_root_fails(where: tuple[int, int], wrong: bytes) -> None:
    size, index = where
    leaves = SMALL[:size]
    if wrong == root(leaves):
        return
    assert not verify_inclusion(leaves[index], index, size, inclusion_proof(index, leaves), wrong)


@settings(max_examples=200, deadline=None)
@given(sized_index())
def test_truncated_or_extended_inclusion_proof_fails(where: tuple[int, int]) -> None:
    size, index = where
    leaves = SMALL[:size]
    proof, tree_root = inclusion_proof(index, leaves), root(leaves)
    assert not verify_inclusion(leaves[index], index, size, [*proof, SOME_HASH], tree_root)
    if proof:
        assert not verify_inclusion(leaves[index], index, size, proof[:-1], tree_root)
        assert not verify_inclusion(leaves[index], index, size, proof[1:], tree_root)


def test_every_consistency_proof_verifies_up_to_40_leaves() -> None:
    roots = [root(SMALL[:n]) for n in range(41)]
    for new in range(41):
        for old in range(new + 1):
            proof = consistency_proof(old, SMALL[:new])
            assert verify_consistency(old, new, roots[old], roots[new], proof), (old, new)


@settings(max_examples=300, deadline=None)
@given(size_pair(), st.data())
def test_altered_consistency_proof_fails(sizes: tuple[int, int], data: st.DataObject) -> None:
    old, new = sizes
    proof = consistency_proof(old, SMALL[:new])
    r1, r2 = root(SMALL[:old]), root(SMALL[:new])
    if proof:
        element = data.draw(st.integers(min_value=0, max_value=len(proof) - 1))
        bit = data.draw(st.integers(min_value=0, max_value=255))
        assert not verify_consistency(old, new, r1, r2, _flip(proof, element, bit))
        assert not verify_consistency(old, new, r1, r2, proof[:-1])
    assert not verify_consistency(old, new, r1, r2, [*proof, SOME_HASH])
    wrong = data.draw(st.binary(min_size=32, max_size=32))
    if wrong != r1:
        assert not verify_consistency(old, new, wrong, r2, proof)
    if wrong != r2 and old > 0:  # the empty tree is a prefix of every tree, whatever its root
        assert not verify_consistency(old, new, r1, wrong, proof)


@settings(max_examples=200, deadline=None)
@given(size_pair())
def test_consistency_with_a_different_history_fails(sizes: tuple[int, int]) -> None:
    old, new = sizes
    if old == 0:
        return
    rewritten = [b"rewritten", *SMALL[1:new]]
    proof = consistency_proof(old, rewritten)
    assert not verify_consistency(old, new, root(SMALL[:old]), root(rewritten), proof)


# --------------------------------------------------------------------------------------------
# Edge cases
# --------------------------------------------------------------------------------------------


def test_single_leaf_tree_has_an_empty_proof_and_the_leaf_hash_as_root() -> None:
    assert inclusion_proof(0, [b"only"]) == []
    assert root([b"only"]) == leaf_hash(b"only")
    assert verify_inclusion(b"only", 0, 1, [], leaf_hash(b"only"))
    assert not verify_inclusion(b"other", 0, 1, [], leaf_hash(b"only"))
    assert not verify_inclusion(b"only", 0, 1, [], b"")


def test_nothing_is_included_in_the_empty_tree() -> None:
    with pytest.raises(ValueError, match="out of range"):
        inclusion_proof(0, [])
    assert not verify_inclusion(b"", 0, 0, [], EMPTY_ROOT)


def test_equal_sizes_are_consistent_only_with_equal_roots_and_no_proof() -> None:
    r = root(SMALL[:5])
    assert consistency_proof(5, SMALL[:5]) == []
    assert verify_consistency(5, 5, r, r, [])
    assert not verify_consistency(5, 5, r, root(SMALL[:4]), [])
    assert not verify_consistency(5, 5, r, r, [r])
    assert verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, [])
    assert not verify_consistency(0, 0, SOME_HASH, SOME_HASH, [])


def test_the_empty_tree_is_consistent_with_every_tree() -> None:
    for new in range(6):
        assert consistency_proof(0, SMALL[:new]) == []
        assert verify_consistency(0, new, EMPTY_ROOT, root(SMALL[:new]), [])
    assert not verify_consistency(0, 3, EMPTY_ROOT, root(SMALL[:3]), [EMPTY_ROOT])
    assert not verify_consistency(0, 3, SOME_HASH, root(SMALL[:3]), [])


def test_a_tree_cannot_shrink() -> None:
    r2, r1 = root(SMALL[:2]), root(SMALL[:1])
    assert not verify_consistency(2, 1, r2, r1, consistency_proof(1, SMALL[:2]))
    assert not verify_consistency(1, 0, r1, EMPTY_ROOT, [])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: inclusion_proof(-1, SMALL[:3]), "out of range"),
        (lambda: inclusion_proof(3, SMALL[:3]), "out of range"),
        (lambda: inclusion_proof_from_hashes(5, [SOME_HASH] * 5), "out of range"),
        (lambda: consistency_proof(-1, SMALL[:3]), "old_size"),
        (lambda: consistency_proof(4, SMALL[:3]), "old_size"),
        (lambda: consistency_proof_from_hashes(4, [SOME_HASH] * 3), "old_size"),
    ],
)
def test_builders_refuse_out_of_range_arguments(call: Callable[[], Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()


GOOD_PROOF = inclusion_proof(2, SMALL[:5])
GOOD_ROOT = root(SMALL[:5])
MALFORMED_INCLUSION: list[tuple[str, Any, Any, Any, Any, Any]] = [
    ("negative index", SMALL[2], -1, 5, GOOD_PROOF, GOOD_ROOT),
    ("index == size", SMALL[2], 5, 5, GOOD_PROOF, GOOD_ROOT),
    ("negative size", SMALL[2], 2, -5, GOOD_PROOF, GOOD_ROOT),
    ("float index", SMALL[2], 2.0, 5, GOOD_PROOF, GOOD_ROOT),
    ("string size", SMALL[2], 2, "5", GOOD_PROOF, GOOD_ROOT),
    ("huge size", SMALL[2], 2, 2**200, GOOD_PROOF, GOOD_ROOT),
    ("proof is None", SMALL[2], 2, 5, None, GOOD_ROOT),
    ("proof is bytes", SMALL[2], 2, 5, b"".join(GOOD_PROOF), GOOD_ROOT),
    ("proof holds str", SMALL[2], 2, 5, [p.hex() for p in GOOD_PROOF], GOOD_ROOT),
    ("proof holds None", SMALL[2], 2, 5, [*GOOD_PROOF[:-1], None], GOOD_ROOT),
    ("short element", SMALL[2], 2, 5, [*GOOD_PROOF[:-1], GOOD_PROOF[-1][:31]], GOOD_ROOT),
    ("long element", SMALL[2], 2, 5, [*GOOD_PROOF[:-1], GOOD_PROOF[-1] + b"\0"], GOOD_ROOT),
    ("root is None", SMALL[2], 2, 5, GOOD_PROOF, None),
    ("short root", SMALL[2], 2, 5, GOOD_PROOF, GOOD_ROOT[:16]),
    ("leaf is None", None, 2, 5, GOOD_PROOF, GOOD_ROOT),
    ("leaf is str", "record 2", 2, 5, GOOD_PROOF, GOOD_ROOT),
]


def test_the_malformed_inclusion_fixture_starts_from_a_valid_proof() -> None:
    assert verify_inclusion(SMALL[2], 2, 5, GOOD_PROOF, GOOD_ROOT)


@pytest.mark.parametrize(
    ("leaf", "index", "size", "proof", "root_"),
    [case[1:] for case in MALFORMED_INCLUSION],
    ids=[case[0] for case in MALFORMED_INCLUSION],
)
def test_malformed_inclusion_input_is_rejected_without_raising(
    leaf: Any, index: Any, size: Any, proof: Any, root_: Any
) -> None:
    assert verify_inclusion(leaf, index, size, proof, root_) is False


GOOD_CONSISTENCY = consistency_proof(3, SMALL[:7])
R3, R7 = root(SMALL[:3]), root(SMALL[:7])
MALFORMED_CONSISTENCY: list[tuple[str, Any, Any, Any, Any, Any]] = [
    ("negative old", -3, 7, R3, R7, GOOD_CONSISTENCY),
    ("old > new", 7, 3, R7, R3, GOOD_CONSISTENCY),
    ("float size", 3.0, 7, R3, R7, GOOD_CONSISTENCY),
    ("huge new size", 3, 2**200, R3, R7, GOOD_CONSISTENCY),
    ("proof is None", 3, 7, R3, R7, None),
    ("proof is a str", 3, 7, R3, R7, "00" * 32),
    ("element is None", 3, 7, R3, R7, [None, *GOOD_CONSISTENCY[1:]]),
    ("short element", 3, 7, R3, R7, [GOOD_CONSISTENCY[0][:-1], *GOOD_CONSISTENCY[1:]]),
    ("old root None", 3, 7, None, R7, GOOD_CONSISTENCY),
    ("new root short", 3, 7, R3, R7[:31], GOOD_CONSISTENCY),
    ("equal sizes, None roots", 3, 3, None, None, []),
]


def test_the_malformed_consistency_fixture_starts_from_a_valid_proof() -> None:
    assert verify_consistency(3, 7, R3, R7, GOOD_CONSISTENCY)


@pytest.mark.parametrize(
    ("old", "new", "old_root", "new_root", "proof"),
    [case[1:] for case in MALFORMED_CONSISTENCY],
    ids=[case[0] for case in MALFORMED_CONSISTENCY],
)
def test_malformed_consistency_input_is_rejected_without_raising(
    old: Any, new: Any, old_root: Any, new_root: Any, proof: Any
) -> None:
    assert verify_consistency(old, new, old_root, new_root, proof) is False


@settings(max_examples=300, deadline=None)
@given(
    st.integers(min_value=-3, max_value=2**70),
    st.integers(min_value=-3, max_value=2**70),
    st.lists(st.binary(min_size=0, max_size=40), max_size=80),
    st.binary(min_size=0, max_size=40),
    st.binary(min_size=0, max_size=40),
)
def test_verifiers_never_raise_on_arbitrary_input(
    a: int, b: int, proof: list[bytes], r1: bytes, r2: bytes
) -> None:
    assert verify_inclusion(r1, a, b, proof, r2) in (True, False)
    assert verify_inclusion_hash(r1, a, b, proof, r2) in (True, False)
    assert verify_consistency(a, b, r1, r2, proof) in (True, False)

"""RFC 6962 / RFC 9162 Merkle tree hashing.

Leaves are hashed as ``SHA-256(0x00 || data)`` and interior nodes as
``SHA-256(0x01 || left || right)``, so a leaf can never be passed off as a node. The same
hashing serves the flow log and the content hash of an encrypted dataset (a Merkle root over its
plaintext chunks), so there is exactly one tree definition in the project.

Proofs follow RFC 6962 section 2.1 (``PATH`` and ``SUBPROOF``) and are checked with the
verification algorithms of RFC 9162 sections 2.1.3.2 and 2.1.4.2:

- ``inclusion_proof(index, leaves)`` / ``verify_inclusion(leaf, index, size, proof, root)``
- ``consistency_proof(old_size, leaves)`` /
  ``verify_consistency(old_size, new_size, old_root, new_root, proof)``

Leaves are raw leaf data; the ``*_from_hashes`` and ``*_hash`` variants take leaf hashes.
Builders raise ``ValueError`` for arguments out of range; verifiers never raise and answer
``False`` for anything malformed. ``ledger.merkle.tree.MerkleTree`` serves the same proofs from
stored nodes instead of the full leaf list.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()


def leaf_hash(data: bytes) -> bytes:
    """Hash of one leaf: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Hash of an interior node: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """Largest power of two strictly smaller than ``n`` (RFC 6962 section 2.1), ``n >= 2``."""
    k = 1
    while k << 1 < n:
        k <<= 1
    return k


def root_from_leaf_hashes(hashes: Sequence[bytes]) -> bytes:
    """Merkle tree hash over already-hashed leaves; the empty tree hashes to SHA-256("")."""
    if not hashes:
        return EMPTY_ROOT
    level = list(hashes)
    # Bottom-up pairing gives the same tree as RFC 6962's recursive split: a node without a
    # sibling is promoted unchanged to the next level.
    while len(level) > 1:
        nxt = [node_hash(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


def root(leaves: Sequence[bytes]) -> bytes:
    """Merkle tree hash (MTH) of the raw leaves."""
    return root_from_leaf_hashes([leaf_hash(leaf) for leaf in leaves])


# --------------------------------------------------------------------------------------------
# Proof shapes
#
# Every hash in an RFC 6962 proof is the Merkle tree hash of one subtree ``[start, end)`` of the
# leaves. The two functions below compute *which* subtrees, without hashing anything, so the
# in-memory builders here and the store-backed ``ledger.merkle.tree.MerkleTree`` share one
# definition of the proof layout and differ only in where the subtree hashes come from.
# Every range returned is a subtree of the RFC tree: ``start`` is a multiple of the largest
# power of two not smaller than ``end - start``, so it splits into aligned perfect subtrees.
# --------------------------------------------------------------------------------------------


def inclusion_path_ranges(index: int, size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes make up ``PATH(index, D[size])`` (RFC 6962 section 2.1.1).

    Ordered as in the proof: the sibling nearest the leaf first, the root's child last.
    Requires ``0 <= index < size``.
    """
    if not 0 <= index < size:
        raise ValueError(f"leaf index {index} is out of range for a tree of size {size}")
    ranges: list[tuple[int, int]] = []
    lo, hi = 0, size
    while hi - lo > 1:
        k = _split(hi - lo)
        if index < lo + k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
    ranges.reverse()
    return ranges


def consistency_path_ranges(old_size: int, new_size: int) -> list[tuple[int, int]]:
    """Leaf ranges whose hashes make up ``PROOF(old_size, D[new_size])`` (RFC 6962 2.1.2).

    Empty when ``old_size`` is 0 or equal to ``new_size``. Requires
    ``0 <= old_size <= new_size``.
    """
    if not 0 <= old_size <= new_size:
        raise ValueError(
            f"consistency needs 0 <= old_size <= new_size, got old_size={old_size}, "
            f"new_size={new_size}"
        )
    if old_size in (0, new_size):
        return []
    # Iterative SUBPROOF(m, D[lo:hi], complete): ``lo < old_size <= hi`` holds throughout.
    ranges: list[tuple[int, int]] = []
    lo, hi, complete = 0, new_size, True
    while old_size - lo != hi - lo:
        k = _split(hi - lo)
        if old_size - lo <= k:
            ranges.append((lo + k, hi))
            hi = lo + k
        else:
            ranges.append((lo, lo + k))
            lo += k
            complete = False
    if not complete:
        ranges.append((lo, hi))
    ranges.reverse()
    return ranges


# --------------------------------------------------------------------------------------------
# Proof builders over a full list of leaves
# --------------------------------------------------------------------------------------------


def inclusion_proof_from_hashes(index: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Audit path for leaf ``index`` in the tree over ``leaf_hashes`` (already leaf-hashed).

    Raises ``ValueError`` unless ``0 <= index < len(leaf_hashes)``.
    """
    return [
        root_from_leaf_hashes(leaf_hashes[a:b])
        for a, b in inclusion_path_ranges(index, len(leaf_hashes))
    ]


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> list[bytes]:
    """Audit path ``PATH(index, D[n])`` of RFC 6962 section 2.1.1 for raw leaf data ``leaves``.

    Raises ``ValueError`` unless ``0 <= index < len(leaves)``.
    """
    if not 0 <= index < len(leaves):
        raise ValueError(f"leaf index {index} is out of range for a tree of size {len(leaves)}")
    return inclusion_proof_from_hashes(index, [leaf_hash(leaf) for leaf in leaves])


def consistency_proof_from_hashes(old_size: int, leaf_hashes: Sequence[bytes]) -> list[bytes]:
    """Consistency proof from the first ``old_size`` leaves to all of ``leaf_hashes``.

    Raises ``ValueError`` unless ``0 <= old_size <= len(leaf_hashes)``.
    """
    return [
        root_from_leaf_hashes(leaf_hashes[a:b])
        for a, b in consistency_path_ranges(old_size, len(leaf_hashes))
    ]


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> list[bytes]:
    """Consistency proof ``PROOF(old_size, D[n])`` of RFC 6962 section 2.1.2 (SUBPROOF).

    ``leaves`` is the raw data of the newer tree. The proof is empty when ``old_size`` is 0 or
    equal to ``len(leaves)``. Raises ``ValueError`` unless ``0 <= old_size <= len(leaves)``.
    """
    if not 0 <= old_size <= len(leaves):
        raise ValueError(
            f"consistency needs 0 <= old_size <= {len(leaves)} (the tree size), got {old_size}"
        )
    return consistency_proof_from_hashes(old_size, [leaf_hash(leaf) for leaf in leaves])


# --------------------------------------------------------------------------------------------
# Verification (RFC 9162 sections 2.1.3.2 and 2.1.4.2). Never raises: anything malformed is
# simply not a valid proof.
# --------------------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_hash(value: object) -> bool:
    return isinstance(value, bytes | bytearray) and len(value) == HASH_SIZE


def _hash_list(proof: object) -> list[bytes] | None:
    """``proof`` as a list of 32-byte hashes, or ``None`` if it is not one."""
    if isinstance(proof, str | bytes | bytearray) or not isinstance(proof, Sequence):
        return None
    items = list(proof)
    if not all(_is_hash(item) for item in items):
        return None
    return [bytes(item) for item in items]


def root_from_inclusion_proof(
    hashed_leaf: bytes, index: int, size: int, proof: Sequence[bytes]
) -> bytes | None:
    """The root ``proof`` implies for ``hashed_leaf`` at ``index``, or ``None`` if malformed.

    RFC 9162 section 2.1.3.2 without the final comparison.
    """
    if not (_is_int(index) and _is_int(size) and 0 <= index < size and _is_hash(hashed_leaf)):
        return None
    path = _hash_list(proof)
    if path is None:
        return None
    fn, sn = index, size - 1
    r = bytes(hashed_leaf)
    for p in path:
        if sn == 0:
            return None
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return r if sn == 0 else None


def verify_inclusion_hash(
    hashed_leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows the already-hashed leaf at ``index`` in the tree ``(size, root)``.

    Returns ``False`` (never raises) for a malformed proof, hash or out-of-range index/size.
    """
    computed = root_from_inclusion_proof(hashed_leaf, index, size, proof)
    return computed is not None and _is_hash(root) and computed == bytes(root)


def verify_inclusion(
    leaf: bytes, index: int, size: int, proof: Sequence[bytes], root: bytes
) -> bool:
    """Whether ``proof`` shows raw leaf data ``leaf`` at ``index`` in the tree ``(size, root)``.

    RFC 9162 section 2.1.3.2. Returns ``False`` (never raises) for a malformed proof or root,
    or an index or size out of range.
    """
    if not isinstance(leaf, bytes | bytearray):
        return False
    return verify_inclusion_hash(leaf_hash(bytes(leaf)), index, size, proof, root)


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> bool:
    """Whether ``proof`` shows the tree ``(old_size, old_root)`` is a prefix of the new one.

    RFC 9162 section 2.1.4.2. The trivial cases are handled first and strictly: equal sizes
    need an empty proof and equal roots; an old size of 0 needs an empty proof and the
    empty-tree root ``SHA-256("")`` as ``old_root``. Returns ``False`` (never raises) for a
    malformed proof or root, or sizes out of order.
    """
    if not (_is_int(old_size) and _is_int(new_size) and 0 <= old_size <= new_size):
        return False
    if not (_is_hash(old_root) and _is_hash(new_root)):
        return False
    path = _hash_list(proof)
    if path is None:
        return False
    first, second = bytes(old_root), bytes(new_root)
    if old_size == new_size:
        return not path and first == second and (new_size > 0 or first == EMPTY_ROOT)
    if old_size == 0:
        return not path and first == EMPTY_ROOT
    if not path:
        return False
    if old_size & (old_size - 1) == 0:
        path.insert(0, first)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            return False
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return sn == 0 and fr == first and sr == second

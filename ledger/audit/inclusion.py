"""The SDK's check that what it signed is in the log, and the proofs it keeps.

For every action it signs, the SDK asks the broker for the record, an audit path and the
signed checkpoint, and calls :func:`check_inclusion`: the note must be a valid checkpoint of
the pinned log, the leaf must be in the tree it signs, and (given the signed action) the leaf
must carry exactly that action at that position. Whether the note's signer holds BROKER on
chain is the caller's check (``ChainSource.is_broker``), as in ``verify``.

:class:`ProofKeeper` appends each proof as one JSON line to a ``0600`` file: the member can show
later that the broker signed a head holding its action, whatever the broker says then.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from ledger.audit.records import carries, parse_leaf
from ledger.errors import InvalidSignature, LogError
from ledger.merkle.proofs import HASH_SIZE, leaf_hash, verify_inclusion_hash
from ledger.protocol.actions import SignedAction
from ledger.protocol.checkpoint import SignedCheckpoint, parse_checkpoint
from ledger.protocol.codes import ErrorCode


def check_inclusion(
    note: str | SignedCheckpoint,
    *,
    origin: str,
    seq: int,
    leaf: bytes,
    path: Sequence[bytes],
    signed: SignedAction | None = None,
) -> SignedCheckpoint:
    """Check record ``seq`` (raw ``leaf``) is in the head ``note`` signs; returns the head.

    ``note`` may be a checkpoint already parsed (and so verified): it is not parsed again.

    Raises InvalidSignature (``checkpoint_*``) for a note that does not verify or names
    another log, LogError ``record_not_included`` when the path does not lead from the leaf to
    the signed root, and LogError ``record_mismatch`` (or ``record_malformed``) when ``signed``
    is given and the leaf is not a record of exactly that action at position ``seq``.
    """
    head = note if isinstance(note, SignedCheckpoint) else parse_checkpoint(note, origin=origin)
    if head.origin != origin:
        raise InvalidSignature(
            f"checkpoint of {head.origin!r}, not of {origin!r}",
            code=ErrorCode.CHECKPOINT_WRONG_ORIGIN,
        )
    if not verify_inclusion_hash(leaf_hash(bytes(leaf)), seq, head.size, list(path), head.root):
        raise LogError(
            f"record {seq} is not included in the signed head of size {head.size}",
            code=ErrorCode.RECORD_NOT_INCLUDED,
        )
    if signed is not None:
        try:
            record = parse_leaf(leaf)
        except InvalidSignature as exc:
            raise LogError(exc.message, code=ErrorCode.RECORD_MALFORMED) from None
        if record.seq != seq or not carries(record, signed):
            raise LogError(
                f"record {seq} holds another action than the {signed.action} signed",
                code=ErrorCode.RECORD_MISMATCH,
            )
    return head


@dataclass(frozen=True)
class KeptProof:
    """One proof of inclusion as kept: the record's position and leaf hash, the head, the path."""

    seq: int
    leaf_hash: bytes
    checkpoint: str
    path: tuple[bytes, ...]

    def check(self, *, origin: str) -> SignedCheckpoint:
        """Re-check the proof (same errors as :func:`check_inclusion`)."""
        head = parse_checkpoint(self.checkpoint, origin=origin)
        if not verify_inclusion_hash(self.leaf_hash, self.seq, head.size, self.path, head.root):
            raise LogError(
                f"record {self.seq} is not included in the signed head of size {head.size}",
                code=ErrorCode.RECORD_NOT_INCLUDED,
            )
        return head

    def to_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "leaf_hash": "0x" + self.leaf_hash.hex(),
            "checkpoint": self.checkpoint,
            "path": ["0x" + node.hex() for node in self.path],
        }

    @classmethod
    def from_json(cls, data: object) -> KeptProof:
        """Parse one kept line (LogError ``record_malformed`` if it is not one)."""
        try:
            if not isinstance(data, dict) or set(data) != {
                "seq",
                "leaf_hash",
                "checkpoint",
                "path",
            }:
                raise ValueError("members seq, leaf_hash, checkpoint and path")
            seq, note, path = data["seq"], data["checkpoint"], data["path"]
            if not isinstance(seq, int) or not isinstance(note, str) or not isinstance(path, list):
                raise ValueError("seq is an integer, checkpoint a string, path a list")
            digest = _hash(data["leaf_hash"])
            nodes = tuple(_hash(node) for node in path)
        except ValueError as exc:
            raise LogError(f"not a kept proof: {exc}", code=ErrorCode.RECORD_MALFORMED) from None
        return cls(seq, digest, note, nodes)


def _hash(text: object) -> bytes:
    if not isinstance(text, str) or not text.startswith("0x"):
        raise ValueError("a hash is 0x-hex")
    raw = bytes.fromhex(text[2:])
    if len(raw) != HASH_SIZE:
        raise ValueError(f"a hash is {HASH_SIZE} bytes")
    return raw


class ProofKeeper:
    """Appends proofs of inclusion, one JSON line each, to a ``0600`` file."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def keep(self, *, seq: int, leaf: bytes, checkpoint: str, path: Sequence[bytes]) -> KeptProof:
        """Append the proof for record ``seq`` (its raw ``leaf``) in the head ``checkpoint``."""
        proof = KeptProof(seq, leaf_hash(bytes(leaf)), checkpoint, tuple(bytes(p) for p in path))
        line = (json.dumps(proof.to_json(), separators=(",", ":")) + "\n").encode()
        if not self.path.parent.exists():
            self.path.parent.mkdir(parents=True, mode=0o700)
            self.path.parent.chmod(0o700)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        return proof

    def __iter__(self) -> Iterator[KeptProof]:
        if not self.path.exists():
            return
        with self.path.open("rb") as lines:
            for line in lines:
                if line.strip():
                    yield KeptProof.from_json(json.loads(line))

    def proofs(self) -> list[KeptProof]:
        """Every proof kept, oldest first."""
        return list(self)

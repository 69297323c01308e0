"""Signed checkpoints (ledger.protocol.checkpoint), the SDK's inclusion check and proof keeper."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest
from eth_account import Account
from eth_account.messages import defunct_hash_message, encode_defunct

from ledger.audit.inclusion import ProofKeeper, check_inclusion
from ledger.errors import InvalidSignature, LogError
from ledger.merkle.proofs import EMPTY_ROOT, leaf_hash
from ledger.merkle.tree import MemoryNodeStore, MerkleTree
from ledger.protocol.actions import Domains, new_nonce, sign_action
from ledger.protocol.canonical import canonical
from ledger.protocol.checkpoint import (
    EM_DASH,
    MAX_NOTE_BYTES,
    Checkpoint,
    eip191_digest,
    key_id,
    key_name_for,
    origin_for,
    parse_checkpoint,
    sign_checkpoint,
)
from ledger.protocol.codes import ErrorCode

BROKER = Account.from_key(b"\x07" * 32)
OTHER = Account.from_key(b"\x08" * 32)
FLOW_LOG = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
ORIGIN = origin_for(31337, FLOW_LOG)
ROOT = hashlib.sha256(b"root").digest()


def note(size: int = 5, root: bytes = ROOT, account: object = BROKER) -> str:
    return sign_checkpoint(account, Checkpoint(ORIGIN, size, root))  # type: ignore[arg-type]


def code_of(text: str, *, origin: str | None = ORIGIN) -> str:
    with pytest.raises(InvalidSignature) as caught:
        parse_checkpoint(text, origin=origin)
    return str(caught.value.code)


def resign_body(body: str, account: object = BROKER, name: str | None = None) -> str:
    """A note over an arbitrary body, correctly signed (to test the body's own checks)."""
    name = name or key_name_for(account.address)  # type: ignore[attr-defined]
    sig = bytes(account.sign_message(encode_defunct(text=body)).signature)  # type: ignore[attr-defined]
    blob = base64.b64encode(key_id(name, name.split("+")[1]) + sig).decode()
    return f"{body}\n{EM_DASH} {name} {blob}\n"


# -- the format ---------------------------------------------------------------------------------


def test_round_trip_and_exact_form() -> None:
    text = note()
    lines = text.split("\n")
    assert lines[:3] == [ORIGIN, "5", base64.b64encode(ROOT).decode()]
    assert lines[3] == ""
    assert lines[5] == ""
    assert lines[4].startswith(f"{EM_DASH} drl-broker+{BROKER.address} ")
    signed = parse_checkpoint(text, origin=ORIGIN)
    assert signed.checkpoint == Checkpoint(ORIGIN, 5, ROOT)
    assert signed.signer == BROKER.address
    assert signed.key_name == f"drl-broker+{BROKER.address}"
    assert signed.note == text
    assert (signed.size, signed.root, signed.origin) == (5, ROOT, ORIGIN)


def test_origin_names_chain_and_checksummed_flow_log() -> None:
    assert origin_for(31337, FLOW_LOG.lower()) == f"DataRightsLedger/31337/{FLOW_LOG}"
    with pytest.raises(InvalidSignature):
        origin_for(-1, FLOW_LOG)
    with pytest.raises(InvalidSignature):
        origin_for(1, "0x1234")


def test_signature_is_eip191_personal_sign_of_the_body() -> None:
    cp = Checkpoint(ORIGIN, 0, EMPTY_ROOT)
    blob = base64.b64decode(sign_checkpoint(BROKER, cp).split(" ")[-1])
    assert (
        blob[:4]
        == hashlib.sha256(
            f"drl-broker+{BROKER.address}\n".encode()
            + b"\xffeip191-secp256k1"
            + bytes.fromhex(BROKER.address[2:])
        ).digest()[:4]
    )
    message = encode_defunct(text=cp.body())
    assert Account.recover_message(message, signature=blob[4:]) == BROKER.address
    assert eip191_digest(cp.body()) == bytes(defunct_hash_message(text=cp.body()))


def test_checkpoint_values_are_checked() -> None:
    with pytest.raises(InvalidSignature):
        Checkpoint(ORIGIN, -1, ROOT)
    with pytest.raises(InvalidSignature):
        Checkpoint(ORIGIN, 1, b"short")
    with pytest.raises(InvalidSignature):
        Checkpoint("DataRightsLedger/1/nope", 1, ROOT)


# -- strict parsing -----------------------------------------------------------------------------


def test_wrong_origin() -> None:
    other = sign_checkpoint(BROKER, Checkpoint(origin_for(1, FLOW_LOG), 5, ROOT))
    assert code_of(other) == ErrorCode.CHECKPOINT_WRONG_ORIGIN
    assert parse_checkpoint(other, origin=None).origin == origin_for(1, FLOW_LOG)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t.rstrip("\n"),  # no final newline
        lambda t: t + "\n",  # trailing empty line
        lambda t: t.replace("\n\n", "\n"),  # no empty line
        lambda t: t.replace("\n\n", "\nextension\n\n"),  # an extension line
        lambda t: t.replace("\n", "\r\n"),  # CRLF
        lambda t: t.replace(EM_DASH, "-"),  # not an em dash
        lambda t: t.replace(f"{EM_DASH} ", f"{EM_DASH}  "),  # two spaces
        lambda t: t + f"{EM_DASH} drl-broker+{BROKER.address} AAAA\n",  # two signatures
        lambda t: t.replace("drl-broker+", "broker+"),  # another key name
        lambda t: t.replace(BROKER.address, BROKER.address.lower()),  # not checksummed
        lambda t: t.split(" ")[0] + " " + t.split(" ")[1] + " " + t.split(" ")[2][:-3] + "\n",
    ],
)
def test_malformed_notes(mangle: object) -> None:
    assert code_of(mangle(note())) == ErrorCode.CHECKPOINT_MALFORMED  # type: ignore[operator]


@pytest.mark.parametrize(
    ("size_line", "root_line"),
    [
        ("05", None),  # leading zero
        ("+5", None),
        ("5 ", None),
        ("", None),
        ("99999999999999999999", None),  # beyond 2**63
        ("5", base64.b64encode(ROOT[:31]).decode()),  # 31 bytes
        ("5", base64.b64encode(ROOT).decode().rstrip("=")),  # unpadded
        ("5", base64.urlsafe_b64encode(b"\xff" * 32).decode()),  # URL alphabet
        ("5", base64.b64encode(ROOT).decode()[:-2] + "x="),  # non-zero pad bits
    ],
)
def test_strict_body_lines(size_line: str, root_line: str | None) -> None:
    root_text = root_line if root_line is not None else base64.b64encode(ROOT).decode()
    text = resign_body(f"{ORIGIN}\n{size_line}\n{root_text}\n")
    assert code_of(text) == ErrorCode.CHECKPOINT_MALFORMED


def test_origin_line_must_be_checksummed() -> None:
    text = resign_body(
        f"DataRightsLedger/31337/{FLOW_LOG.lower()}\n5\n{base64.b64encode(ROOT).decode()}\n"
    )
    assert code_of(text, origin=None) == ErrorCode.CHECKPOINT_MALFORMED


def test_oversize_note() -> None:
    text = note()
    assert code_of(text + "x" * (MAX_NOTE_BYTES - len(text.encode()) + 1)) == (
        ErrorCode.CHECKPOINT_MALFORMED
    )


def test_tampered_body_breaks_the_signature() -> None:
    text = note(size=5).replace("\n5\n", "\n6\n", 1)
    assert code_of(text) == ErrorCode.CHECKPOINT_BAD_SIGNATURE


def test_signer_must_be_the_key_names_address() -> None:
    # Signed by OTHER under BROKER's key name (with BROKER's key id): recovers to OTHER.
    body = Checkpoint(ORIGIN, 5, ROOT).body()
    forged = resign_body(body, OTHER, name=key_name_for(BROKER.address))
    assert code_of(forged) == ErrorCode.CHECKPOINT_BAD_SIGNATURE


def test_key_id_must_match_key_name() -> None:
    text = note()
    _name, blob = text.split("\n")[4].split(" ")[1:]
    raw = base64.b64decode(blob)
    wrong = base64.b64encode(b"\x00\x00\x00\x00" + raw[4:]).decode()
    assert code_of(text.replace(blob, wrong)) == ErrorCode.CHECKPOINT_BAD_SIGNATURE


def test_high_s_signature_refused() -> None:
    text = note()
    blob = text.split("\n")[4].split(" ")[2]
    raw = bytearray(base64.b64decode(blob))
    n = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    s = int.from_bytes(raw[36:68], "big")
    raw[36:68] = (n - s).to_bytes(32, "big")
    raw[68] ^= 1  # 27 <-> 28
    flipped = base64.b64encode(bytes(raw)).decode()
    assert code_of(text.replace(blob, flipped)) == ErrorCode.CHECKPOINT_BAD_SIGNATURE


def test_not_text() -> None:
    assert code_of(b"bytes") == ErrorCode.CHECKPOINT_MALFORMED  # type: ignore[arg-type]
    assert code_of("\ud800") == ErrorCode.CHECKPOINT_MALFORMED


# -- the SDK's inclusion check and the proof keeper ---------------------------------------------

DOMAINS = Domains(
    chain_id=31337,
    flow_log=FLOW_LOG,
    member_registry="0x" + "22" * 20,
    data_registry="0x" + "33" * 20,
    access_ledger="0x" + "44" * 20,
    sharing_credits="0x" + "55" * 20,
)


def _log_of(n: int) -> tuple[MerkleTree, list[bytes], list[object]]:
    tree = MerkleTree(MemoryNodeStore())
    leaves, actions = [], []
    for seq in range(n):
        signed = sign_action(
            OTHER,
            "rate",
            {
                "rater": OTHER.address,
                "datasetId": seq + 1,
                "score": 4,
                "comment": "fine",
                "nonce": new_nonce(),
                "deadline": 2_000_000_000,
            },
            DOMAINS,
        )
        leaf = canonical(
            {
                "v": 1,
                "seq": seq,
                "at": "2025-01-01T00:00:00",
                "signed": signed.to_json(),
                "context": {},
            }
        )
        tree.append(leaf)
        leaves.append(leaf)
        actions.append(signed)
    return tree, leaves, actions


def test_check_inclusion() -> None:
    tree, leaves, actions = _log_of(5)
    head = note(5, tree.root())
    path = tree.inclusion_proof(3, 5)
    got = check_inclusion(head, origin=ORIGIN, seq=3, leaf=leaves[3], path=path, signed=actions[3])  # type: ignore[arg-type]
    assert got.size == 5
    with pytest.raises(LogError) as caught:
        check_inclusion(head, origin=ORIGIN, seq=2, leaf=leaves[3], path=path)
    assert caught.value.code == ErrorCode.RECORD_NOT_INCLUDED
    with pytest.raises(LogError) as caught:
        check_inclusion(head, origin=ORIGIN, seq=3, leaf=leaves[3], path=path, signed=actions[2])  # type: ignore[arg-type]
    assert caught.value.code == ErrorCode.RECORD_MISMATCH
    other_head = note(5, hashlib.sha256(b"another history").digest())
    with pytest.raises(LogError) as caught:
        check_inclusion(other_head, origin=ORIGIN, seq=3, leaf=leaves[3], path=path)
    assert caught.value.code == ErrorCode.RECORD_NOT_INCLUDED
    with pytest.raises(InvalidSignature) as sig_error:
        check_inclusion(head, origin=origin_for(1, FLOW_LOG), seq=3, leaf=leaves[3], path=path)
    assert sig_error.value.code == ErrorCode.CHECKPOINT_WRONG_ORIGIN


def test_proof_keeper(tmp_path: Path) -> None:
    tree, leaves, _ = _log_of(4)
    head = note(4, tree.root())
    keeper = ProofKeeper(tmp_path / "member" / "proofs.jsonl")
    for seq in (0, 3):
        keeper.keep(seq=seq, leaf=leaves[seq], checkpoint=head, path=tree.inclusion_proof(seq, 4))
    assert stat.S_IMODE((tmp_path / "member").stat().st_mode) == 0o700
    assert stat.S_IMODE(keeper.path.stat().st_mode) == 0o600
    kept = keeper.proofs()
    assert [p.seq for p in kept] == [0, 3]
    assert kept[1].leaf_hash == leaf_hash(leaves[3])
    for proof in kept:
        assert proof.check(origin=ORIGIN).size == 4
    assert len(keeper.path.read_text().splitlines()) == 2

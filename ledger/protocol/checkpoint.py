"""Signed checkpoints: the broker's signature on a tree head of the flow log.

A checkpoint is a signed note in the style of C2SP ``tlog-checkpoint`` / ``signed-note``. Its
body is three lines, each ending in ``\\n``::

    DataRightsLedger/<chain id>/<FlowLog address, checksummed>     the origin
    <tree size, decimal, no leading zeros>
    <base64 (standard, padded) of the 32-byte RFC 6962 root>

then an empty line and exactly one signature line::

    — drl-broker+<broker address, checksummed> <base64(key id[4] || signature[65])>

(an em dash U+2014 and a space). The key id is ``SHA-256(key name || "\\n" || 0xff ||
"eip191-secp256k1" || address[20])[:4]``; the signature is EIP-191 ``personal_sign`` of the
body by the BROKER key, ``r || s || v`` with ``v`` 27 or 28 and low ``s``. Unlike signed-note
proper, the key name holds a ``+`` (it names the address the signature must recover to).

Parsing is strict (one form per checkpoint, so two notes that differ are two claims): at most
:data:`MAX_NOTE_BYTES`, exactly these lines, canonical base64, canonical decimal, a checksummed
address. :func:`parse_checkpoint` checks the signature recovers to the address in the key name
and, when given, that the origin is the pinned deployment's; whether that address holds the
BROKER role on FlowLog is for the caller to ask the chain. Errors are
:class:`~ledger.errors.InvalidSignature` with codes ``checkpoint_malformed``,
``checkpoint_bad_signature`` and ``checkpoint_wrong_origin``.

A broker that shows two histories therefore hands out two notes signed by its key for sizes
no append-only log can both have: the member keeps them as evidence.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import Final

from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak
from eth_utils.address import to_checksum_address

from ledger.errors import InvalidSignature
from ledger.protocol.codes import ErrorCode
from ledger.protocol.eip712 import recover_address

#: First component of every origin line.
ORIGIN_PREFIX: Final = "DataRightsLedger"
#: Prefix of the broker's key name; the checksummed address follows.
KEY_NAME_PREFIX: Final = "drl-broker+"
#: Signature type identifier hashed into the key id.
SIGNATURE_TYPE: Final = b"\xffeip191-secp256k1"
#: The whole note, in UTF-8 bytes, may not be longer than this.
MAX_NOTE_BYTES: Final = 1024
#: Tree sizes are below this (they fit a signed 64-bit integer, as in SQLite).
MAX_TREE_SIZE: Final = 2**63
ROOT_SIZE: Final = 32
EM_DASH: Final = "\u2014"

_ORIGIN_RE: Final = re.compile(r"DataRightsLedger/(0|[1-9][0-9]{0,19})/(0x[0-9a-fA-F]{40})")
_SIZE_RE: Final = re.compile(r"0|[1-9][0-9]{0,18}")
_ADDRESS_RE: Final = re.compile(r"0x[0-9a-fA-F]{40}")


@dataclass(frozen=True)
class Checkpoint:
    """A tree head of one log: its origin, its size and its RFC 6962 root."""

    origin: str
    size: int
    root: bytes

    def __post_init__(self) -> None:
        _check_origin(self.origin)
        if isinstance(self.size, bool) or not isinstance(self.size, int):
            raise InvalidSignature("a tree size is an integer", code=ErrorCode.CHECKPOINT_MALFORMED)
        if not 0 <= self.size < MAX_TREE_SIZE:
            raise InvalidSignature(
                f"tree size {self.size} is out of range", code=ErrorCode.CHECKPOINT_MALFORMED
            )
        if not isinstance(self.root, bytes) or len(self.root) != ROOT_SIZE:
            raise InvalidSignature(
                f"a root is {ROOT_SIZE} bytes", code=ErrorCode.CHECKPOINT_MALFORMED
            )

    def body(self) -> str:
        """The signed text: origin, size and base64 root, one per line."""
        return f"{self.origin}\n{self.size}\n{base64.b64encode(self.root).decode()}\n"


@dataclass(frozen=True)
class SignedCheckpoint:
    """A checkpoint whose signature verified: the head, who signed it, and the note itself."""

    checkpoint: Checkpoint
    signer: str
    key_name: str
    note: str

    @property
    def origin(self) -> str:
        return self.checkpoint.origin

    @property
    def size(self) -> int:
        return self.checkpoint.size

    @property
    def root(self) -> bytes:
        return self.checkpoint.root


def origin_for(chain_id: int, flow_log: str) -> str:
    """The origin line of a deployment's log: ``DataRightsLedger/<chainId>/<FlowLog>``."""
    if isinstance(chain_id, bool) or not isinstance(chain_id, int) or chain_id < 0:
        raise InvalidSignature(
            f"a chain id is a non-negative integer, not {chain_id!r}",
            code=ErrorCode.CHECKPOINT_MALFORMED,
        )
    return f"{ORIGIN_PREFIX}/{chain_id}/{_checksummed(flow_log)}"


def key_name_for(address: str) -> str:
    """The key name of a broker key: ``drl-broker+<address, checksummed>``."""
    return KEY_NAME_PREFIX + _checksummed(address)


def key_id(key_name: str, address: str) -> bytes:
    """The 4-byte key id of ``key_name`` for the key at ``address``."""
    raw = bytes.fromhex(_checksummed(address)[2:])
    return hashlib.sha256(key_name.encode() + b"\n" + SIGNATURE_TYPE + raw).digest()[:4]


def sign_checkpoint(account: LocalAccount, cp: Checkpoint) -> str:
    """The signed note of ``cp`` under ``account`` (the BROKER key)."""
    body = cp.body()
    name = key_name_for(account.address)
    signature = bytes(account.sign_message(encode_defunct(text=body)).signature)
    blob = base64.b64encode(key_id(name, account.address) + signature).decode()
    return f"{body}\n{EM_DASH} {name} {blob}\n"


def parse_checkpoint(note: str, *, origin: str | None = None) -> SignedCheckpoint:
    """Parse ``note`` strictly and check its signature; ``origin``, when given, must match.

    Raises InvalidSignature: ``checkpoint_malformed`` for anything but the one exact form,
    ``checkpoint_wrong_origin`` for another log's checkpoint, ``checkpoint_bad_signature`` when
    the signature does not recover to the address in the key name.
    """
    if not isinstance(note, str):
        raise _malformed("a checkpoint is text")
    try:
        size_in_bytes = len(note.encode("utf-8"))
    except UnicodeEncodeError:
        raise _malformed("a checkpoint is UTF-8 text") from None
    if size_in_bytes > MAX_NOTE_BYTES:
        raise _malformed(f"a checkpoint is at most {MAX_NOTE_BYTES} bytes, got {size_in_bytes}")
    lines = note.split("\n")
    # origin, size, root, "", signature line, "" (after the final newline)
    if len(lines) != 6 or lines[3] != "" or lines[5] != "":
        raise _malformed("a checkpoint is three body lines, an empty line and one signature line")
    origin_line, size_line, root_line, _, signature_line, _ = lines
    _check_origin(origin_line)
    if origin is not None and origin_line != origin:
        raise InvalidSignature(
            f"the checkpoint is of log {origin_line!r}, not of {origin!r}",
            code=ErrorCode.CHECKPOINT_WRONG_ORIGIN,
        )
    if not _SIZE_RE.fullmatch(size_line):
        raise _malformed("the tree size is decimal digits without leading zeros")
    root = _strict_b64(root_line, "the root")
    if len(root) != ROOT_SIZE:
        raise _malformed(f"the root is {ROOT_SIZE} bytes, got {len(root)}")
    checkpoint = Checkpoint(origin=origin_line, size=int(size_line), root=root)

    parts = signature_line.split(" ")
    if len(parts) != 3 or parts[0] != EM_DASH:
        raise _malformed("the signature line is an em dash, a key name and a signature")
    _, name, blob = parts
    address = name[len(KEY_NAME_PREFIX) :]
    if not name.startswith(KEY_NAME_PREFIX) or not _ADDRESS_RE.fullmatch(address):
        raise _malformed(f"the key name is {KEY_NAME_PREFIX}<address>, not {name!r}")
    if to_checksum_address(address) != address:
        raise _malformed("the key name's address is not checksummed")
    raw = _strict_b64(blob, "the signature")
    if len(raw) != 4 + 65:
        raise _malformed(f"the signature is a 4-byte key id and 65 bytes, got {len(raw)} bytes")
    if raw[:4] != key_id(name, address):
        raise InvalidSignature(
            "the key id does not match the key name", code=ErrorCode.CHECKPOINT_BAD_SIGNATURE
        )
    try:
        signer = recover_address(eip191_digest(checkpoint.body()), raw[4:])
    except InvalidSignature as exc:
        raise InvalidSignature(
            f"the checkpoint's signature is invalid: {exc.message}",
            code=ErrorCode.CHECKPOINT_BAD_SIGNATURE,
        ) from None
    if signer != bytes.fromhex(address[2:]):
        raise InvalidSignature(
            f"the checkpoint is signed by {to_checksum_address(signer)}, not by {address}",
            code=ErrorCode.CHECKPOINT_BAD_SIGNATURE,
        )
    return SignedCheckpoint(checkpoint=checkpoint, signer=address, key_name=name, note=note)


def eip191_digest(text: str) -> bytes:
    """``personal_sign`` hash of ``text``: keccak256 of the EIP-191 version 0x45 message."""
    data = text.encode("utf-8")
    return bytes(keccak(b"\x19Ethereum Signed Message:\n" + str(len(data)).encode() + data))


def _check_origin(origin: str) -> None:
    match = _ORIGIN_RE.fullmatch(origin) if isinstance(origin, str) else None
    if match is None:
        raise _malformed(f"the origin is {ORIGIN_PREFIX}/<chain id>/<FlowLog>, not {origin!r}")
    if to_checksum_address(match.group(2)) != match.group(2):
        raise _malformed("the origin's FlowLog address is not checksummed")


def _checksummed(address: str) -> str:
    if not isinstance(address, str) or not _ADDRESS_RE.fullmatch(address):
        raise _malformed(f"an address is 0x and 40 hex digits, not {address!r}")
    return str(to_checksum_address(address))


def _strict_b64(text: str, what: str) -> bytes:
    """Standard padded base64 in its one canonical form (no whitespace, zero pad bits)."""
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise _malformed(f"{what} is not standard base64") from None
    if base64.b64encode(raw).decode() != text:
        raise _malformed(f"{what} is not in canonical base64")
    return raw


def _malformed(message: str) -> InvalidSignature:
    return InvalidSignature(message, code=ErrorCode.CHECKPOINT_MALFORMED)

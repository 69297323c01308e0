"""Request authentication shared by the broker and the SDK.

Every HTTP request proves the member's key: the client signs (EIP-191 ``personal_sign``) a
string binding the method, path and query, the SHA-256 of the body, a timestamp, a random nonce
and the chain id. The broker recomputes it, recovers the address, refuses stale timestamps and
replayed nonces. For a streamed upload the body hash is the ciphertext digest the owner signed
in its registration, and the blob store checks the bytes against it as they arrive.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import Final

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

SCHEME: Final = "DRL-HTTP-1"
MAX_SKEW_SECONDS: Final = 300
H_ADDRESS: Final = "X-DRL-Address"
H_TIMESTAMP: Final = "X-DRL-Timestamp"
H_NONCE: Final = "X-DRL-Nonce"
H_BODY: Final = "X-DRL-Content-SHA256"
H_SIGNATURE: Final = "X-DRL-Signature"
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()


def request_message(
    *, method: str, target: str, body_sha256: str, timestamp: int, nonce: str, chain_id: int
) -> bytes:
    """The exact bytes a request signature covers."""
    return "\n".join(
        [SCHEME, method.upper(), target, body_sha256.lower(), str(timestamp), nonce, str(chain_id)]
    ).encode()


def sign_request(
    account: LocalAccount,
    *,
    method: str,
    target: str,
    body_sha256: str,
    chain_id: int,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers that authenticate one request."""
    ts = int(time.time()) if timestamp is None else timestamp
    nonce = nonce or secrets.token_hex(16)
    message = request_message(
        method=method,
        target=target,
        body_sha256=body_sha256,
        timestamp=ts,
        nonce=nonce,
        chain_id=chain_id,
    )
    signature = account.sign_message(encode_defunct(primitive=message)).signature
    return {
        H_ADDRESS: account.address,
        H_TIMESTAMP: str(ts),
        H_NONCE: nonce,
        H_BODY: body_sha256,
        H_SIGNATURE: "0x" + bytes(signature).hex(),
    }


def recover_request(message: bytes, signature_hex: str) -> str:
    """Address that signed a request message (ValueError if malformed)."""
    raw = bytes.fromhex(signature_hex[2:] if signature_hex.startswith("0x") else signature_hex)
    return str(Account.recover_message(encode_defunct(primitive=message), signature=raw))

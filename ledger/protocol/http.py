"""HTTP request signing, and every X-DRL-* header name (docs/protocol.md "Request signing").

Every request proves the member's key. The client builds the message

    DRL-HTTP-2 \\n METHOD \\n TARGET \\n BODY_SHA256 \\n TIMESTAMP \\n NONCE \\n CHAIN_ID
    \\n DEPLOYMENT

(``\\n`` = one LF byte, no spaces) where METHOD is upper case, TARGET the request path exactly
as sent (percent-encoding kept) followed by ``?query`` only when there is a query, BODY_SHA256
the SHA-256 of the body as 64 lower-case hex digits without ``0x`` (of the empty string for a
body-less request), TIMESTAMP unix seconds in decimal, NONCE 8-64 characters of ``[A-Za-z0-9_-]``,
CHAIN_ID the deployment's chain id in decimal and DEPLOYMENT its FlowLog contract address (``0x``
and 40 lower-case hex digits: two deployments sharing a chain id never accept each other's
requests); signs it with EIP-191 ``personal_sign`` (``"\\x19Ethereum Signed Message:\\n" + len
+ message``, keccak-256, secp256k1) and sends the five request headers below. For a streamed
upload BODY_SHA256 is the ciphertext digest the owner signed in its registration (the broker
checks the bytes against it as they arrive).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from typing import Final

from coincurve import PrivateKey
from eth_account.signers.local import LocalAccount
from eth_hash.auto import keccak

from ledger.protocol.eip712 import checksum, recover_address

SCHEME: Final = "DRL-HTTP-2"
#: A request's timestamp may differ from the broker's clock by at most this many seconds.
MAX_SKEW_SECONDS: Final = 300
NONCE_PATTERN: Final = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
TIMESTAMP_PATTERN: Final = re.compile(r"^[0-9]{1,12}$")  # ASCII digits only
#: A Content-Length header of more digits is refused before any int() (Python limits those).
MAX_LENGTH_DIGITS: Final = 16
#: The X-DRL-Content-SHA256 header: 64 hex digits. Clients send lower case; the broker also
#: takes upper case, since the signed message lower-cases it (:func:`request_message`).
BODY_SHA256_PATTERN: Final = re.compile(r"^[0-9a-fA-F]{64}$")
EMPTY_SHA256: Final = hashlib.sha256(b"").hexdigest()
#: X-DRL-Signature: ``0x`` and the 65 signature bytes in hex.
SIGNATURE_PATTERN: Final = re.compile(r"0x[0-9a-fA-F]{130}")

# -- request headers (every signed request carries all five) ----------------------------------
H_ADDRESS: Final = "X-DRL-Address"
H_TIMESTAMP: Final = "X-DRL-Timestamp"
H_NONCE: Final = "X-DRL-Nonce"
H_BODY: Final = "X-DRL-Content-SHA256"
H_SIGNATURE: Final = "X-DRL-Signature"
REQUEST_HEADERS: Final = (H_ADDRESS, H_TIMESTAMP, H_NONCE, H_BODY, H_SIGNATURE)

# -- response headers of POST /v1/datasets/{id}/fetch (the body is the ciphertext) ------------
H_WRAPPED_KEY: Final = "X-DRL-Wrapped-Key"  # 0x-hex HPKE envelope of the data key
H_GENERATION: Final = "X-DRL-Generation"  # grant generation (decimal), signed in the receipt
H_CONTENT_HASH: Final = "X-DRL-Content-Hash"  # 0x-hex content hash, as the broker claims it
H_CIPHERTEXT_SHA256: Final = "X-DRL-Ciphertext-SHA256"  # 0x-hex SHA-256 of the body
H_USES_LEFT: Final = "X-DRL-Uses-Left"  # decimal
H_LOG_SEQ: Final = "X-DRL-Log-Seq"  # flow-log sequence number of the Fetch record
H_METADATA: Final = "X-DRL-Metadata"  # JSON {"title": ...}
FETCH_HEADERS: Final = (
    H_WRAPPED_KEY,
    H_GENERATION,
    H_CONTENT_HASH,
    H_CIPHERTEXT_SHA256,
    H_USES_LEFT,
    H_LOG_SEQ,
    H_METADATA,
)


def content_length(value: bytes | str | None) -> int | None:
    """A request's Content-Length: None when absent, ``-1`` unless it is 1-16 ASCII digits."""
    if value is None:
        return None
    raw = value.encode("latin-1", "replace") if isinstance(value, str) else value
    if not (0 < len(raw) <= MAX_LENGTH_DIGITS and raw.isdigit()):
        return -1
    return int(raw)


def parse_timestamp(value: str) -> int | None:
    """X-DRL-Timestamp as an int, or None unless it is 1-12 ASCII digits (never a ValueError)."""
    return int(value) if TIMESTAMP_PATTERN.fullmatch(value) else None


def body_sha256(body: bytes) -> str:
    """BODY_SHA256 of a body: 64 lower-case hex digits, no ``0x``."""
    return hashlib.sha256(body).hexdigest()


def request_target(path: str, query: str) -> str:
    """TARGET: the path as sent, then ``?query`` only when the query is not empty."""
    return path + (f"?{query}" if query else "")


def request_message(
    *,
    method: str,
    target: str,
    body_sha256: str,
    timestamp: int,
    nonce: str,
    chain_id: int,
    deployment: str,
) -> bytes:
    """The exact bytes a request signature covers (``deployment``: the FlowLog address)."""
    fields = [SCHEME, method.upper(), target, body_sha256.lower(), str(timestamp), nonce]
    return "\n".join([*fields, str(chain_id), deployment.lower()]).encode()


def sign_request(
    account: LocalAccount,
    *,
    method: str,
    target: str,
    body_sha256: str,
    chain_id: int,
    deployment: str,
    timestamp: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """The five headers that authenticate one request."""
    ts = int(time.time()) if timestamp is None else timestamp
    nonce = nonce or secrets.token_hex(16)
    message = request_message(
        method=method,
        target=target,
        body_sha256=body_sha256,
        timestamp=ts,
        nonce=nonce,
        chain_id=chain_id,
        deployment=deployment,
    )
    return {
        H_ADDRESS: account.address,
        H_TIMESTAMP: str(ts),
        H_NONCE: nonce,
        H_BODY: body_sha256,
        H_SIGNATURE: "0x" + sign_digest(account.key, eip191_digest(message)).hex(),
    }


def eip191_digest(message: bytes) -> bytes:
    """keccak256 of EIP-191 ``personal_sign``'s envelope around ``message``."""
    return bytes(keccak(b"\x19Ethereum Signed Message:\n%d" % len(message) + message))


def sign_digest(private_key: bytes, digest: bytes) -> bytes:
    """65 bytes ``r || s || v`` (v = 27/28, low s) over a 32-byte digest, with libsecp256k1.

    RFC 6979 nonces, like eth_account's signer: the same key and digest give the same bytes
    (the protocol's vectors hold them), at a fraction of the generic signer's cost.
    """
    signature = PrivateKey(bytes(private_key)).sign_recoverable(digest, hasher=None)
    return signature[:64] + bytes((signature[64] + 27,))


def recover_request(message: bytes, signature_hex: str) -> str:
    """Checksummed address that signed a request message (ValueError if malformed).

    EIP-191 ``personal_sign`` recovered with libsecp256k1 under the same rules as signed
    actions (``v`` 27 or 28, low ``s``): every request pays for this, so no generic decoding.
    """
    if not SIGNATURE_PATTERN.fullmatch(signature_hex):
        raise ValueError("a request signature is 0x and 130 hex digits")
    raw = bytes.fromhex(signature_hex[2:])
    return checksum(recover_address(eip191_digest(message), raw))

"""The authentication dependency: who is calling, proven by a request signature."""

from __future__ import annotations

import threading
from collections import OrderedDict

from fastapi import Request
from fastapi.security import APIKeyHeader

from ledger.errors import Unauthenticated
from ledger.protocol import http as auth
from ledger.protocol.codes import ErrorCode
from ledger.services import policy
from ledger.services.context import Ledger
from ledger.services.policy import Standing

#: Shown in OpenAPI; the other X-DRL-* headers travel with it (see README "Authentication").
signature_scheme = APIKeyHeader(
    name=auth.H_SIGNATURE,
    scheme_name="DRLRequestSignature",
    description=(
        "EIP-191 signature over 'DRL-HTTP-1\\nMETHOD\\nPATH?QUERY\\nBODY_SHA256\\nTIMESTAMP\\n"
        "NONCE\\nCHAIN_ID', sent with X-DRL-Address, X-DRL-Timestamp (unix seconds, +-300 s), "
        "X-DRL-Nonce (random, single use) and X-DRL-Content-SHA256 (hex SHA-256 of the body)."
    ),
    auto_error=False,
)


class _SeenNonces:
    """Request nonces seen within the skew window, per process.

    This guards reads against replay. Every write also carries an EIP-712 signed action whose
    nonce is recorded in the database, so a replayed write fails there even on another replica.
    Keeping request nonces in memory means a refused request writes nothing anywhere.
    """

    def __init__(self, capacity: int = 200_000) -> None:
        self._seen: OrderedDict[tuple[str, str], int] = OrderedDict()
        self._lock = threading.Lock()
        self._capacity = capacity

    def add(self, address: str, nonce: str, now: int) -> bool:
        with self._lock:
            horizon = now - 2 * auth.MAX_SKEW_SECONDS
            while self._seen and (
                next(iter(self._seen.values())) < horizon or len(self._seen) >= self._capacity
            ):
                self._seen.popitem(last=False)
            key = (address, nonce)
            if key in self._seen:
                return False
            self._seen[key] = now
            return True


_SEEN = _SeenNonces()


async def authenticate(request: Request, ledger: Ledger, *, body_sha256: str | None) -> Standing:
    """The caller's standing, once its request signature checks out.

    ``body_sha256=None`` trusts the declared body hash (the blob store checks it instead).
    What the caller may then do is ``ledger.services.policy``'s to say.
    """
    h = request.headers
    address, ts, nonce = h.get(auth.H_ADDRESS), h.get(auth.H_TIMESTAMP), h.get(auth.H_NONCE)
    declared, signature = h.get(auth.H_BODY, ""), h.get(auth.H_SIGNATURE)
    if not (address and ts and nonce and signature):
        raise Unauthenticated("sign the request: X-DRL-Address, -Timestamp, -Nonce, -Signature")
    timestamp = auth.parse_timestamp(ts)
    if timestamp is None or abs(timestamp - ledger.now()) > auth.MAX_SKEW_SECONDS:
        raise Unauthenticated("request timestamp missing or outside the allowed clock skew")
    if not auth.NONCE_PATTERN.match(nonce):
        raise Unauthenticated("request nonce must be 8-64 URL-safe characters")
    if not auth.BODY_SHA256_PATTERN.match(declared):
        raise Unauthenticated("X-DRL-Content-SHA256 must be 64 hex characters")
    if body_sha256 is not None and declared.lower() != body_sha256:
        raise Unauthenticated("body does not match X-DRL-Content-SHA256")
    # The path as sent (percent-encoded), which is what clients sign; the decoded path differs
    # from it whenever a segment holds an escaped character.
    raw_path = request.scope.get("raw_path")
    path = raw_path.decode("latin-1") if raw_path else request.url.path
    message = auth.request_message(
        method=request.method,
        target=auth.request_target(path, request.url.query),
        body_sha256=declared,
        timestamp=timestamp,
        nonce=nonce,
        chain_id=ledger.chain.deployment.chain_id,
    )
    try:
        signer = auth.recover_request(message, signature)
    except Exception:
        raise Unauthenticated("request signature is malformed") from None
    if signer.lower() != address.lower():
        raise Unauthenticated("request signature does not match X-DRL-Address")
    if not _SEEN.add(signer, nonce, ledger.now()):
        raise Unauthenticated("request nonce was already used", code=ErrorCode.REQUEST_REPLAYED)
    return policy.standing_of(ledger, signer)

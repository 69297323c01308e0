"""The authentication dependency: who is calling, proven by a request signature."""

from __future__ import annotations

from typing import Final

from fastapi import Request
from fastapi.security import APIKeyHeader

from api.coalesce import Coalescer
from api.transfers import WriteRate
from ledger.errors import Unauthenticated
from ledger.protocol import http as auth
from ledger.protocol.codes import ErrorCode
from ledger.services.admission import Admission, Claim
from ledger.services.context import Ledger
from ledger.services.policy import Standing

#: Shown in OpenAPI; the other X-DRL-* headers travel with it (see README "Authentication").
signature_scheme = APIKeyHeader(
    name=auth.H_SIGNATURE,
    scheme_name="DRLRequestSignature",
    description=(
        "EIP-191 signature over 'DRL-HTTP-2\\nMETHOD\\nPATH?QUERY\\nBODY_SHA256\\nTIMESTAMP\\n"
        "NONCE\\nCHAIN_ID\\nDEPLOYMENT' (DEPLOYMENT: the FlowLog address, lower case), "
        "sent with X-DRL-Address, X-DRL-Timestamp (unix seconds, +-300 s), "
        "X-DRL-Nonce (random, single use) and X-DRL-Content-SHA256 (hex SHA-256 of the body)."
    ),
    auto_error=False,
)


#: Methods that change nothing; every other signed request counts against the write rate.
_READS: Final = frozenset({"GET", "HEAD"})


def admission_queue(ledger: Ledger) -> Coalescer[Claim, Standing | None]:
    """Concurrent requests are admitted together: one transaction records all their nonces."""
    return Coalescer(Admission(ledger).admit, name="drl-admission")


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
        deployment=ledger.chain.deployment.flow_log,
    )
    try:
        signer = auth.recover_request(message, signature)
    except Exception:
        raise Unauthenticated("request signature is malformed") from None
    if signer.lower() != address.lower():
        raise Unauthenticated("request signature does not match X-DRL-Address")
    admission: Coalescer[Claim, Standing | None] = request.app.state.admission
    standing = await admission.submit(Claim(signer, nonce, timestamp))
    if standing is None:
        raise Unauthenticated("request nonce was already used", code=ErrorCode.REQUEST_REPLAYED)
    if request.method not in _READS and standing.role is not None:
        writes: WriteRate = request.app.state.write_rate
        writes.take(signer)
    return standing

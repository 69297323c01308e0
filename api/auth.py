"""The authentication dependency: who is calling, proven by a request signature."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from fastapi import Request
from fastapi.security import APIKeyHeader

from api.coalesce import Batcher, Coalescer, Inline
from api.transfers import WriteRate
from ledger.errors import LedgerError, Unauthenticated
from ledger.protocol import http as auth
from ledger.protocol.codes import ErrorCode
from ledger.services.admission import REPLAYED, REPLAYED_MESSAGE, Admission, Claim
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


def admission_queues(
    admission: Admission, ledger: Ledger
) -> tuple[Coalescer[Claim, Standing | None], Batcher[Claim, Standing | None]]:
    """Concurrent requests are admitted together: one transaction records all their nonces.

    The second queue only looks callers (and used nonces) up, for writes that use their request
    nonce in the transaction of the write itself (``PendingCaller``). On SQLite that is two
    indexed reads of a local file, which do not wait for writers (WAL): they run at once in the
    event loop, cheaper than a thread's hand-off (``scripts/bench_load.py``: writes at 20
    clients 400 -> 523/s). What could still stall the loop: a pooled connection (the pool
    holds more than the threads that can borrow one at a time: the 40 request threads, the
    batch threads and the loop) or SQLite's rare busy reads (recovering a crashed WAL), both
    bounded by their timeouts. A PostgreSQL server is a network round trip away: there
    concurrent look-ups share one on a thread of their own.
    """
    look_up: Batcher[Claim, Standing | None] = (
        Inline(admission.look_up)
        if ledger.db.dialect == "sqlite"
        else Coalescer(admission.look_up, name="drl-standings")
    )
    return (
        Coalescer(admission.admit, name="drl-admission", turn=ledger.db.writer_turn),
        look_up,
    )


def verified_claim(request: Request, ledger: Ledger, *, body_sha256: str | None) -> Claim:
    """The request's claim (signer, nonce, timestamp), once its signature checks out.

    ``body_sha256=None`` trusts the declared body hash (the blob store checks it instead).
    Nothing is recorded yet: :func:`authenticate` admits the nonce at once, a write of a
    :class:`PendingCaller` in its own transaction.
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
    return Claim(signer, nonce, timestamp)


def replayed() -> Unauthenticated:
    """The answer to a request whose nonce was used before (here or on another replica)."""
    return Unauthenticated(REPLAYED_MESSAGE, code=ErrorCode.REQUEST_REPLAYED)


async def authenticate(
    request: Request, ledger: Ledger, *, body_sha256: str | None, reads_only: bool = False
) -> Standing:
    """The caller's standing, once its request signature checks out and its nonce is used.

    A signed request other than a GET or HEAD spends one of the member's writes, unless its
    route changes nothing (``reads_only``: the chain relay, whose calls a member's verification
    sends by the hundred). What the caller may then do is ``ledger.services.policy``'s to say.
    """
    claim = verified_claim(request, ledger, body_sha256=body_sha256)
    admission: Coalescer[Claim, Standing | None] = request.app.state.admission
    standing = await admission.submit(claim)
    if standing is REPLAYED:
        raise replayed()
    if not reads_only and request.method not in _READS:
        take_write(request, standing)
    return standing


def take_write(request: Request, standing: Standing) -> None:
    """Spend one of a member's signed writes (``rate_limited`` when none is left)."""
    if standing.role is not None:
        writes: WriteRate = request.app.state.write_rate
        writes.take(standing.address)


@dataclass(frozen=True)
class PendingCaller:
    """A caller whose request nonce is used in the transaction of the write it carries.

    The route sends ``claim`` along with the write; if it refuses the write before that, it
    answers with :func:`refusal_of`, which uses the nonce as :func:`authenticate` would have.
    """

    standing: Standing
    claim: Claim


async def authenticate_pending(
    request: Request, ledger: Ledger, *, body_sha256: str
) -> PendingCaller:
    """The caller's standing, its nonce left for the write's own transaction.

    A replay already on record is refused here, before it spends the member's write rate; a
    write over the rate is refused before its body is validated.
    """
    claim = verified_claim(request, ledger, body_sha256=body_sha256)
    look_up: Batcher[Claim, Standing | None] = request.app.state.standings
    standing = await look_up.submit(claim)
    if standing is REPLAYED:
        raise replayed()
    caller = PendingCaller(standing, claim)
    try:
        take_write(request, standing)
    except LedgerError as refusal:
        raise await refusal_of(request, caller, refusal) from None
    return caller


async def refusal_of(request: Request, caller: PendingCaller, refusal: LedgerError) -> LedgerError:
    """The answer to a write refused before its transaction: its nonce is used all the same,
    so a replay is refused as a replay (401, as it would have been first) and a request refused
    this way cannot be replayed into an accepted one."""
    admission: Coalescer[Claim, Standing | None] = request.app.state.admission
    if await admission.submit(caller.claim) is REPLAYED:
        return replayed()
    return refusal

"""The exchange itself: fetch (one on-chain use), delivery receipt, quality rating."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Final

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from ledger.errors import (
    Conflict,
    ContractRevert,
    Forbidden,
    InvalidInput,
    NotFound,
    ReplayedNonce,
)
from ledger.protocol.actions import SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.services import flowlog, policy
from ledger.services.access import current_grant
from ledger.services.context import Ledger, check_signed, consume_nonce, dataset
from ledger.services.requests import owner_suspended
from ledger.store.db import locked_log_size
from ledger.store.models import Dataset, Delivery, Grant, Rating, WrappedKey


@dataclass(frozen=True)
class Fetched:
    """What a grantee receives: the dataset record, its wrapped key and the ciphertext digest."""

    dataset: Dataset
    wrapped_key: bytes
    generation: int
    uses_left: int
    log_seq: int


#: Refusals of a member's signed fetch that the log keeps (docs/protocol.md §11.12): the grant,
#: or the standing of the grantee or the owner, says no. Whatever else refuses a fetch (a bad
#: signature or deadline, a replay, a non-member, an unknown dataset) writes nothing.
LOGGED_REFUSALS: Final = frozenset(
    {
        ErrorCode.NO_GRANT,
        ErrorCode.OWNER_SUSPENDED,
        ErrorCode.MEMBER_SUSPENDED,
        # AccessLedger.recordUse's refusals of a validly signed fetch (contract error codes)
        "access_ledger_no_grant",
        "access_ledger_grant_revoked",
        "access_ledger_grant_expired",
        "access_ledger_uses_exhausted",
        "access_ledger_inactive_member",
    }
)


def fetch(ledger: Ledger, signed: SignedAction) -> Fetched:
    """Check the grant on chain and record one use, atomically; then the ciphertext may flow.

    The use is recorded by ``AccessLedger.recordUse`` with the grantee's own signed Fetch: the
    contract checks that signature, consumes its nonce and refuses a revoked, expired or
    exhausted grant, so concurrent fetches never exceed ``maxUses`` and the broker's key alone
    cannot make up a use.

    A department's or enterprise's validly signed fetch refused for one of
    :data:`LOGGED_REFUSALS` is still logged, with context ``{"refused": code}``, and its nonce
    consumed, so the log shows attempts after a revocation, expiry or suspension and the same
    signed fetch can never be used later; the caller gets the refusal all the same.
    """
    grantee = check_signed(ledger, signed, "fetch")
    dataset_id = int(signed.message["datasetId"])
    with ledger.db.session() as session:
        standing = policy.standing(session, grantee, operator=ledger.operator)
        refusal = standing.writer_refusal()
        if refusal is not None:
            # A member, suspended (the fetch route lets its signed fetch through to here): its
            # attempt is logged like any other standing refusal.
            if standing.role in policy.WRITERS:
                try:
                    owner = dataset(session, dataset_id).owner
                except NotFound:
                    raise refusal from None
                if owner != grantee:
                    raise _logged(ledger, signed, dataset_id, refusal)
            raise refusal
        target = dataset(session, dataset_id)
        if target.owner == grantee:
            raise InvalidInput(
                "owners hold their own key; fetch is for grantees", code=ErrorCode.OWN_DATASET
            )
        if current_grant(session, dataset_id, grantee) is None:
            refusal = Forbidden(
                f"no grant of dataset {dataset_id} to {grantee}", code=ErrorCode.NO_GRANT
            )
            raise _logged(ledger, signed, dataset_id, refusal)
        if not policy.standing(session, target.owner, operator=ledger.operator).active:
            raise _logged(ledger, signed, dataset_id, owner_suspended(dataset_id, target.owner))
    if not ledger.blobs.exists(target.ciphertext_sha256):
        raise NotFound(
            f"ciphertext of dataset {dataset_id} is missing", code=ErrorCode.BLOB_MISSING
        )
    outcome = _use(ledger, signed, dataset_id, grantee)
    if isinstance(outcome, Forbidden):
        raise outcome
    return outcome


def _use(
    ledger: Ledger, signed: SignedAction, dataset_id: int, grantee: str
) -> Fetched | Forbidden:
    """Record the use on chain and log the fetch; a logged refusal commits and is returned."""
    with ledger.db.transaction() as session:
        consume_nonce(session, signed)
        try:
            tx = ledger.chain.record_use(
                dataset_id,
                grantee,
                nonce=int(signed.message["nonce"]),
                deadline=int(signed.message["deadline"]),
                signature=signed.signature,
            )
        except ContractRevert as exc:
            refusal = Forbidden(f"grant not usable: {exc.message}", code=exc.code)
            if exc.code not in LOGGED_REFUSALS:
                raise refusal from None
            flowlog.append(session, signed, dataset_id=dataset_id, context={"refused": exc.code})
            return refusal
        uses = int(tx.event("AccessUsed").args["uses"])
        grant = current_grant(session, dataset_id, grantee)
        assert grant is not None
        key = session.exec(
            select(WrappedKey).where(
                WrappedKey.dataset_id == dataset_id,
                WrappedKey.recipient == grantee,
                WrappedKey.generation == grant.generation,
            )
        ).one()
        seq = flowlog.append(
            session,
            signed,
            dataset_id=dataset_id,
            context={"tx": tx.tx_hash, "generation": grant.generation, "uses": uses},
        )
        _raise_uses(session, grant, uses)
        fetched = Fetched(
            dataset=dataset(session, dataset_id),
            wrapped_key=key.wrapped,
            generation=grant.generation,
            uses_left=grant.max_uses - uses,
            log_seq=seq,
        )
        session.expunge(fetched.dataset)
    return fetched


def _logged(ledger: Ledger, signed: SignedAction, dataset_id: int, refusal: Forbidden) -> Forbidden:
    """Log a refused fetch and consume its nonce; returns ``refusal`` for the caller to raise.

    A fetch whose nonce was already used (this very refusal, sent again) is not logged twice:
    the refusal stands and nothing is written.
    """
    try:
        with ledger.db.transaction() as session:
            consume_nonce(session, signed)
            flowlog.append(
                session,
                signed,
                dataset_id=dataset_id,
                context={"refused": refusal.code},
            )
    except ReplayedNonce:
        pass
    return refusal


def _raise_uses(session: Session, grant: Grant, uses: int) -> None:
    """Move the index's use count up to ``uses`` (the chain's count after some use).

    Concurrent fetches (several threads, or replicas sharing PostgreSQL) commit in an order
    that need not be the chain's: assigning each one's count would let a fetch that reached
    the chain earlier but commits later write a smaller number over a larger one. The count
    only ever moves forward, so a conditional update is exact whatever the commit order.
    """
    session.exec(
        update(Grant).where(col(Grant.id) == grant.id, col(Grant.uses) < uses).values(uses=uses)
    )


def reconcile_uses(ledger: Ledger) -> int:
    """Bring every grant's use count in the index up to the chain's; returns how many moved.

    ``fetch`` records the use on chain inside the database transaction that logs it, but the
    two stores commit separately: a broker killed (or a database failing) between the
    ``recordUse`` transaction and the commit leaves a use on chain that the index, and the
    log, never saw. The chain is authoritative for uses, so the index follows it; the flow log
    gains nothing, because the grantee's signed fetch was never stored (and no ciphertext
    left the broker for it). Run at start-up, before serving.
    """
    with ledger.db.session() as session:
        latest: dict[tuple[int, str], Grant] = {}
        for g in session.exec(select(Grant).order_by(col(Grant.generation))):
            latest[(g.dataset_id, g.grantee)] = g
    behind: list[tuple[Grant, int]] = []
    for g in latest.values():
        on_chain = ledger.chain.grant_of(g.dataset_id, g.grantee)
        if on_chain.generation == g.generation and on_chain.uses > g.uses:
            behind.append((g, on_chain.uses))
    if behind:
        with ledger.db.transaction() as session:
            for g, uses in behind:
                _raise_uses(session, g, uses)
    return len(behind)


def acknowledge(ledger: Ledger, signed: SignedAction) -> Delivery:
    """Record the consumer-signed receipt of one fetch: it decrypted and verified the content.

    One receipt per fetch: the receipt names its fetch by nonce, the chain must hold that fetch
    as a recorded use of this dataset by this consumer (``fetchRecorded``), and the database's
    unique ``(consumer, fetch_nonce)`` refuses a second one, whatever the isolation level or the
    number of replicas. The log lock is taken first, so concurrent receipts queue.
    """
    consumer = check_signed(ledger, signed, "receipt")
    msg = signed.message
    dataset_id = int(msg["datasetId"])
    fetch_nonce = int(msg["fetchNonce"])
    claimed = bytes.fromhex(str(msg["contentHash"])[2:])
    generation = int(msg["grantGeneration"])
    with ledger.db.transaction() as session:
        locked_log_size(session)
        policy.standing(session, consumer, operator=ledger.operator).require_writer()
        target = dataset(session, dataset_id)
        if current_grant(session, dataset_id, consumer) is None:
            raise Forbidden(
                f"no grant of dataset {dataset_id} to {consumer}", code=ErrorCode.NO_GRANT
            )
        if claimed != target.content_hash:
            raise InvalidInput(
                "receipt names a content hash other than the registered one",
                code=ErrorCode.CONTENT_HASH_MISMATCH,
            )
        if (
            session.exec(
                select(Grant.id).where(
                    Grant.dataset_id == dataset_id,
                    Grant.grantee == consumer,
                    Grant.generation == generation,
                )
            ).first()
            is None
        ):
            raise InvalidInput(
                f"no grant generation {generation}", code=ErrorCode.UNKNOWN_GENERATION
            )
        if (
            session.exec(
                select(Delivery.id).where(
                    Delivery.consumer == consumer, Delivery.fetch_nonce == str(fetch_nonce)
                )
            ).first()
            is not None
        ):
            raise Conflict("this fetch already has its receipt", code=ErrorCode.RECEIPT_EXISTS)
        if ledger.chain.fetch_recorded(consumer, fetch_nonce) != dataset_id:
            raise Conflict(
                f"no fetch of dataset {dataset_id} with that nonce is recorded on chain",
                code=ErrorCode.FETCH_NOT_RECORDED,
            )
        consume_nonce(session, signed)
        rid = signed.digest(ledger.domains)
        seq = flowlog.append(
            session, signed, dataset_id=dataset_id, context={"receipt_id": "0x" + rid.hex()}
        )
        row = Delivery(
            receipt_id=rid,
            dataset_id=dataset_id,
            consumer=consumer,
            content_hash=claimed,
            grant_generation=generation,
            fetch_nonce=str(fetch_nonce),
            signed_json=json.dumps(signed.to_json()),
            log_seq=seq,
        )
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            raise Conflict(
                "this fetch already has its receipt", code=ErrorCode.RECEIPT_EXISTS
            ) from None
        session.refresh(row)
        session.expunge(row)
    return row


def rate(ledger: Ledger, signed: SignedAction) -> Rating:
    """Record a signed quality rating from a member that received the dataset."""
    rater = check_signed(ledger, signed, "rate")
    msg = signed.message
    dataset_id, score = int(msg["datasetId"]), int(msg["score"])
    comment = str(msg["comment"])
    with ledger.db.transaction() as session:
        policy.standing(session, rater, operator=ledger.operator).require_writer()
        dataset(session, dataset_id)
        received = session.exec(
            select(col(Delivery.id)).where(
                Delivery.dataset_id == dataset_id, Delivery.consumer == rater
            )
        ).first()
        if received is None:
            raise Forbidden(
                "only members that received the dataset rate it", code=ErrorCode.NOT_A_RECIPIENT
            )
        if (
            session.exec(
                select(Rating.id).where(Rating.dataset_id == dataset_id, Rating.rater == rater)
            ).first()
            is not None
        ):
            raise Conflict("already rated", code=ErrorCode.ALREADY_RATED)
        consume_nonce(session, signed)
        seq = flowlog.append(session, signed, dataset_id=dataset_id)
        row = Rating(dataset_id=dataset_id, rater=rater, score=score, comment=comment, log_seq=seq)
        session.add(row)
        session.flush()
        session.refresh(row)
        session.expunge(row)
    return row

"""Anchoring tree heads on FlowLog and minting credits for anchored deliveries.

One pass (:meth:`Anchorer.run_once`):

1. reads the log's head and the chain's latest anchored head;
2. if the chain already holds this size (a crash after the anchor transaction but before the
   database noted it), it records that anchor and moves on; otherwise it checks that the log
   still contains the chain's head (same root at that size), then anchors the new head;
3. mints, in one ``mintBatch``, the credits of every delivery receipt inside the anchored tree
   not yet credited. Each entry is the consumer's signed receipt: SharingCredits checks the
   signature, that the fetch it names was recorded on chain, and computes the amount from its
   own rules (the broker sends no amount), weighted by the dataset's quality score when the
   receipt was logged (``ledger.scoring.credit_quality``, from signed records that every
   member's verify reads too: a made-up score is caught there). The contract credits a receipt
   id once and withholds repeats, so a crash between minting and marking never pays twice; the
   pass reads back what the chain did.

Exactly once across restarts therefore rests on the chain's own rules (sizes strictly grow,
receipts credited once), not on local bookkeeping surviving.

Several replicas: one leader
----------------------------
With a :class:`~ledger.store.replicas.LeaseKeeper`, only the replica holding the
``anchoring`` lease anchors and mints; it renews the lease every poll and checks it right
before each pass. Followers send no anchor or mint transaction: a pass asked of a follower
(``POST /v1/log/anchor``, ``drl admin anchor``) is a request the leader serves at its next poll,
and the follower answers with what the leader did. A leader killed outright stops renewing; a
follower takes the lease once it lapsed (``DRL_ANCHOR_LEASE_SECONDS``) and finishes the work
(a crash between anchor and mint is what the pass above recovers from anyway).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass

from eth_utils.address import to_checksum_address
from sqlmodel import Session, col, select

from ledger.chain.client import LedgerChain
from ledger.chain.models import SignedReceipt
from ledger.errors import IntegrityAlarm, LedgerError
from ledger.protocol.actions import SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.services import flowlog
from ledger.services.issues import receipt_qualities
from ledger.store.db import Database
from ledger.store.models import Anchor, Delivery
from ledger.store.replicas import LeaseKeeper

log = logging.getLogger(__name__)

MAX_BATCH = 50
#: The lease that makes one replica the anchoring leader.
LEASE_NAME = "anchoring"


@dataclass(frozen=True)
class AnchorPass:
    """What one pass did."""

    tree_size: int
    anchored: bool
    tx_hash: str | None
    credited: int
    minted: int


class Anchorer:
    """Anchors every ``every_records`` new records or ``every_seconds``, whichever comes first."""

    def __init__(
        self,
        db: Database,
        chain: LedgerChain,
        *,
        every_records: int = 100,
        every_seconds: float = 30.0,
        lease: LeaseKeeper | None = None,
        poll: float = 1.0,
    ) -> None:
        self.db = db
        self.chain = chain
        self.every_records = every_records
        self.every_seconds = every_seconds
        #: ``None``: this process is the only broker on its database (it always leads).
        self.lease = lease
        #: Seconds between the background loop's checks (a follower waits about this long).
        self.poll = poll
        self._lock = threading.Lock()
        self._last_run = time.monotonic()

    def leads(self) -> bool:
        """Take or renew the leader's lease; ``True`` if this replica may anchor now."""
        return self.lease is None or self.lease.hold()

    def due(self) -> bool:
        """True when enough records or time have accumulated since the last anchor."""
        with self.db.session() as session:
            size = flowlog.size(session)
            anchored = _anchored_size(session)
        if size <= anchored:
            return False
        if size - anchored >= self.every_records:
            return True
        return time.monotonic() - self._last_run >= self.every_seconds

    def run_once(self) -> AnchorPass:
        """Anchor the current head if it is new, then credit anchored deliveries.

        On a follower: ask the leader, wait for its pass (taking over should the lease lapse
        meanwhile), and answer with what it did; ``anchor_leader_unavailable`` (503) if
        nothing happened within a few leases.
        """
        if self.leads():
            return self._pass()
        return self._through_leader()

    def _through_leader(self) -> AnchorPass:
        assert self.lease is not None
        with self.db.session() as session:
            head = flowlog.head(session)
            anchored_before = _anchored_size(session)
            credited_before, minted_before = _credited(session)
        asked = self.lease.request()
        deadline = time.monotonic() + 2 * self.lease.ttl_ms / 1000 + 5 * self.poll + 5
        while time.monotonic() < deadline:
            time.sleep(min(0.2, self.poll))
            if self.leads():  # the leader died or stepped down: this replica finishes it
                return self._pass()
            with self.db.session() as session:
                anchored = session.get(Anchor, head.size) if head.size else None
                pending = session.exec(
                    select(Delivery.id)
                    .where(Delivery.credited == False, col(Delivery.log_seq) < head.size)  # noqa: E712
                    .limit(1)
                ).first()
                served = (anchored is not None or not head.size) and pending is None
                requested = self.lease.requested()
                if served and (requested is None or requested > asked):
                    credited, minted = _credited(session)
                    fresh = anchored is not None and head.size > anchored_before
                    return AnchorPass(
                        head.size,
                        fresh,
                        anchored.tx_hash if fresh and anchored is not None else None,
                        credited - credited_before,
                        minted - minted_before,
                    )
        raise LedgerError(
            f"the anchoring leader did not serve the request within "
            f"{deadline - time.monotonic() + 0:.0f} s; try again",
            code=ErrorCode.ANCHOR_LEADER_UNAVAILABLE,
        )

    def _pass(self) -> AnchorPass:
        with self._lock:
            self._last_run = time.monotonic()
            with self.db.session() as session:
                head = flowlog.head(session)
            chain_head = self.chain.latest_head()
            anchored, tx_hash = False, None
            if chain_head.tree_size > head.size:
                raise IntegrityAlarm(
                    f"chain anchors size {chain_head.tree_size} but the log has only {head.size}",
                    code=ErrorCode.LOG_BEHIND_CHAIN,
                )
            if chain_head.tree_size:
                with self.db.session() as session:
                    ours = flowlog.head(session, chain_head.tree_size)
                if ours.root != chain_head.root_hash:
                    raise IntegrityAlarm(
                        f"log root at size {chain_head.tree_size} differs from the anchored root",
                        code=ErrorCode.LOG_DIVERGED,
                    )
            if chain_head.tree_size < head.size:
                self._fence()
                tx = self.chain.anchor(head.size, head.root)
                anchored, tx_hash = True, tx.tx_hash
                self._note_anchor(head.size, head.root, tx.tx_hash)
            elif head.size:
                self._note_anchor(head.size, head.root, None)
            credited, minted = self._credit(head.size)
            return AnchorPass(head.size, anchored, tx_hash, credited, minted)

    def run_forever(self, stop: threading.Event, *, poll: float | None = None) -> None:
        """Background loop for the broker; errors are logged and retried next poll.

        Each poll renews (or tries to take) the leader's lease; only the leader runs passes,
        when due or when a follower asked. Stopping gives the lease up for a quick takeover.
        """
        if poll is not None:
            self.poll = poll
        try:
            while not stop.wait(self.poll):
                try:
                    if not self.leads():
                        continue
                    asked = self.lease.requested() if self.lease is not None else None
                    if asked is not None or self.due():
                        self._pass()
                        if asked is not None and self.lease is not None:
                            self.lease.answered(asked)
                except LedgerError as exc:
                    # One line with the code: messages name no endpoint (see ledger.redact).
                    log.warning("anchoring pass failed: [%s] %s", exc.code, exc.message)
                except Exception as exc:
                    log.warning("anchoring pass failed: %s", type(exc).__name__)
        finally:
            if self.lease is not None:
                try:
                    self.lease.release()
                except Exception as exc:  # the database may be what went away
                    log.warning("could not release the anchoring lease: %s", type(exc).__name__)

    def _fence(self) -> None:
        """Renew the lease right before a transaction; a replica that lost it sends nothing."""
        if not self.leads():
            raise LedgerError(
                "this replica lost the anchoring lease; the new leader continues",
                code=ErrorCode.ANCHOR_LEADER_UNAVAILABLE,
            )

    def _note_anchor(self, size: int, root: bytes, tx_hash: str | None) -> None:
        with self.db.transaction() as session:
            if session.get(Anchor, size) is None:
                session.add(Anchor(tree_size=size, root_hash=root, tx_hash=tx_hash or "recovered"))

    def _minted_earlier(self, d: Delivery) -> tuple[int, str | None]:
        return _minted_earlier_impl(self.chain, d)

    def _credit(self, anchored_size: int) -> tuple[int, int]:
        with self.db.session() as session:
            pending = list(
                session.exec(
                    select(Delivery)
                    .where(Delivery.credited == False, col(Delivery.log_seq) < anchored_size)  # noqa: E712
                    .order_by(col(Delivery.log_seq))
                    .limit(MAX_BATCH)
                )
            )
        if not pending:
            return 0, 0
        with self.db.session() as session:
            quality = receipt_qualities(session, pending)
        receipts = [_signed_receipt(d, quality[int(d.id or 0)]) for d in pending]
        self._fence()
        tx = self.chain.mint_batch(receipts)
        minted = {
            bytes(ev.args["receiptId"]): int(ev.args["amount"])
            for ev in tx.events
            if ev.name == "CreditsMinted"
        }
        total = 0
        with self.db.transaction() as session:
            for d in pending:
                row = session.get(Delivery, d.id)
                assert row is not None
                row.credited = True
                if d.receipt_id in minted:
                    row.credit_amount = minted[d.receipt_id]
                    row.credited_tx = tx.tx_hash
                    total += row.credit_amount
                elif self.chain.is_credited(d.receipt_id):
                    # Minted by an earlier pass that crashed before noting it: read it back.
                    row.credit_amount, row.credited_tx = self._minted_earlier(d)
                session.add(row)
        return len(pending), total


def _minted_earlier_impl(chain: LedgerChain, d: Delivery) -> tuple[int, str | None]:
    for ev in chain.events(
        "SharingCredits",
        "CreditsMinted",
        filters={"datasetId": d.dataset_id, "consumer": d.consumer},
    ):
        if bytes(ev.args["receiptId"]) == d.receipt_id:
            return int(ev.args["amount"]), ev.tx_hash
    return 0, None


def _credited(session: Session) -> tuple[int, int]:
    """How many deliveries are credited, and the credits minted for them, so far."""
    rows = session.exec(
        select(Delivery.credit_amount).where(Delivery.credited == True)  # noqa: E712
    ).all()
    return len(rows), sum(int(r or 0) for r in rows)


def _anchored_size(session: Session) -> int:
    latest = session.exec(select(Anchor).order_by(col(Anchor.tree_size).desc())).first()
    return latest.tree_size if latest else 0


def _signed_receipt(d: Delivery, quality: int) -> SignedReceipt:
    """The consumer's signed receipt as SharingCredits checks it (again) before minting, with
    the dataset's quality score when the receipt was logged, which weighs the credit."""
    signed = SignedAction.from_json(json.loads(d.signed_json))
    msg = signed.message
    return SignedReceipt(
        dataset_id=d.dataset_id,
        consumer=to_checksum_address(d.consumer),
        content_hash=d.content_hash,
        grant_generation=d.grant_generation,
        fetch_nonce=int(msg["fetchNonce"]),
        nonce=int(msg["nonce"]),
        deadline=int(msg["deadline"]),
        signature=signed.signature,
        quality=quality,
    )

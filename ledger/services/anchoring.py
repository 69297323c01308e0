"""Anchoring tree heads on FlowLog and minting credits for anchored deliveries.

One pass (:meth:`Anchorer.run_once`):

1. reads the log's head and the chain's latest anchored head;
2. if the chain already holds this size (a crash after the anchor transaction but before the
   database noted it), it records that anchor and moves on; otherwise it checks that the log
   still contains the chain's head (same root at that size), then anchors the new head;
3. mints, in one ``mintBatch``, the credits of every delivery receipt inside the anchored tree
   not yet credited. Each entry is the consumer's signed receipt: SharingCredits checks the
   signature, that the fetch it names was recorded on chain, and computes the amount from its
   own rules (the broker sends no amount). The contract credits a receipt id once and
   withholds repeats, so a crash between minting and marking never pays twice; the pass reads
   back what the chain did.

Exactly once across restarts therefore rests on the chain's own rules (sizes strictly grow,
receipts credited once), not on local bookkeeping surviving.
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
from ledger.errors import IntegrityAlarm
from ledger.protocol.actions import SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.services import flowlog
from ledger.store.db import Database
from ledger.store.models import Anchor, Delivery

log = logging.getLogger(__name__)

MAX_BATCH = 50


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
    ) -> None:
        self.db = db
        self.chain = chain
        self.every_records = every_records
        self.every_seconds = every_seconds
        self._lock = threading.Lock()
        self._last_run = time.monotonic()

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
        """Anchor the current head if it is new, then credit anchored deliveries."""
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
                tx = self.chain.anchor(head.size, head.root)
                anchored, tx_hash = True, tx.tx_hash
                self._note_anchor(head.size, head.root, tx.tx_hash)
            elif head.size:
                self._note_anchor(head.size, head.root, None)
            credited, minted = self._credit(head.size)
            return AnchorPass(head.size, anchored, tx_hash, credited, minted)

    def run_forever(self, stop: threading.Event, *, poll: float = 1.0) -> None:
        """Background loop for the broker; errors are logged and retried next poll."""
        while not stop.wait(poll):
            try:
                if self.due():
                    self.run_once()
            except Exception:
                log.exception("anchoring pass failed")

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
        receipts = [_signed_receipt(d) for d in pending]
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


def _anchored_size(session: Session) -> int:
    latest = session.exec(select(Anchor).order_by(col(Anchor.tree_size).desc())).first()
    return latest.tree_size if latest else 0


def _signed_receipt(d: Delivery) -> SignedReceipt:
    """The consumer's signed receipt as SharingCredits checks it (again) before minting."""
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
    )

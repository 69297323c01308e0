"""What every use case needs: the chain, the store, the blob store, and the common checks.

Use cases are plain functions taking a :class:`Ledger` and the actor's signed payload. Each one
verifies the signature, deadline, nonce and role before touching anything, then does the chain
transaction inside the database transaction that appends the flow-log record, so a refused or
failed action leaves no row, no log record and no blob behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import IntegrityError as SqlIntegrityError
from sqlmodel import Session

from ledger.chain.client import LedgerChain
from ledger.errors import ExpiredDeadline, Forbidden, InvalidInput, NotFound, ReplayedNonce
from ledger.services.actions import ACTIONS, Domains, SignedAction
from ledger.store.blobs import BlobStore
from ledger.store.db import Database
from ledger.store.models import Dataset, Member, UsedNonce

MAX_DEADLINE_AHEAD = 24 * 3600


@dataclass
class Ledger:
    """The broker's core: chain, index database and ciphertext store."""

    chain: LedgerChain
    db: Database
    blobs: BlobStore
    max_upload_bytes: int = 8 * 1024**3
    clock: Callable[[], float] = field(default=time.time)

    @property
    def domains(self) -> Domains:
        d = self.chain.deployment
        return Domains(
            chain_id=d.chain_id,
            flow_log=d.flow_log,
            data_registry=d.data_registry,
            access_ledger=d.access_ledger,
        )

    @property
    def operator(self) -> str:
        return self.chain.account.address

    def now(self) -> int:
        return int(self.clock())


def check_signed(ledger: Ledger, signed: SignedAction, action: str) -> str:
    """Verify an action's type, signature and deadline; returns the signer's address."""
    if signed.action != action:
        raise InvalidInput(
            f"expected a signed {action!r}, got {signed.action!r}", code="wrong_action"
        )
    signed.verify(ledger.domains)
    deadline = signed.message.get("deadline")
    if not isinstance(deadline, int) or deadline < ledger.now():
        raise ExpiredDeadline(f"{action}: deadline {deadline} has passed")
    if deadline > ledger.now() + MAX_DEADLINE_AHEAD + 3600:
        raise ExpiredDeadline(f"{action}: deadline too far ahead (max 24 h)")
    return signed.actor


def consume_nonce(session: Session, signed: SignedAction) -> None:
    """Record a broker action's nonce; a second use by the same signer is refused."""
    if ACTIONS[signed.action][2] != "broker":
        return  # on-chain actions use the contracts' nonces
    nonce = str(signed.message["nonce"])
    if session.get(UsedNonce, (signed.actor, nonce)) is not None:
        raise ReplayedNonce(f"nonce {nonce} already used by {signed.actor}")
    session.add(UsedNonce(signer=signed.actor, nonce=nonce))
    try:
        session.flush()
    except SqlIntegrityError:
        raise ReplayedNonce(f"nonce {nonce} already used by {signed.actor}") from None


def active_member(session: Session, address: str, *, role: str = "member") -> Member:
    """The member at ``address``, refusing unknown and suspended ones."""
    member = session.get(Member, address)
    if member is None:
        raise Forbidden(f"{address} is not an onboarded member", code="not_a_member")
    if member.status != "active":
        raise Forbidden(f"{role} {address} is suspended", code="member_suspended")
    return member


def producer(session: Session, address: str) -> Member:
    """An active member allowed to own or consume data (not a regulator)."""
    member = active_member(session, address)
    if member.kind == "regulator":
        raise Forbidden("regulators read everything and write nothing", code="regulator_read_only")
    return member


#: The largest id a row can have (a signed 64-bit column). Signed messages carry uint256 ids;
#: a larger one names nothing, and handing it to the database would overflow its integer type.
MAX_ROW_ID = 2**63 - 1


def dataset(session: Session, dataset_id: int) -> Dataset:
    found = session.get(Dataset, dataset_id) if 0 <= dataset_id <= MAX_ROW_ID else None
    if found is None:
        raise NotFound(f"no dataset {dataset_id}", code="dataset_not_found")
    return found

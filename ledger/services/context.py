"""What every use case needs: the chain, the store, the blob store, and the common checks.

Use cases are plain functions taking a :class:`Ledger` and the actor's signed payload. Each one
verifies the signature, deadline, nonce and role (``ledger.services.policy``) before touching
anything, then does the chain transaction inside the database transaction that appends the
flow-log record, so a refused or failed action leaves no row, no log record and no blob behind.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Table
from sqlmodel import Session

from ledger.chain.client import LedgerChain
from ledger.errors import InvalidInput, NotFound, ReplayedNonce
from ledger.protocol.actions import ACTIONS, Domains, SignedAction
from ledger.protocol.codes import ErrorCode
from ledger.protocol.limits import check_limits, check_timing
from ledger.store.blobs import BlobStore
from ledger.store.db import Database
from ledger.store.driver import Driver
from ledger.store.models import Dataset, UsedNonce, utcnow

_NONCES: Table = UsedNonce.__table__  # type: ignore[attr-defined]  # SQLModel sets it on tables


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
        return self.chain.deployment.domains

    @property
    def operator(self) -> str:
        """The ADMIN key's address (the data bureau): it signs onboarding, suspension, rules."""
        return self.chain.deployment.admin

    def now(self) -> int:
        return int(self.clock())


def check_signed(ledger: Ledger, signed: SignedAction, action: str) -> str:
    """Verify an action's type, signature and deadline; returns the signer's address."""
    return check_signed_at(ledger.domains, ledger.now(), signed, action)


def check_signed_at(domains: Domains, now: int, signed: SignedAction, action: str) -> str:
    """``check_signed`` with the domains and the time given (so it can run in a worker)."""
    if signed.action != action:
        raise InvalidInput(
            f"expected a signed {action!r}, got {signed.action!r}", code=ErrorCode.WRONG_ACTION
        )
    signed.verify(domains)
    check_timing(signed, now)
    check_limits(signed)
    return signed.actor


def nonce_key(signed: SignedAction) -> tuple[str, str] | None:
    """``(signer, nonce)`` as ``used_nonces`` records it, or None for sequential nonces."""
    if ACTIONS[signed.action].sequential_nonce:
        return None  # the contract's own nonce counter refuses a replay
    return signed.actor, str(signed.message["nonce"])


def consume_nonce(session: Session, signed: SignedAction) -> None:
    """Record a broker action's nonce; a second use by the same signer is refused.

    One ``INSERT ... ON CONFLICT DO NOTHING RETURNING``: no row back means the nonce was used
    (also when a concurrent transaction used it first), and the transaction stays usable.
    """
    key = nonce_key(signed)
    if key is not None and consume_nonces(session, [key]):
        raise ReplayedNonce(f"nonce {key[1]} already used by {key[0]}")


def consume_nonces(session: Session, keys: list[tuple[str, str]]) -> set[tuple[str, str]]:
    """Record many distinct ``(signer, nonce)`` pairs in one statement; returns those already used.

    ``INSERT ... ON CONFLICT DO NOTHING RETURNING``: the pairs not returned were there before
    (or a concurrent transaction recorded them first). The pairs must be distinct: a caller
    that meets one twice refuses the repeat itself.
    """
    if len(set(keys)) != len(keys):
        raise ValueError("consume_nonces needs distinct (signer, nonce) pairs")
    if not keys:
        return set()
    now = utcnow()
    recorded = Driver.of(session).insert(
        _NONCES,
        ("signer", "nonce", "created_at"),
        [(signer, nonce, now) for signer, nonce in keys],
        ignoring=("signer", "nonce"),
        returning=("signer", "nonce"),
    )
    inserted = {(str(signer), str(nonce)) for signer, nonce in recorded}
    return {key for key in keys if key not in inserted}


#: The largest id a row can have (a signed 64-bit column). Signed messages carry uint256 ids;
#: a larger one names nothing, and handing it to the database would overflow its integer type.
MAX_ROW_ID = 2**63 - 1


def dataset(session: Session, dataset_id: int) -> Dataset:
    found = session.get(Dataset, dataset_id) if 0 <= dataset_id <= MAX_ROW_ID else None
    if found is None:
        raise NotFound(f"no dataset {dataset_id}", code=ErrorCode.DATASET_NOT_FOUND)
    return found

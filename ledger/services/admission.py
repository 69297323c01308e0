"""Admitting signed HTTP requests: the caller's standing, and each request nonce used once.

A request signature (``ledger.protocol.http``) is valid for ``MAX_SKEW_SECONDS`` either side of
its timestamp, so its nonce must be remembered at least that long — by every replica and across
restarts. Nonces are therefore rows of ``request_nonces`` with their expiry, not a cache in one
process, and a replayed request is refused wherever and whenever it arrives.

Only a known caller's nonce is recorded (a member, suspended or not, or the operator): a key
nobody onboarded is refused by every route that needs a caller anyway, and must not be able to
fill the table. Requests are admitted in batches (``admit``): one transaction reads the
standings and records the nonces of many concurrent requests, so the durable commit that makes
a nonce single-use is shared, and a busy broker does one commit per batch, not per request.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from sqlalchemy import Table, bindparam, delete
from sqlmodel import Session

from ledger.protocol.http import MAX_SKEW_SECONDS
from ledger.services import policy
from ledger.services.context import Ledger
from ledger.services.policy import Standing
from ledger.store.driver import Driver
from ledger.store.models import RequestNonce

_NONCES: Table = RequestNonce.__table__  # type: ignore[attr-defined]  # SQLModel sets it on tables
_PRUNE = delete(_NONCES).where(_NONCES.c.expires_at < bindparam("horizon"))
_USED = "SELECT signer, nonce FROM request_nonces WHERE (signer, nonce) IN ({})"  # the driver's
#: Rows are kept this long past their request's validity: replicas' clocks may differ a little.
CLOCK_MARGIN_SECONDS: Final = 60
#: Expired rows are deleted at most this often (each batch would be wasteful).
PRUNE_EVERY_SECONDS: Final = 30


@dataclass(frozen=True)
class Claim:
    """One authenticated request: its signer, its nonce and its signed timestamp."""

    signer: str
    nonce: str
    timestamp: int


#: The answer for a claim whose nonce was used before (here or on another replica).
REPLAYED: Final = None
REPLAYED_MESSAGE: Final = "request nonce was already used"


class Admission:
    """Admits batches of requests against one broker's database."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._pruned_at = 0

    def admit(self, claims: Sequence[Claim]) -> list[Standing | None]:
        """Each claim's standing, or ``REPLAYED`` if its nonce was already used.

        Within one batch the first of two equal ``(signer, nonce)`` pairs wins. Callers nobody
        onboarded get their (empty) standing and nothing is recorded for them.
        """
        with self._ledger.db.transaction() as session:
            return self.admit_in(session, claims)

    def admit_in(self, session: Session, claims: Sequence[Claim]) -> list[Standing | None]:
        """:meth:`admit` inside the caller's write transaction: a write recorded in it commits
        its request nonces with it (one transaction, one durable commit)."""
        now = self._ledger.now()
        if now - self._pruned_at >= PRUNE_EVERY_SECONDS:
            horizon = now - CLOCK_MARGIN_SECONDS  # expires_at already holds the skew
            session.connection().execute(_PRUNE, {"horizon": horizon})
            self._pruned_at = now
        found = self.standings(session, [c.signer for c in claims])
        rows: dict[tuple[str, str], int] = {}
        for claim in claims:
            if found[claim.signer].role is not None:
                rows.setdefault((claim.signer, claim.nonce), claim.timestamp + MAX_SKEW_SECONDS)
        recorded = Driver.of(session).insert(
            _NONCES,
            ("signer", "nonce", "expires_at"),
            [(signer, nonce, expires) for (signer, nonce), expires in rows.items()],
            ignoring=("signer", "nonce"),
            returning=("signer", "nonce"),
        )
        inserted = {(str(signer), str(nonce)) for signer, nonce in recorded}
        answers: list[Standing | None] = []
        for claim in claims:
            standing = found[claim.signer]
            key = (claim.signer, claim.nonce)
            if standing.role is None:
                answers.append(standing)
            elif key in inserted:
                inserted.discard(key)  # a second equal claim in this batch is a replay
                answers.append(standing)
            else:
                answers.append(REPLAYED)
        return answers

    def look_up(self, claims: Sequence[Claim]) -> list[Standing | None]:
        """Each claim's standing, or ``REPLAYED`` if its nonce is already used; records nothing.

        For a write that uses its request nonce in its own transaction (``admit_in``, the real
        check): a replay seen here is refused before it spends the member's write rate or a
        place in a batch. One read for all the claims.
        """
        pairs = list({(c.signer, c.nonce) for c in claims})
        with self._ledger.db.driver() as driver:
            found = self.standings(driver, [c.signer for c in claims])
            rows = driver.rows_in(_USED, pairs)
        used = {(str(signer), str(nonce)) for signer, nonce in rows}
        return [REPLAYED if (c.signer, c.nonce) in used else found[c.signer] for c in claims]

    def standings(self, reader: Session | Driver, signers: Sequence[str]) -> dict[str, Standing]:
        """The standing of each of ``signers`` (one query)."""
        return policy.standings(reader, sorted(set(signers)), operator=self._ledger.operator)

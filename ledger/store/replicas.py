"""What several broker replicas share through the database: the deployment, leases and nonces.

- :func:`check_deployment` -- the database records the deployment it indexes (chain id, the
  five contract addresses, ADMIN, BROKER, deployment block), written by the first broker that
  starts on it; every later start compares its own and refuses with the fields that differ.
- :class:`LeaseKeeper` -- one replica holds a named role (``anchoring``) at a time: a row
  with a holder and an expiry on the database's clock, renewed by its holder, taken over by
  another replica once it lapsed (a holder killed with ``kill -9`` is replaced within the
  lease's length). A follower can ask the holder to run now (:meth:`LeaseKeeper.request`).
- :class:`SharedNonces` -- the BROKER key's nonce, taken under a row lock (``SELECT ... FOR
  UPDATE`` on PostgreSQL) while one transaction is signed and handed to the node, so replicas
  sending from one key never sign the same nonce. Implements ``ledger.chain.tx.NonceSource``.

A lease on the database rather than PostgreSQL's session advisory locks: it works the same on
SQLite (one machine) and PostgreSQL, its holder is visible (health, ``drl admin anchor``), and
a holder checks it before each transaction it sends, so a replica cut off from the database
stops sending once its lease lapsed instead of relying on the server noticing a dead session.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import Table, insert, select, text, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError, OperationalError

from ledger.errors import ChainError, ConfigurationError
from ledger.protocol.codes import ErrorCode
from ledger.store.db import Database
from ledger.store.models import ChainSender, DeploymentRecord, Lease

_DEPLOYMENT: Table = DeploymentRecord.__table__  # type: ignore[attr-defined]
_LEASES: Table = Lease.__table__  # type: ignore[attr-defined]
_SENDERS: Table = ChainSender.__table__  # type: ignore[attr-defined]

#: The fields of a deployment a replica must share, in the order a mismatch names them.
DEPLOYMENT_FIELDS = (
    "chain_id",
    "member_registry",
    "data_registry",
    "access_ledger",
    "flow_log",
    "sharing_credits",
    "admin",
    "broker",
    "block_number",
)
#: How long a follower waits for the row lock of the chain sender before giving up.
SENDER_LOCK_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class DeploymentFacts:
    """A deployment as the database records it (plain values, no chain types)."""

    chain_id: int
    member_registry: str
    data_registry: str
    access_ledger: str
    flow_log: str
    sharing_credits: str
    admin: str
    broker: str
    block_number: int

    @classmethod
    def of(cls, deployment: Any) -> DeploymentFacts:
        """From any object with these attributes (``ledger.chain.models.Deployment``)."""
        return cls(**{f.name: getattr(deployment, f.name) for f in fields(cls)})


def recorded_deployment(db: Database) -> DeploymentFacts | None:
    """The deployment this database belongs to, or ``None`` before the first start."""
    with db.engine.connect() as connection:
        row = connection.execute(select(_DEPLOYMENT).where(_DEPLOYMENT.c.id == 1)).first()
    if row is None:
        return None
    return DeploymentFacts(**{name: getattr(row, name) for name in DEPLOYMENT_FIELDS})


def differences(recorded: DeploymentFacts, ours: DeploymentFacts) -> list[str]:
    """``field: database X, this replica Y`` for every field that differs."""
    out = []
    for name in DEPLOYMENT_FIELDS:
        theirs, mine = getattr(recorded, name), getattr(ours, name)
        if str(theirs).lower() != str(mine).lower():
            out.append(f"{name}: database {theirs}, this replica {mine}")
    return out


def check_deployment(db: Database, ours: DeploymentFacts) -> bool:
    """Record ``ours`` if the database has none yet (returns ``True``), else insist it is the same.

    Raises ``ConfigurationError`` (``deployment_mismatch``) naming every field that differs.
    Two first starts racing: one insert wins, the other compares against it.
    """
    recorded = recorded_deployment(db)
    if recorded is None:
        try:
            with db.transaction() as session:
                session.add(
                    DeploymentRecord(id=1, **{n: getattr(ours, n) for n in DEPLOYMENT_FIELDS})
                )
            return True
        except IntegrityError:
            recorded = recorded_deployment(db)
            assert recorded is not None
    diff = differences(recorded, ours)
    if diff:
        raise ConfigurationError(
            "this replica belongs to another deployment than the database "
            f"{db.shown_url()}: {'; '.join(diff)}. A replica joining a database needs the first "
            "replica's deployment.json and BROKER key (and its passphrase); see docs/deploy.md",
            code=ErrorCode.DEPLOYMENT_MISMATCH,
        )
    return False


# -- leases --------------------------------------------------------------------------------


def _now_ms(connection: Connection) -> int:
    """The database's clock (PostgreSQL), or this host's (SQLite: one machine)."""
    if connection.dialect.name == "postgresql":
        value = connection.execute(
            text("SELECT (extract(epoch from clock_timestamp()) * 1000)::bigint")
        ).scalar_one()
        return int(value)
    return int(time.time() * 1000)


@dataclass(frozen=True)
class LeaseState:
    """Who holds a lease now (``holder`` is ``None`` when it lapsed or was never taken)."""

    holder: str | None
    expires_ms: int
    requested_ms: int | None
    now_ms: int


class LeaseKeeper:
    """Holds (or waits for) the lease ``name`` on behalf of the replica ``holder``."""

    def __init__(self, db: Database, *, name: str, holder: str, seconds: float) -> None:
        if seconds <= 0:
            raise ConfigurationError("a lease must last a positive number of seconds")
        self.db = db
        self.name = name
        self.holder = holder
        self.ttl_ms = int(seconds * 1000)

    def hold(self) -> bool:
        """Take or renew the lease; ``True`` if this replica holds it for another ``ttl``."""
        with self.db.engine.begin() as connection:
            now = _now_ms(connection)
            renewed = connection.execute(
                update(_LEASES)
                .where(_LEASES.c.name == self.name)
                .where((_LEASES.c.holder == self.holder) | (_LEASES.c.expires_ms < now))
                .values(holder=self.holder, expires_ms=now + self.ttl_ms)
            ).rowcount
            if renewed:
                return True
        try:
            with self.db.engine.begin() as connection:
                now = _now_ms(connection)
                connection.execute(
                    insert(_LEASES).values(
                        name=self.name, holder=self.holder, expires_ms=now + self.ttl_ms
                    )
                )
            return True
        except IntegrityError:
            return False  # another replica holds it (or just took it)

    def release(self) -> None:
        """Give the lease up now (a clean shutdown), so another replica takes over at once."""
        with self.db.engine.begin() as connection:
            connection.execute(
                update(_LEASES)
                .where(_LEASES.c.name == self.name, _LEASES.c.holder == self.holder)
                .values(expires_ms=0)
            )

    def state(self) -> LeaseState:
        with self.db.engine.connect() as connection:
            now = _now_ms(connection)
            row = connection.execute(select(_LEASES).where(_LEASES.c.name == self.name)).first()
        if row is None:
            return LeaseState(None, 0, None, now)
        holder = row.holder if row.expires_ms >= now else None
        return LeaseState(holder, int(row.expires_ms), row.requested_ms, now)

    def request(self) -> int:
        """Ask the holder to act now; returns the request's time (database clock)."""
        with self.db.engine.begin() as connection:
            now = _now_ms(connection)
            done = connection.execute(
                update(_LEASES).where(_LEASES.c.name == self.name).values(requested_ms=now)
            ).rowcount
        return now if done else 0

    def requested(self) -> int | None:
        """The time of a pending request, if any."""
        return self.state().requested_ms

    def answered(self, requested_ms: int) -> None:
        """Clear the request the holder just served (a later one stays pending)."""
        with self.db.engine.begin() as connection:
            connection.execute(
                update(_LEASES)
                .where(_LEASES.c.name == self.name, _LEASES.c.requested_ms <= requested_ms)
                .values(requested_ms=None)
            )


# -- the chain sender's nonce ----------------------------------------------------------------


class SharedNonces:
    """A sender's nonces kept in ``chain_senders``, locked while a transaction is handed over."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @contextmanager
    def reserve(self, sender: str, pending: Callable[[], int]) -> Iterator[int]:
        """Yield the next nonce of ``sender``; recorded as used when the block ends normally."""
        with self.db.engine.begin() as connection:
            if connection.dialect.name == "postgresql":
                connection.execute(text(f"SET LOCAL lock_timeout = {SENDER_LOCK_TIMEOUT_MS}"))
            locked = select(_SENDERS.c.next_nonce).where(_SENDERS.c.address == sender)
            if connection.dialect.name == "postgresql":
                connection.execute(
                    text(
                        "INSERT INTO chain_senders (address, next_nonce) VALUES (:a, 0) "
                        "ON CONFLICT (address) DO NOTHING"
                    ),
                    {"a": sender},
                )
                locked = locked.with_for_update()
            try:
                recorded = connection.execute(locked).scalar_one_or_none()
            except OperationalError:
                raise ChainError(
                    f"the BROKER key's sender stayed locked by another replica for "
                    f"{SENDER_LOCK_TIMEOUT_MS // 1000} s; try again",
                    code=ErrorCode.CHAIN_REFUSED,
                ) from None
            if recorded is None:  # SQLite: one process, the caller's lock serialises
                connection.execute(insert(_SENDERS).values(address=sender, next_nonce=0))
                recorded = 0
            nonce = max(int(recorded), pending())
            yield nonce
            connection.execute(
                update(_SENDERS).where(_SENDERS.c.address == sender).values(next_nonce=nonce + 1)
            )

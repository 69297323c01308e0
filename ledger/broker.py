"""Assembling a broker core from settings: chain, database, blob store, anchorer.

``open_broker`` is what ``drl serve`` and the tests call: the first start deploys the contracts
and creates the operator identity; later starts reopen the same chain, database and blobs.
Several replicas share one PostgreSQL database, one node and one blob store (a shared volume
or an object store): the database names the deployment they all serve, one of them holds the
anchoring lease, and their BROKER key's nonces are coordinated through the database.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from dataclasses import dataclass, field

from eth_account import Account
from eth_utils.address import is_address, to_checksum_address

from ledger.chain.home import DEPLOYMENT_FILE, OpenedChain, open_chain
from ledger.chain.models import CreditRules
from ledger.chain.siblings import FileNonces
from ledger.errors import ConfigurationError
from ledger.keys import keystore_address, save_account
from ledger.protocol.codes import ErrorCode
from ledger.services import flowlog
from ledger.services.anchoring import LEASE_NAME, Anchorer
from ledger.services.context import Ledger
from ledger.services.exchange import reconcile_uses
from ledger.settings import Settings
from ledger.store import replicas
from ledger.store.blobs import open_blob_store
from ledger.store.db import Database


@dataclass
class Broker:
    """A running broker core and its background anchorer."""

    ledger: Ledger
    anchorer: Anchorer
    opened: OpenedChain
    #: The first start created the ADMIN key on this host (the CLI says so).
    admin_created: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start_anchoring(self, *, poll: float = 1.0) -> None:
        """Run the anchorer in a background thread until :meth:`close` (it anchors only while
        this replica holds the anchoring lease)."""
        if self._thread is None:
            self.anchorer.poll = poll
            self._thread = threading.Thread(
                target=self.anchorer.run_forever,
                args=(self._stop,),
                name="drl-anchorer",
                daemon=True,
            )
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        elif self.anchorer.lease is not None:
            with contextlib.suppress(Exception):  # a lease left behind only lapses later
                self.anchorer.lease.release()
        self.ledger.db.dispose()
        self.opened.close()


def deploying_admin(settings: Settings, passphrase: str) -> tuple[str | None, bool]:
    """The ADMIN address to deploy with, or ``None`` once contracts are deployed (the
    deployment record names it then); and whether its key was created on this host just now.

    Only a first start looks for (or creates) the ADMIN key: a broker restarted after its
    operator moved the key off the host must not create another.
    """
    if (settings.broker_dir / DEPLOYMENT_FILE).exists():
        return None, False
    return admin_address(settings, passphrase)


def admin_address(settings: Settings, passphrase: str) -> tuple[str, bool]:
    """The operator's ADMIN address, and whether its key was created on this host just now.

    ``DRL_ADMIN_ADDRESS`` names a key that lives elsewhere (the recommended deployment: the
    broker host holds only the BROKER key). Otherwise the ADMIN keystore at
    ``settings.admin_key_path`` is read, or created there for a single-machine start; the
    caller says so, since that key then shares the host with the broker's.
    """
    if settings.admin_address:
        if not is_address(settings.admin_address):
            raise ConfigurationError(
                f"DRL_ADMIN_ADDRESS is not an address: {settings.admin_address!r}"
            )
        return str(to_checksum_address(settings.admin_address)), False
    path = settings.admin_key_path
    if path.exists():
        return keystore_address(path), False
    account = Account.create()
    save_account(path, account, passphrase, isolated=True)  # no KDF peak in the server
    return str(account.address), True


def open_broker(settings: Settings, passphrase: str) -> Broker:
    """Open (or create on first start) the broker state under ``settings.broker_dir``.

    The database comes first: a missing driver or an unreachable server is refused before
    anything is deployed, and a database that already indexes a deployment is checked
    against this replica's (its deployment file and BROKER key) before the chain is touched.
    """
    directory = settings.broker_dir
    db = Database(
        settings.database_url or f"sqlite:///{directory / 'broker.db'}",
        pool_size=settings.db_pool_size,
    )
    opened: OpenedChain | None = None
    try:
        db.upgrade()
        recorded = replicas.recorded_deployment(db)
        if recorded is not None and not (directory / DEPLOYMENT_FILE).exists():
            raise ConfigurationError(
                f"the database {db.shown_url()} indexes the deployment of FlowLog "
                f"{recorded.flow_log} on chain {recorded.chain_id} (BROKER {recorded.broker}), "
                f"but {directory / DEPLOYMENT_FILE} does not exist: a replica joining it needs "
                "that deployment.json and the same BROKER key and passphrase, not a deployment "
                "of its own (docs/deploy.md)",
                code=ErrorCode.DEPLOYMENT_MISMATCH,
            )
        blobs = open_blob_store(
            settings.blob_store,
            default=directory / "blobs",
            s3_endpoint_url=settings.s3_endpoint_url,
            s3_region=settings.s3_region,
        )
        admin, created = deploying_admin(settings, passphrase)
        opened = open_chain(
            directory,
            passphrase,
            chain_url=settings.chain_url,
            admin=admin,
            key_path=settings.broker_key.expanduser() if settings.broker_key else None,
            rules=CreditRules(
                epoch_seconds=settings.credit_epoch_seconds,
                first_credit=settings.credit_first,
                repeat_credit=settings.credit_repeat,
                pair_cap=settings.credit_pair_cap,
                owner_cap=settings.credit_owner_cap,
            ),
        )
        replicas.check_deployment(db, replicas.DeploymentFacts.of(opened.chain.deployment))
        # Replicas (and the processes of ``drl serve --workers``) share the BROKER key: its
        # nonces are taken under a row lock, or on SQLite (one machine) a lock on a file beside
        # the database. Before ``recover`` below, which may already send.
        if db.dialect == "postgresql":
            opened.chain.tx.share_nonces(replicas.SharedNonces(db))
        else:
            opened.chain.tx.share_nonces(FileNonces(db.sqlite_sibling("sender")))
        ledger = Ledger(
            chain=opened.chain,
            db=db,
            blobs=blobs,
            max_upload_bytes=settings.max_upload_bytes,
        )
        anchorer = Anchorer(
            db,
            opened.chain,
            every_records=settings.anchor_every_records,
            every_seconds=settings.anchor_every_seconds,
            lease=replicas.LeaseKeeper(
                db,
                name=LEASE_NAME,
                holder=settings.replica_id or replica_name(),
                seconds=settings.anchor_lease_seconds,
            ),
        )
        recover(ledger, anchorer)
    except BaseException:
        if opened is not None:
            opened.close()
        db.dispose()
        raise
    return Broker(ledger=ledger, anchorer=anchorer, opened=opened, admin_created=created)


def replica_name() -> str:
    """This replica's default name in leases and health: host and process id."""
    return f"{socket.gethostname()[:40]}-{os.getpid()}"


def recover(ledger: Ledger, anchorer: Anchorer) -> None:
    """Close the gaps a crash can leave between the chain and the database, before serving.

    The chain and the database commit separately. A broker killed after a ``recordUse`` but
    before its commit leaves a use the index never saw (the index follows the chain); one
    killed after an ``anchor`` or a ``mintBatch`` leaves a head or credits the database has not
    noted (the anchoring pass reads them back from the chain).
    """
    reconcile_uses(ledger)
    with ledger.db.session() as session:
        pending = flowlog.size(session) > 0
    # Only the anchoring leader anchors; a replica starting beside a live leader leaves it.
    if pending and anchorer.leads():
        anchorer.run_once()

"""Assembling a broker core from settings: chain, database, blob store, anchorer.

``open_broker`` is what ``drl serve`` and the tests call: the first start deploys the contracts
and creates the operator identity; later starts reopen the same chain, database and blobs.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

from eth_account import Account
from eth_utils.address import is_address, to_checksum_address

from ledger.chain.home import DEPLOYMENT_FILE, OpenedChain, open_chain
from ledger.chain.models import CreditRules
from ledger.errors import ConfigurationError
from ledger.keys import keystore_address, save_account
from ledger.services import flowlog
from ledger.services.anchoring import Anchorer
from ledger.services.context import Ledger
from ledger.services.exchange import reconcile_uses
from ledger.settings import Settings
from ledger.store.blobs import FileBlobStore
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
        """Run the anchorer in a background thread until :meth:`close`."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self.anchorer.run_forever,
                args=(self._stop,),
                kwargs={"poll": poll},
                name="drl-anchorer",
                daemon=True,
            )
            self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
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
    save_account(path, account, passphrase)
    return str(account.address), True


def open_broker(settings: Settings, passphrase: str) -> Broker:
    """Open (or create on first start) the broker state under ``settings.broker_dir``."""
    directory = settings.broker_dir
    admin, created = deploying_admin(settings, passphrase)
    opened = open_chain(
        directory,
        passphrase,
        chain_url=settings.chain_url,
        admin=admin,
        rules=CreditRules(
            epoch_seconds=settings.credit_epoch_seconds,
            first_credit=settings.credit_first,
            repeat_credit=settings.credit_repeat,
            pair_cap=settings.credit_pair_cap,
            owner_cap=settings.credit_owner_cap,
        ),
    )
    try:
        db = Database(settings.database_url or f"sqlite:///{directory / 'broker.db'}")
        db.upgrade()
        ledger = Ledger(
            chain=opened.chain,
            db=db,
            blobs=FileBlobStore(directory / "blobs"),
            max_upload_bytes=settings.max_upload_bytes,
        )
        anchorer = Anchorer(
            db,
            opened.chain,
            every_records=settings.anchor_every_records,
            every_seconds=settings.anchor_every_seconds,
        )
        recover(ledger, anchorer)
    except BaseException:
        opened.close()
        raise
    return Broker(ledger=ledger, anchorer=anchorer, opened=opened, admin_created=created)


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
    if pending:
        anchorer.run_once()

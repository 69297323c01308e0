"""The broker's chain state directory: broker key, chain file and deployment record.

First open generates the broker key (the hot BROKER key, encrypted at rest), creates the
embedded chain with only that key funded in genesis, deploys the contracts with ADMIN given to
the ``admin`` address (the operator's key, which may live off this host) and BROKER to the broker
key, and records where they are. Later opens reuse all of it, so a restarted broker continues the
same chain. A directory from before ADMIN and BROKER were separated keeps its key in
``operator.key.json``; it is loaded as the broker key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.chain.backend import ChainBackend
from ledger.chain.client import LedgerChain
from ledger.chain.models import CreditRules, Deployment, TxResult
from ledger.errors import ConfigurationError
from ledger.keys import load_account, save_account
from ledger.private import private_dir
from ledger.protocol.codes import ErrorCode

BROKER_KEY = "broker.key.json"
LEGACY_OPERATOR_KEY = "operator.key.json"
CHAIN_FILE = "chain.sqlite"
DEPLOYMENT_FILE = "deployment.json"


@dataclass
class OpenedChain:
    """A ready client (signing as the broker key) plus what happened while opening it."""

    chain: LedgerChain
    created: bool
    steps: list[tuple[str, TxResult]] = field(default_factory=list)

    def close(self) -> None:
        self.chain.backend.close()


def broker_key_path(directory: Path) -> Path:
    """Where the broker key is: ``broker.key.json``, or a legacy ``operator.key.json``."""
    path = directory / BROKER_KEY
    legacy = directory / LEGACY_OPERATOR_KEY
    return legacy if not path.exists() and legacy.exists() else path


def open_chain(
    directory: Path,
    passphrase: str,
    *,
    admin: str | None,
    chain_url: str | None = None,
    rules: CreditRules | None = None,
    backend_factory: Callable[[LocalAccount], ChainBackend] | None = None,
) -> OpenedChain:
    """Open (or create and deploy on first use) the chain state under ``directory``.

    ``admin`` is the ADMIN address the contracts are deployed with; it is required on first
    deploy (ConfigurationError otherwise) and not used once a deployment record exists.
    ``rules`` are the initial credit rules (defaults: :class:`CreditRules`).
    """
    private_dir(directory)
    deployment_path = directory / DEPLOYMENT_FILE
    if not deployment_path.exists() and not admin:
        raise ConfigurationError(
            "no contracts are deployed yet and no ADMIN address was given: the first deploy "
            "needs the operator's ADMIN address (a key other than the broker key)"
        )
    key_path = broker_key_path(directory)
    if key_path.exists():
        broker = load_account(key_path, passphrase)
    else:
        broker = Account.create()
        save_account(key_path, broker, passphrase)
    backend = (
        backend_factory(broker)
        if backend_factory is not None
        else _default_backend(directory, broker, chain_url)
    )
    try:
        if deployment_path.exists():
            deployment = Deployment.load(deployment_path)
            if deployment.broker != broker.address:
                raise ConfigurationError(
                    f"{key_path.name} holds {broker.address} but {DEPLOYMENT_FILE} records the "
                    f"broker {deployment.broker}"
                )
            chain = LedgerChain(backend, deployment, broker)
            chain.verify_deployment()
            return OpenedChain(chain=chain, created=False)
        assert admin is not None  # checked above, before any key or chain file was made
        chain, steps = LedgerChain.deploy(backend, broker, admin=admin, rules=rules)
        chain.deployment.save(deployment_path)
        return OpenedChain(chain=chain, created=True, steps=steps)
    except BaseException:
        backend.close()
        raise


def _default_backend(directory: Path, broker: LocalAccount, url: str | None) -> ChainBackend:
    if url:
        from ledger.chain.rpc import RpcChain

        return RpcChain(url)
    from ledger.chain.embedded import EmbeddedChain

    chain_file = directory / CHAIN_FILE
    if not chain_file.exists() and (directory / DEPLOYMENT_FILE).exists():
        raise ConfigurationError(
            f"{chain_file} is missing but {DEPLOYMENT_FILE} says contracts were deployed there",
            code=ErrorCode.CHAIN_FILE_MISSING,
        )
    return EmbeddedChain(chain_file, funded=[broker.address])

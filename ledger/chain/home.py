"""The broker's chain state directory: broker key, chain file and deployment record.

First open generates the broker key (the hot BROKER key, encrypted at rest), creates the
embedded chain with only that key funded in genesis, deploys the contracts with ADMIN given to
the ``admin`` address (the operator's key, which may live off this host) and BROKER to the broker
key, and records where they are. Later opens reuse all of it, so a restarted broker continues the
same chain. A directory from before ADMIN and BROKER were separated keeps its key in
``operator.key.json``; it is loaded as the broker key.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.chain.backend import ChainBackend
from ledger.chain.client import LedgerChain
from ledger.chain.models import CreditRules, Deployment, TxResult
from ledger.errors import ConfigurationError
from ledger.keys import load_account, save_account
from ledger.private import private_dir
from ledger.protocol.codes import ErrorCode

#: Chain ids a new embedded chain picks from at random (one per home).
EMBEDDED_CHAIN_IDS: Final = range(1 << 24, 1 << 31)

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
    key_path: Path | None = None,
) -> OpenedChain:
    """Open (or create and deploy on first use) the chain state under ``directory``.

    ``admin`` is the ADMIN address the contracts are deployed with; it is required on first
    deploy (ConfigurationError otherwise) and not used once a deployment record exists.
    ``rules`` are the initial credit rules (defaults: :class:`CreditRules`). ``key_path``
    is the BROKER keystore when it lives elsewhere than ``directory`` (``DRL_BROKER_KEY``,
    a file the replicas share); a replica of a deployment never creates a key of its own.
    On a node (not the embedded chain) a first deploy checks the key holds enough ether and
    otherwise refuses naming its address and the amount (``broker_key_unfunded``).
    """
    private_dir(directory)
    deployment_path = directory / DEPLOYMENT_FILE
    if not deployment_path.exists() and not admin:
        raise ConfigurationError(
            "no contracts are deployed yet and no ADMIN address was given: the first deploy "
            "needs the operator's ADMIN address (a key other than the broker key)"
        )
    key_path = key_path or broker_key_path(directory)
    if key_path.exists():
        broker = load_account(key_path, passphrase, isolated=True)  # the server lives on
    elif deployment_path.exists():
        raise ConfigurationError(
            f"{DEPLOYMENT_FILE} records a deployment but there is no BROKER key at {key_path}: "
            "a replica uses the deployment's own key (copy it, or point DRL_BROKER_KEY at it)",
            code=ErrorCode.DEPLOYMENT_MISMATCH,
        )
    else:
        broker = Account.create()
        save_account(key_path, broker, passphrase, isolated=True)
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
                    f"broker {deployment.broker}: a replica needs the deployment's own BROKER "
                    "key (DRL_BROKER_KEY or a copy) and its passphrase",
                    code=ErrorCode.DEPLOYMENT_MISMATCH,
                )
            chain = LedgerChain(backend, deployment, broker)
            chain.verify_deployment()
            return OpenedChain(chain=chain, created=False)
        assert admin is not None  # checked above, before any key or chain file was made
        if backend.name != "embedded":
            require_funds(backend, broker.address)
        chain, steps = LedgerChain.deploy(backend, broker, admin=admin, rules=rules)
        chain.deployment.save(deployment_path)
        return OpenedChain(chain=chain, created=True, steps=steps)
    except BaseException:
        backend.close()
        raise


#: Gas the five deployments take together (about 9.4 million measured on anvil), with margin.
DEPLOY_GAS = 12_000_000


def require_funds(backend: ChainBackend, address: str) -> None:
    """Refuse a first deploy the broker key cannot pay for, saying whom to fund with what."""
    from ledger.chain.tx import translated_errors

    w3 = backend.w3
    with translated_errors():
        balance = int(w3.eth.get_balance(w3.to_checksum_address(address)))
        price = int(w3.eth.gas_price)
    needed = DEPLOY_GAS * max(price, 1)
    if balance < needed:
        raise ConfigurationError(
            f"the BROKER key {address} holds {balance / 1e18:.6f} ether on chain "
            f"{backend.chain_id}; deploying the contracts needs about {needed / 1e18:.6f} ether "
            f"({DEPLOY_GAS:,} gas at {price / 1e9:.3f} gwei), and it pays every relayed "
            "transaction after: send it funds and start again",
            code=ErrorCode.BROKER_KEY_UNFUNDED,
        )


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
    # A new home's chain gets its own chain id: EIP-712 domains, request signatures and log
    # origins all name the chain id, so two homes must never share one (a reopened file keeps
    # the id it was created with).
    chain_id = None if chain_file.exists() else new_embedded_chain_id()
    return EmbeddedChain(chain_file, funded=[broker.address], chain_id=chain_id)


def new_embedded_chain_id() -> int:
    """A random chain id for a new embedded chain, clear of the well-known small ids.

    Below 2**31 so that every EIP-155 tooling (and JavaScript numbers) handles it.
    """
    return EMBEDDED_CHAIN_IDS.start + secrets.randbelow(len(EMBEDDED_CHAIN_IDS))

"""The broker's chain state directory: operator key, chain file and deployment record.

First open generates the operator key (encrypted at rest), creates the embedded chain with only
that key funded in genesis, deploys and wires the contracts and records where they are. Later
opens reuse all of it, so a restarted broker continues the same chain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from ledger.chain.backend import ChainBackend
from ledger.chain.client import DEFAULT_CREDIT_CAP, DEFAULT_EPOCH_SECONDS, LedgerChain
from ledger.chain.models import Deployment, TxResult
from ledger.errors import ConfigurationError
from ledger.keys import load_account, save_account
from ledger.protocol.codes import ErrorCode

OPERATOR_KEY = "operator.key.json"
CHAIN_FILE = "chain.sqlite"
DEPLOYMENT_FILE = "deployment.json"


@dataclass
class OpenedChain:
    """A ready client plus what happened while opening it."""

    chain: LedgerChain
    created: bool
    steps: list[tuple[str, TxResult]] = field(default_factory=list)

    def close(self) -> None:
        self.chain.backend.close()


def open_chain(
    directory: Path,
    passphrase: str,
    *,
    chain_url: str | None = None,
    credit_cap: int = DEFAULT_CREDIT_CAP,
    epoch_seconds: int = DEFAULT_EPOCH_SECONDS,
    backend_factory: Callable[[LocalAccount], ChainBackend] | None = None,
) -> OpenedChain:
    """Open (or create and deploy on first use) the chain state under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    key_path = directory / OPERATOR_KEY
    if key_path.exists():
        operator = load_account(key_path, passphrase)
    else:
        operator = Account.create()
        save_account(key_path, operator, passphrase)
    backend = (
        backend_factory(operator)
        if backend_factory is not None
        else _default_backend(directory, operator, chain_url)
    )
    deployment_path = directory / DEPLOYMENT_FILE
    try:
        if deployment_path.exists():
            deployment = Deployment.load(deployment_path)
            chain = LedgerChain(backend, deployment, operator)
            chain.verify_deployment()
            return OpenedChain(chain=chain, created=False)
        chain, steps = LedgerChain.deploy(
            backend, operator, credit_cap=credit_cap, epoch_seconds=epoch_seconds
        )
        chain.deployment.save(deployment_path)
        return OpenedChain(chain=chain, created=True, steps=steps)
    except BaseException:
        backend.close()
        raise


def _default_backend(directory: Path, operator: LocalAccount, url: str | None) -> ChainBackend:
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
    return EmbeddedChain(chain_file, funded=[operator.address])

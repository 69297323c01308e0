"""Shared CLI plumbing: consoles, settings, identities, the broker client, output."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic_core import to_jsonable_python
from rich.console import Console

from ledger.client import keystore
from ledger.client.member import MemberKeys
from ledger.client.sdk import BrokerClient
from ledger.crypto import generate_keypair
from ledger.errors import LedgerError
from ledger.keys import load_account
from ledger.protocol.codes import ErrorCode
from ledger.settings import Settings

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON for scripting.")]
AsOpt = Annotated[
    str | None,
    typer.Option("--as", help="Local identity to act as (DRL_AS); 'operator' on the broker host."),
]
DEFAULT_BROKER_URL = "http://127.0.0.1:8686"


def report(exc: LedgerError) -> None:
    """A library error as the CLI's one line: ``error [code]: message``."""
    err.print(f"error [{exc.code}]: {exc.message}", markup=False, highlight=False)


def settings() -> Settings:
    return Settings()


def passphrase(cfg: Settings) -> str:
    if cfg.passphrase is not None:
        return cfg.passphrase.get_secret_value()
    if not sys.stdin.isatty():
        raise LedgerError("set DRL_PASSPHRASE to unlock keys", code=ErrorCode.NO_PASSPHRASE)
    value: str = typer.prompt("Passphrase", hide_input=True)
    return value


def broker_url() -> str:
    return os.environ.get("DRL_BROKER_URL", DEFAULT_BROKER_URL)


def identity(handle: str | None) -> MemberKeys:
    """Unlock the identity to act as: --as, else DRL_AS, else the operator, else the only one.

    ``operator`` (or ``admin``) is the ADMIN key at ``DRL_ADMIN_KEY`` (default HOME/admin/):
    the data bureau's key, which signs onboarding, suspension and co-signatures. The broker's
    own BROKER key never signs actions.
    """
    cfg = settings()
    home = cfg.home.expanduser()
    chosen = handle or os.environ.get("DRL_AS")
    operator_key = cfg.admin_key_path
    if chosen == "admin":
        chosen = "operator"
    if chosen is None:
        local = keystore.handles(home)
        if operator_key.exists():
            chosen = "operator"
        elif len(local) == 1:
            chosen = local[0]
        else:
            raise LedgerError(
                "say who you are: --as HANDLE (or set DRL_AS)", code=ErrorCode.NO_IDENTITY
            )
    if chosen == "operator":
        account = load_account(operator_key, passphrase(cfg))
        # The operator signs requests and actions; it never decrypts, so its HPKE key is unused.
        private, _ = generate_keypair()
        return MemberKeys(account=account, hpke=private)
    return keystore.unlock(home, chosen, passphrase(cfg))


@contextmanager
def client(handle: str | None = None, *, anonymous: bool = False) -> Iterator[BrokerClient]:
    """The SDK for this identity: the deployment pinned and the proofs kept under HOME/trust,
    the chain read through DRL_CHAIN_URL when set (else the broker's relay, said so once)."""
    keys = None if anonymous else identity(handle)
    cfg = settings()
    handed = os.environ.get("DRL_DEPLOYMENT")
    with BrokerClient(
        broker_url(),
        keys,
        trust_dir=cfg.home.expanduser() / "trust",
        chain_url=cfg.chain_url,
        deployment_file=Path(handed) if handed else None,
    ) as c:
        yield c
        if c.chain_view_opened and (caveat := c.chain_view().caveat):
            err.print(f"note: {caveat}", highlight=False)


def emit(data: Any, as_json: bool, human: str | None = None) -> None:
    """Print ``data`` (wire models, or lists and dicts of them) as JSON, or ``human``."""
    if as_json:
        out.print_json(json.dumps(to_jsonable_python(data, fallback=str)))
    elif human is not None:
        out.print(human, highlight=False)

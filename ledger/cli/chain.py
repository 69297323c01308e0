"""`drl chain ...`: the operator's direct view of the contracts (broker stopped).

The chain stack (web3, and py-evm for the embedded chain) is imported by the commands that
open the chain, not by this module: every ``drl`` command loads it to register these.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ledger.cli.common import JsonOpt, out
from ledger.cli.common import passphrase as _passphrase
from ledger.cli.common import settings as _settings
from ledger.errors import ConfigurationError, LedgerError
from ledger.protocol.codes import ErrorCode

if TYPE_CHECKING:
    from ledger.chain.home import OpenedChain
    from ledger.chain.models import TxResult

chain_app = typer.Typer(
    help="Inspect and operate the broker's chain directly (on the broker host).",
    no_args_is_help=True,
)


def _open() -> OpenedChain:
    """The broker's chain, opened with the BROKER key (deployed with the ADMIN address)."""
    from ledger.broker import deploying_admin
    from ledger.chain.home import DEPLOYMENT_FILE, open_chain

    settings = _settings()
    if not (settings.broker_dir / DEPLOYMENT_FILE).exists():
        # These commands inspect a broker's chain; they never deploy one (`drl serve` does).
        raise ConfigurationError(
            f"no broker deployment in {settings.broker_dir} (check DRL_HOME, or start "
            "`drl serve` once)",
            code=ErrorCode.NO_DEPLOYMENT,
        )
    secret = _passphrase(settings)
    admin, _ = deploying_admin(settings, secret)
    return open_chain(settings.broker_dir, secret, admin=admin, chain_url=settings.chain_url)


def _tx_dict(tx: TxResult | None) -> dict[str, Any] | None:
    if tx is None:
        return None
    return {"tx": tx.tx_hash, "gas": tx.gas_used, "block": tx.block_number}


@chain_app.command("status")
def chain_status(as_json: JsonOpt = False) -> None:
    """Show the deployment, head block and latest anchored flow-log head."""
    opened = _open()
    try:
        chain = opened.chain
        head = chain.latest_head()
        info = {
            "chain_id": chain.deployment.chain_id,
            "block": chain.w3.eth.block_number,
            "admin": chain.deployment.admin,
            "broker": chain.account.address,
            "contracts": {
                name: chain.deployment.address_of(name)
                for name in (
                    "MemberRegistry",
                    "DataRegistry",
                    "AccessLedger",
                    "FlowLog",
                    "SharingCredits",
                )
            },
            "datasets": chain.dataset_count(),
            "anchored_tree_size": head.tree_size,
            "anchored_root": "0x" + head.root_hash.hex(),
        }
    finally:
        opened.close()
    if as_json:
        out.print_json(json.dumps(info))
        return
    for key, value in info.items():
        if isinstance(value, dict):
            for name, address in value.items():
                out.print(f"{name:>18}  {address}")
        else:
            out.print(f"{key:>18}  {value}")


@chain_app.command("anchor")
def chain_anchor(
    tree_size: Annotated[int, typer.Argument(min=1, help="Size of the tree being anchored.")],
    root_hash: Annotated[str, typer.Argument(help="Root hash, 32 bytes hex (0x...).")],
    as_json: JsonOpt = False,
) -> None:
    """Anchor a flow-log tree head by hand (the broker does this itself)."""
    root = _hex32(root_hash, "root_hash")
    opened = _open()
    try:
        tx = opened.chain.anchor(tree_size, root)
    finally:
        opened.close()
    if as_json:
        out.print_json(json.dumps(_tx_dict(tx)))
    else:
        out.print(f"anchored size {tree_size}: tx {tx.tx_hash} gas {tx.gas_used:,}")


@chain_app.command("dataset")
def chain_dataset(
    dataset_id: Annotated[int, typer.Argument(min=1, help="Dataset id.")],
    as_json: JsonOpt = False,
) -> None:
    """Show one dataset certificate as the chain holds it."""
    opened = _open()
    try:
        info = opened.chain.dataset(dataset_id)
    finally:
        opened.close()
    data = {
        "id": info.dataset_id,
        "owner": info.owner,
        "content_hash": "0x" + info.content_hash.hex(),
        "metadata_hash": "0x" + info.metadata_hash.hex(),
        "classification": info.classification,
        "parents": list(info.parents),
        "previous_version": info.previous_version,
        "registered_at": info.registered_at,
        "retired": info.retired,
    }
    if as_json:
        out.print_json(json.dumps(data))
    else:
        for key, value in data.items():
            out.print(f"{key:>16}  {value}")


def _hex32(value: str, name: str) -> bytes:
    text = value[2:] if value.startswith("0x") else value
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        raise LedgerError(f"{name} must be 32 bytes of hex", code=ErrorCode.BAD_HEX)
    return raw

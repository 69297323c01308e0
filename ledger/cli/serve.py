"""`drl serve`: the broker on the embedded default (or DRL_CHAIN_URL / DRL_DATABASE_URL)."""

from __future__ import annotations

import contextlib
import gc
import signal
import socket
from typing import TYPE_CHECKING, Annotated, Final

import typer

from ledger.cli.common import err, passphrase, settings

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from ledger.broker import Broker
    from ledger.settings import Settings

#: ``--workers`` at most (each process holds its own connections, caches and threads).
MAX_WORKERS: Final = 32


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8686,
    anchor_poll: Annotated[float, typer.Option(help="Seconds between anchoring checks.")] = 1.0,
    workers: Annotated[
        int,
        typer.Option(
            min=1,
            max=MAX_WORKERS,
            help="Processes answering the port (one per core: each runs Python on one core).",
        ),
    ] = 1,
) -> None:
    """Run the broker: deploys and creates its keys on first start, reopens after."""
    from ledger.broker import open_broker
    from ledger.chain.siblings import ChainSocket
    from ledger.cli.workers import Workers, WorkerSpec, bound_socket, exit_cleanly

    cfg = settings()
    # Bound before anything is created or deployed: an address that is taken is refused first.
    sock = bound_socket(host, port, shared=workers > 1)
    with contextlib.ExitStack() as closing:  # each step undone even if an earlier one fails
        closing.callback(sock.close)
        secret = passphrase(cfg)
        broker = open_broker(cfg, secret)
        closing.callback(broker.close)
        if broker.admin_created:
            err.print(
                f"created the ADMIN key at {cfg.admin_key_path} on this host; for production "
                "move it off the broker host and start with DRL_ADMIN_ADDRESS "
                "(docs/deployment.md)",
                highlight=False,
            )
        chain = broker.ledger.chain
        if workers > 1:
            chain_url = None
            if cfg.chain_url is None:
                served = ChainSocket(chain.backend)
                closing.callback(served.close)
                chain_url = served.url
            siblings = Workers(
                WorkerSpec(host, port, anchor_poll, passphrase=secret, chain_url=chain_url),
                count=workers - 1,
            )
            closing.callback(siblings.stop)
            siblings.start()
        first = "deployed contracts" if broker.opened.created else "reopened"
        node = "embedded chain" if cfg.chain_url is None else "external node"
        err.print(
            f"broker {first} on chain {chain.deployment.chain_id} ({node}); "
            f"admin {chain.deployment.admin}, broker key {chain.account.address}; "
            f"listening on http://{host}:{port}"
            + (f" with {workers} processes" if workers > 1 else ""),
            highlight=False,
        )
        broker.start_anchoring(poll=anchor_poll)
        signal.signal(signal.SIGTERM, exit_cleanly)
        run_app(broker_app(broker, cfg), sock)


def broker_app(broker: Broker, cfg: Settings) -> ASGIApp:
    """The HTTP app over an opened broker, with the limits of the settings (every process)."""
    from api.main import create_app
    from api.transfers import TransferLimits, WriteRate

    return create_app(
        broker,
        transfers=TransferLimits.from_settings(cfg),
        write_rate=WriteRate.from_settings(cfg),
    )


def run_app(app: ASGIApp, sock: socket.socket) -> None:
    """Serve ``app`` with uvicorn on the bound ``sock`` until SIGINT or SIGTERM."""
    import uvicorn

    # What start-up built (py-evm, web3's ABIs, the app: some 230,000 objects) lives as long
    # as the process; moved out of the collector's reach, a full collection under load stops
    # walking it (about 0.1 s each time, a pause every request in flight waited for).
    gc.collect()
    gc.freeze()
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])

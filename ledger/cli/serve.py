"""`drl serve`: the broker on the embedded default (or DRL_CHAIN_URL / DRL_DATABASE_URL)."""

from __future__ import annotations

import gc
import signal
import socket
from types import FrameType
from typing import TYPE_CHECKING, Annotated, Any, Final

import typer

from ledger.cli.common import err, passphrase, settings
from ledger.errors import ConfigurationError
from ledger.protocol.codes import ErrorCode

if TYPE_CHECKING:
    from ledger.broker import Broker
    from ledger.settings import Settings

#: ``--workers`` at most (each process holds its own connections, caches and threads).
MAX_WORKERS: Final = 32
#: The lock file next to the chain state under which processes take the BROKER key's nonces.
NONCE_LOCK_FILE: Final = "broker.nonce.lock"


def _check_can_listen(host: str, port: int) -> None:
    """Refuse at once an address the broker could not listen on (taken, or not this host's)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror}", code=ErrorCode.PORT_IN_USE
        ) from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            probe.bind(address)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot listen on {host}:{port}: {exc.strerror}", code=ErrorCode.PORT_IN_USE
            ) from None


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(0)


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
    from api.main import create_app
    from api.transfers import TransferLimits, WriteRate
    from ledger.broker import open_broker
    from ledger.chain.siblings import ChainSocket
    from ledger.cli.workers import Workers, WorkerSpec, listening_socket

    cfg = settings()
    _check_can_listen(host, port)  # before anything is created or deployed
    secret = passphrase(cfg)
    broker = open_broker(cfg, secret)
    if broker.admin_created:
        err.print(
            f"created the ADMIN key at {cfg.admin_key_path} on this host; for production move it "
            "off the broker host and start with DRL_ADMIN_ADDRESS (docs/deployment.md)",
            highlight=False,
        )
    chain_socket: ChainSocket | None = None
    siblings: Workers | None = None
    try:
        chain = broker.ledger.chain
        first = "deployed contracts" if broker.opened.created else "reopened"
        node = "embedded chain" if cfg.chain_url is None else "external node"
        sock = listening_socket(host, port, shared=workers > 1)
        if workers > 1:
            share_broker_nonces(broker, cfg)
            if cfg.chain_url is None:
                chain_socket = ChainSocket(chain.backend)
            siblings = Workers(
                WorkerSpec(
                    host=host,
                    port=port,
                    anchor_poll=anchor_poll,
                    passphrase=secret,
                    chain_url=chain_socket.url if chain_socket is not None else None,
                ),
                count=workers - 1,
            )
            siblings.start()
        err.print(
            f"broker {first} on chain {chain.deployment.chain_id} ({node}); "
            f"admin {chain.deployment.admin}, broker key {chain.account.address}; "
            f"listening on http://{host}:{port}"
            + (f" with {workers} processes" if workers > 1 else ""),
            highlight=False,
        )
        broker.start_anchoring(poll=anchor_poll)
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again; with the
        # default handler that killed the process before the ``finally`` below closed the
        # broker (anchoring stopped, database closed). This handler ends it through the finally.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        run_app(
            create_app(
                broker,
                transfers=TransferLimits.from_settings(cfg),
                write_rate=WriteRate.from_settings(cfg),
            ),
            sock,
        )
    finally:
        if siblings is not None:
            siblings.stop()
        if chain_socket is not None:
            chain_socket.close()
        broker.close()


def run_app(app: Any, sock: socket.socket) -> None:
    """Serve ``app`` with uvicorn on the listening ``sock`` until SIGINT or SIGTERM."""
    import uvicorn

    # What start-up built (py-evm, web3's ABIs, the app: some 230,000 objects) lives as long
    # as the process; moved out of the collector's reach, a full collection under load stops
    # walking it (about 0.1 s each time, a pause every request in flight waited for).
    gc.collect()
    gc.freeze()
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])


def share_broker_nonces(broker: Broker, cfg: Settings) -> None:
    """Processes of one broker send from one key: on SQLite its nonces go under a file lock
    (on PostgreSQL replicas already take them under a row lock, ``open_broker``)."""
    from ledger.chain.siblings import FileNonces

    if broker.ledger.db.dialect == "sqlite":
        broker.ledger.chain.tx.share_nonces(FileNonces(cfg.broker_dir / NONCE_LOCK_FILE))

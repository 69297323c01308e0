"""`drl serve`: the broker on the embedded default (or DRL_CHAIN_URL / DRL_DATABASE_URL)."""

from __future__ import annotations

import signal
import socket
from types import FrameType
from typing import Annotated

import typer

from ledger.cli.common import err, passphrase, settings
from ledger.errors import ConfigurationError
from ledger.protocol.codes import ErrorCode


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
) -> None:
    """Run the broker: deploys and creates its keys on first start, reopens after."""
    import uvicorn

    from api.main import create_app
    from api.transfers import TransferLimits, WriteRate
    from ledger.broker import open_broker

    cfg = settings()
    _check_can_listen(host, port)  # before anything is created or deployed
    broker = open_broker(cfg, passphrase(cfg))
    if broker.admin_created:
        err.print(
            f"created the ADMIN key at {cfg.admin_key_path} on this host; for production move it "
            "off the broker host and start with DRL_ADMIN_ADDRESS (docs/deployment.md)",
            highlight=False,
        )
    try:
        chain = broker.ledger.chain
        first = "deployed contracts" if broker.opened.created else "reopened"
        node = "embedded chain" if cfg.chain_url is None else "external node"
        err.print(
            f"broker {first} on chain {chain.deployment.chain_id} ({node}); "
            f"admin {chain.deployment.admin}, broker key {chain.account.address}; "
            f"listening on http://{host}:{port}",
            highlight=False,
        )
        broker.start_anchoring(poll=anchor_poll)
        # uvicorn shuts down gracefully on SIGTERM, then raises the signal again; with the
        # default handler that killed the process before the ``finally`` below closed the
        # broker (anchoring stopped, database closed). This handler ends it through the finally.
        signal.signal(signal.SIGTERM, _exit_cleanly)
        uvicorn.run(
            create_app(
                broker,
                transfers=TransferLimits.from_settings(cfg),
                write_rate=WriteRate.from_settings(cfg),
            ),
            host=host,
            port=port,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=5,
        )
    finally:
        broker.close()

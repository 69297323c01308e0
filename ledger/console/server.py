"""Serve the console on 127.0.0.1 only, with a fresh token, until Ctrl-C.

The socket is bound before anything is printed (``--port 0`` picks a free port, and the printed
URL names the port actually bound); uvicorn then serves on that socket. A browser is opened
only where one can be (a desktop session, or ``BROWSER`` set); otherwise the URL is printed and
the member opens it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import webbrowser
from collections.abc import Callable
from types import FrameType

from ledger.console.app import GRAPH_ASSET, create_app
from ledger.console.security import Gate, new_token
from ledger.console.session import ConsoleSession
from ledger.errors import ConfigurationError
from ledger.protocol.codes import ErrorCode

HOST = "127.0.0.1"


def check_assets() -> None:
    """Refuse to start without the bundled graph library (ConfigurationError
    ``console_assets_missing``): the console never fetches it from elsewhere."""
    if not GRAPH_ASSET.is_file():
        raise ConfigurationError(
            f"the console's bundled cytoscape.js is missing ({GRAPH_ASSET}); run "
            "scripts/bootstrap, which copies it from node_modules",
            code=ErrorCode.CONSOLE_ASSETS_MISSING,
        )


def bind(port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:``port`` (0: any free port)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a quick restart
    try:
        sock.bind((HOST, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {HOST}:{port}: {exc.strerror}", code=ErrorCode.PORT_IN_USE
        ) from None
    return sock


def can_open_browser() -> bool:
    """Whether this session has a browser to open (a desktop, or ``BROWSER`` set)."""
    if sys.platform in ("darwin", "win32"):
        return True
    return any(os.environ.get(v) for v in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER"))


class _Stopped(Exception):
    """SIGTERM, raised after uvicorn's graceful shutdown (as Ctrl-C raises KeyboardInterrupt)."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise _Stopped


def serve(
    session: ConsoleSession,
    *,
    sock: socket.socket,
    open_browser: bool = True,
    announce: Callable[[str], None],
) -> None:
    """Run the console on ``sock`` (from :func:`bind`) until interrupted; ``announce`` is
    given the URL with the token."""
    import uvicorn

    gate = Gate(port=int(sock.getsockname()[1]), token=new_token())
    app = create_app(session, gate)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,
        )
    )
    announce(gate.url)
    if open_browser and can_open_browser():
        threading.Thread(target=_open, args=(gate.url,), daemon=True).start()
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        server.run(sockets=[sock])
    except (KeyboardInterrupt, _Stopped):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        sock.close()
        session.job.wait(timeout=5)


def _open(url: str) -> None:
    with contextlib.suppress(webbrowser.Error):  # the URL is printed anyway
        webbrowser.open(url)

"""`drl serve --workers N`: N processes answering one port, each a replica of the first.

One broker process runs its Python on one core at a time (the GIL), so on a host with more
cores the first process starts N-1 siblings. Each sibling is a replica (docs/deploy.md) that
shares the first process's state:

- the port: every process listens on its own socket bound with ``SO_REUSEPORT``, and the
  kernel spreads new connections over them;
- the chain: the embedded chain is served by the first process on a private Unix socket
  (:class:`ledger.chain.siblings.ChainSocket`); an external node is reached by each directly;
- the database, the blob store and the BROKER key, as replicas share them; on SQLite the key's
  nonces are taken under a file lock (:class:`ledger.chain.siblings.FileNonces`), on
  PostgreSQL under the row lock replicas use;
- anchoring: the lease of ``ledger.store.replicas`` makes one process the anchoring leader.

A sibling gets the passphrase on its stdin (never in its environment or arguments), tells the
first process it is ready through a pipe, and ends when the first process ends (SIGTERM from
the kernel if the first process dies without stopping it). One that exits while the broker
runs is started again, at most :data:`RESTARTS` times a minute (after that it is not replaced
and says so).
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

from ledger.errors import ConfigurationError
from ledger.protocol.codes import ErrorCode

#: How long a sibling may take to open the broker and listen.
START_TIMEOUT: Final = 120.0
#: Restarts of crashed siblings allowed per minute before the broker stops replacing them.
RESTARTS: Final = 5
#: How long stopping waits for a sibling to finish its requests before killing it.
STOP_TIMEOUT: Final = 10.0
_PR_SET_PDEATHSIG: Final = 1


@dataclass(frozen=True)
class WorkerSpec:
    """What a sibling needs to serve (sent on its stdin as one JSON line)."""

    host: str
    port: int
    anchor_poll: float
    passphrase: str = field(repr=False)
    chain_url: str | None = field(default=None, repr=False)


def listening_socket(host: str, port: int, *, shared: bool) -> socket.socket:
    """A socket listening on ``host:port``; ``shared`` binds it with ``SO_REUSEPORT``."""
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
        sock.listen(2048)  # uvicorn's default backlog
    except OSError as exc:
        sock.close()
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {exc.strerror}", code=ErrorCode.PORT_IN_USE
        ) from None
    return sock


class Workers:
    """The first process's siblings: started, watched and restarted, stopped."""

    def __init__(self, spec: WorkerSpec, count: int) -> None:
        self._spec = spec
        self._count = count
        self._processes: list[subprocess.Popen[bytes]] = []
        self._stopping = threading.Event()
        self._restarts: deque[float] = deque(maxlen=RESTARTS)
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None

    @property
    def pids(self) -> list[int]:
        with self._lock:
            return [p.pid for p in self._processes]

    def start(self) -> None:
        """Start every sibling and wait until each listens (``ConfigurationError`` if not)."""
        try:
            for _ in range(self._count):
                self._processes.append(self._spawn())
        except BaseException:
            self.stop()
            raise
        self._watcher = threading.Thread(target=self._watch, name="drl-workers", daemon=True)
        self._watcher.start()

    def stop(self) -> None:
        """SIGTERM every sibling, wait for it to finish its requests, then kill what is left."""
        self._stopping.set()
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in processes:
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        if self._watcher is not None:
            self._watcher.join(timeout=5)

    def _spawn(self) -> subprocess.Popen[bytes]:
        ready, signal_ready = os.pipe()
        env = {k: v for k, v in os.environ.items() if k != "DRL_PASSPHRASE"}  # sent on stdin
        env["DRL_WORKER_READY_FD"] = str(signal_ready)
        env["DRL_WORKER_PARENT"] = str(os.getpid())
        if self._spec.chain_url is not None:
            env["DRL_CHAIN_URL"] = self._spec.chain_url
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "ledger.cli.workers"],
                stdin=subprocess.PIPE,
                env=env,
                pass_fds=(signal_ready,),
            )
        finally:
            os.close(signal_ready)
        try:
            assert process.stdin is not None
            spec = {
                "host": self._spec.host,
                "port": self._spec.port,
                "anchor_poll": self._spec.anchor_poll,
                "passphrase": self._spec.passphrase,
            }
            process.stdin.write(json.dumps(spec).encode() + b"\n")
            process.stdin.close()
            _await_ready(process, ready)
        except BaseException:
            if process.poll() is None:
                process.kill()
                process.wait()
            raise
        finally:
            os.close(ready)
        return process

    def _watch(self) -> None:
        """Start again a sibling that exited while the broker runs (bounded per minute)."""
        while not self._stopping.wait(0.5):
            with self._lock:
                processes = list(self._processes)
            for process in processes:
                code = process.poll()
                if code is None or self._stopping.is_set():
                    continue
                now = time.monotonic()
                if len(self._restarts) == RESTARTS and now - self._restarts[0] < 60:
                    _say(f"worker {process.pid} exited ({code}); {RESTARTS} restarts in a minute")
                    replacement = None
                else:
                    self._restarts.append(now)
                    _say(f"worker {process.pid} exited ({code}); starting another")
                    try:
                        replacement = self._spawn()
                    except Exception as exc:  # reported; one process fewer serves
                        _say(f"a worker could not start: {exc}")
                        replacement = None
                with self._lock:
                    self._processes.remove(process)
                    if replacement is not None:
                        self._processes.append(replacement)


def _await_ready(process: subprocess.Popen[bytes], ready: int) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        readable, _, _ = select.select([ready], [], [], 0.2)
        if readable:
            if os.read(ready, 1) == b"1":
                return
            break  # the pipe closed: the sibling ended before it listened
        if process.poll() is not None:
            break
    code = process.poll()
    raise ConfigurationError(
        "a worker process of `drl serve --workers` did not start"
        + (f" (exit code {code}; its error is printed above)" if code is not None else ""),
        code=ErrorCode.WORKER_FAILED,
    )


def _say(message: str) -> None:
    print(f"drl serve: {message}", file=sys.stderr, flush=True)


# -- the sibling's side ---------------------------------------------------------------------


def _die_with_parent(parent: int) -> None:
    """Have the kernel SIGTERM this process when the first process dies (Linux)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the line above
        raise SystemExit(0)


def _exit_cleanly(signum: int, frame: Any) -> None:
    raise SystemExit(0)


def worker_main() -> None:
    """A sibling: open the broker as a replica, listen on the shared port, serve until told."""
    _die_with_parent(int(os.environ["DRL_WORKER_PARENT"]))
    ready = int(os.environ.pop("DRL_WORKER_READY_FD"))
    spec = json.loads(sys.stdin.readline())
    from ledger.cli import common
    from ledger.errors import LedgerError

    try:
        serve_worker(ready, spec)
    except LedgerError as exc:
        common.err.print(f"error [{exc.code}]: {exc.message}", markup=False, highlight=False)
        sys.exit(1)


def serve_worker(ready: int, spec: dict[str, Any]) -> None:
    from api.main import create_app
    from api.transfers import TransferLimits, WriteRate
    from ledger.broker import open_broker
    from ledger.cli.common import settings
    from ledger.cli.serve import run_app, share_broker_nonces

    cfg = settings()
    broker = open_broker(cfg, str(spec["passphrase"]))
    try:
        share_broker_nonces(broker, cfg)
        broker.start_anchoring(poll=float(spec["anchor_poll"]))
        sock = listening_socket(str(spec["host"]), int(spec["port"]), shared=True)
        app = create_app(
            broker,
            transfers=TransferLimits.from_settings(cfg),
            write_rate=WriteRate.from_settings(cfg),
        )
        signal.signal(signal.SIGTERM, _exit_cleanly)
        os.write(ready, b"1")
        os.close(ready)
        run_app(app, sock)
    finally:
        broker.close()


if __name__ == "__main__":
    worker_main()

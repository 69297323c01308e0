"""`drl serve --workers N`: N processes answering one port, each a replica of the first.

One broker process runs its Python on one core at a time (the GIL), so on a host with more
cores the first process starts N-1 siblings. Each sibling is a replica (docs/deploy.md) that
shares the first process's state:

- the port: every process binds its own socket with ``SO_REUSEPORT``, and the kernel spreads
  new connections over them;
- the chain: the embedded chain is served by the first process on a private Unix socket
  (:class:`ledger.chain.siblings.ChainSocket`); an external node is reached by each directly;
- the database, the blob store and the BROKER key, as replicas share them (the key's nonces
  under a file lock on SQLite, ``ledger.broker.open_broker``);
- anchoring: the lease of ``ledger.store.replicas`` makes one process the anchoring leader
  (each sibling has a replica name of its own).

A sibling gets the passphrase on its stdin (never in its environment or arguments), tells the
first process it is ready through a pipe, and holds the read end of a lifeline pipe whose only
writer is the first process: when that process ends, however it ends, the sibling reads end
of file and stops itself. A sibling that crashes while the broker runs is started again, at
most :data:`RESTARTS` times a minute (later ones wait); one that exits cleanly (SIGTERM or
SIGINT from a service manager stopping the whole group) is not.
"""

from __future__ import annotations

import contextlib
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
from dataclasses import asdict, dataclass, field, replace
from types import FrameType
from typing import Final

from ledger.errors import ConfigurationError
from ledger.protocol.codes import ErrorCode

#: How long a sibling may take to open the broker and listen.
START_TIMEOUT: Final = 120.0
#: Restarts of crashed siblings allowed per minute before the broker stops replacing them.
RESTARTS: Final = 5
#: How long stopping waits for a sibling to finish its requests before killing it.
STOP_TIMEOUT: Final = 10.0


@dataclass(frozen=True)
class WorkerSpec:
    """What a sibling needs to serve (sent on its stdin as one JSON line)."""

    host: str
    port: int
    anchor_poll: float
    passphrase: str = field(repr=False)
    chain_url: str | None = field(default=None, repr=False)


def bound_socket(host: str, port: int, *, shared: bool) -> socket.socket:
    """A socket bound to ``host:port`` (as uvicorn binds: IPv6 for a host with a colon) and
    listening at once: with ``SO_REUSEADDR`` Linux lets a second process bind a port that is
    bound but not yet listened on, and only the later ``listen`` fails, so a port claimed late
    was once taken by another broker while this one opened. Connections that arrive while the
    broker opens wait in the backlog until it serves. ``shared`` binds with ``SO_REUSEPORT``
    (the siblings)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        if shared:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        sock.listen(2048)  # uvicorn's default backlog
    except OSError as exc:  # in use, not this host's address, or a name that does not resolve
        sock.close()
        reason = exc.strerror or type(exc).__name__
        raise ConfigurationError(
            f"cannot listen on {host}:{port}: {reason}", code=ErrorCode.PORT_IN_USE
        ) from None
    return sock


def exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """SIGTERM's handler: uvicorn drains, re-raises the signal, and this ends the process
    through the ``finally`` blocks that close the broker (the default handler skipped them)."""
    raise SystemExit(0)


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
        self._spawned = 0
        # The siblings hold the read end; only this process holds the write end (not
        # inheritable), so the siblings see end of file once this process is gone.
        self._lifeline, self._lifeline_writer = os.pipe()

    def start(self) -> None:
        """Start every sibling and wait until each is ready (``ConfigurationError`` if not)."""
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
        if self._watcher is not None:
            self._watcher.join(timeout=START_TIMEOUT + 5)  # a start it began sees the flag
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
        for fd in (self._lifeline, self._lifeline_writer):
            with contextlib.suppress(OSError):
                os.close(fd)

    def _spawn(self) -> subprocess.Popen[bytes]:
        ready, signal_ready = os.pipe()
        self._spawned += 1
        env = {k: v for k, v in os.environ.items() if k != "DRL_PASSPHRASE"}  # sent on stdin
        if "DRL_REPLICA_ID" in env:  # each process holds the anchoring lease under its own name
            env["DRL_REPLICA_ID"] = f"{env['DRL_REPLICA_ID'][:40]}-w{self._spawned}"
        env["DRL_WORKER_READY_FD"] = str(signal_ready)
        env["DRL_WORKER_LIFELINE_FD"] = str(self._lifeline)
        if self._spec.chain_url is not None:
            env["DRL_CHAIN_URL"] = self._spec.chain_url
        try:
            # -P: the working directory is not put on sys.path (as for the drl entry point).
            # A session of its own: a terminal's Ctrl-C reaches the first process, which stops
            # the siblings after its own requests are done.
            process = subprocess.Popen(
                [sys.executable, "-P", "-m", "ledger.cli.workers"],
                stdin=subprocess.PIPE,
                env=env,
                pass_fds=(signal_ready, self._lifeline),
                start_new_session=True,
            )
        except BaseException:
            os.close(ready)
            raise
        finally:
            os.close(signal_ready)
        try:
            assert process.stdin is not None
            spec = asdict(replace(self._spec, chain_url=None))  # the URL goes in its env
            with contextlib.suppress(BrokenPipeError):  # it ended at once: reported below
                process.stdin.write(json.dumps(spec).encode() + b"\n")
                process.stdin.close()
            self._await_ready(process, ready)
        except BaseException:
            if process.poll() is None:
                process.kill()
            process.wait()
            raise
        finally:
            os.close(ready)
        return process

    def _await_ready(self, process: subprocess.Popen[bytes], ready: int) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and not self._stopping.is_set():
            readable, _, _ = select.select([ready], [], [], 0.2)
            if readable:
                if os.read(ready, 1) == b"1":
                    return
                break  # the pipe closed: the sibling ended before it was ready
            if process.poll() is not None:
                break
        code = process.poll()
        raise ConfigurationError(
            "a worker process of `drl serve --workers` did not start"
            + (f" (exit code {code}; its error is printed above)" if code is not None else ""),
            code=ErrorCode.WORKER_FAILED,
        )

    def _watch(self) -> None:
        """Start again a sibling that crashed while the broker runs (some per minute)."""
        while not self._stopping.wait(0.5):
            try:
                self._replace_crashed()
            except Exception as exc:  # the watcher outlives any one failure
                _say(f"watching workers failed: {type(exc).__name__}")

    def _replace_crashed(self) -> None:
        with self._lock:
            processes = list(self._processes)
        for process in processes:
            code = process.poll()
            if code is None or self._stopping.is_set():
                continue
            if code in (0, -signal.SIGTERM, -signal.SIGINT):
                _say(f"worker {process.pid} stopped")  # asked to: not restarted
                with self._lock:
                    self._processes.remove(process)
                continue
            now = time.monotonic()
            if len(self._restarts) == RESTARTS and now - self._restarts[0] < 60:
                continue  # retried once the oldest of the last restarts is a minute old
            self._restarts.append(now)
            _say(f"worker {process.pid} exited ({code}); starting another")
            try:
                replacement = self._spawn()
            except Exception as exc:  # reported; tried again on a later round
                _say(f"a worker could not start: {exc}")
                continue
            with self._lock:
                self._processes.remove(process)
                self._processes.append(replacement)


def _say(message: str) -> None:
    with contextlib.suppress(OSError):
        print(f"drl serve: {message}", file=sys.stderr, flush=True)


# -- the sibling's side ---------------------------------------------------------------------


def _follow_lifeline(fd: int) -> None:
    """Stop this sibling (as SIGTERM would) once the first process is gone."""

    def wait() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 1):
                pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=wait, name="drl-lifeline", daemon=True).start()


def worker_main() -> None:
    """A sibling: open the broker as a replica, listen on the shared port, serve until told."""
    signal.signal(signal.SIGTERM, exit_cleanly)
    signal.signal(signal.SIGINT, exit_cleanly)
    _follow_lifeline(int(os.environ.pop("DRL_WORKER_LIFELINE_FD")))
    ready = int(os.environ.pop("DRL_WORKER_READY_FD"))
    spec = WorkerSpec(**json.loads(sys.stdin.readline()))
    from ledger.cli.common import report
    from ledger.errors import LedgerError

    try:
        serve_worker(ready, spec)
    except LedgerError as exc:
        report(exc)
        sys.exit(1)


def serve_worker(ready: int, spec: WorkerSpec) -> None:
    from ledger.broker import open_broker
    from ledger.cli.common import settings
    from ledger.cli.serve import broker_app, run_app

    cfg = settings()
    with contextlib.ExitStack() as closing:
        sock = bound_socket(spec.host, spec.port, shared=True)
        closing.callback(sock.close)
        broker = open_broker(cfg, spec.passphrase)
        closing.callback(broker.close)
        broker.start_anchoring(poll=spec.anchor_poll)
        app = broker_app(broker, cfg)
        os.write(ready, b"1")
        os.close(ready)
        run_app(app, sock)


if __name__ == "__main__":
    worker_main()

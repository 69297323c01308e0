"""What a broker's worker processes share with its first process: the chain and the BROKER nonce.

``drl serve --workers N`` runs N processes on one port. The embedded chain's file is locked to
the process that opened it (``locking_mode=EXCLUSIVE``, like a node's data directory), so the
first process serves it to its siblings as a node serves its IPC socket:

- :class:`ChainSocket` -- JSON-RPC over a Unix socket in a private folder of its own (0700,
  the socket 0600: only the broker's user can connect; a temporary folder because a socket's
  path must be short, 107 bytes on Linux, which a broker home need not be), answered by the
  embedded chain with a node's answers (``EmbeddedChain.relay``). The siblings reach it with ``DRL_CHAIN_URL=file:///…``
  (:class:`ledger.chain.rpc.RpcChain`), so they run exactly the code a replica on a node runs.
  Only the methods a broker's chain client sends are answered: no ``evm_*`` time travel, no
  snapshots, no account management.
- :class:`FileNonces` -- the BROKER key's nonce taken under an exclusive ``flock`` on a file
  next to the chain, so processes sending from the one key never sign the same nonce. The lock
  is held from reading the node's pending count until the node accepted the transaction; the
  kernel drops it when a process dies, so a crash never leaves it held.
"""

from __future__ import annotations

import codecs
import contextlib
import fcntl
import json
import os
import shutil
import socket
import socketserver
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final

from ledger.chain.backend import ChainBackend
from ledger.errors import ConfigurationError
from ledger.private import private_file

#: The methods a broker's chain client sends (``ledger.chain.tx``, ``ledger.chain.client``).
SERVED: Final = frozenset(
    {
        "eth_chainId",
        "net_version",
        "eth_blockNumber",
        "eth_getBlockByNumber",
        "eth_getBlockByHash",
        "eth_call",
        "eth_estimateGas",
        "eth_gasPrice",
        "eth_maxPriorityFeePerGas",
        "eth_feeHistory",
        "eth_getBalance",
        "eth_getCode",
        "eth_getLogs",
        "eth_getTransactionCount",
        "eth_getTransactionByHash",
        "eth_getTransactionReceipt",
        "eth_sendRawTransaction",
    }
)
#: One request's bytes at most (a raw deployment transaction is well under 1 MiB).
MAX_REQUEST_BYTES: Final = 4 * 1024 * 1024
#: JSON-RPC error codes (JSON-RPC 2.0 section 5.1).
_PARSE_ERROR: Final = -32700
_INVALID_REQUEST: Final = -32600
_METHOD_NOT_FOUND: Final = -32601
_INTERNAL_ERROR: Final = -32603


class ChainSocket:
    """``backend``'s JSON-RPC served on a new private Unix socket until :meth:`close`."""

    def __init__(self, backend: ChainBackend) -> None:
        _remove_stale_folders()
        self._folder = Path(tempfile.mkdtemp(prefix=f"{_FOLDER_PREFIX}{os.getpid()}-"))  # 0700
        self.path = self._folder / "chain.ipc"
        self._backend = backend
        try:
            self._server = _Server(str(self.path), _Connection)
            # Tightened after the bind rather than by umask, which is the whole process's: the
            # folder is 0700 already, so nobody else could reach the socket meanwhile.
            os.chmod(self.path, 0o600)
        except OSError as exc:  # e.g. a TMPDIR so long the socket's path does not fit
            shutil.rmtree(self._folder, ignore_errors=True)
            raise ConfigurationError(
                f"cannot serve the chain to the worker processes at {self.path}: "
                f"{exc.strerror or exc}"
            ) from None
        except BaseException:
            shutil.rmtree(self._folder, ignore_errors=True)
            raise
        self._server.answer = self.answer
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="drl-chain-socket", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """The URL siblings set as ``DRL_CHAIN_URL``."""
        return self.path.as_uri()

    def answer(self, request: Any) -> dict[str, Any] | list[dict[str, Any]]:
        """One JSON-RPC request (or a batch) answered as a node answers it."""
        if isinstance(request, list):
            if not request:
                return _error(None, _INVALID_REQUEST, "empty batch")
            return [self._one(item) for item in request]
        return self._one(request)

    def _one(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict):
            return _error(None, _INVALID_REQUEST, "a request is a JSON object")
        request_id = request.get("id")
        method, params = request.get("method"), request.get("params", [])
        if not isinstance(method, str) or not isinstance(params, list):
            return _error(request_id, _INVALID_REQUEST, "method and params are required")
        if method not in SERVED:
            return _error(request_id, _METHOD_NOT_FOUND, f"{method[:64]} is not served here")
        try:
            answer = self._backend.relay(method, params)  # wrong-shaped params: -32602
        except Exception as exc:  # the chain closed, or failed: an answer, not a traceback
            return _error(request_id, _INTERNAL_ERROR, type(exc).__name__)
        # the backend's answer carries its own request counter as "id": the caller's wins
        return {**answer, "jsonrpc": "2.0", "id": request_id}

    def close(self) -> None:
        """Stop answering; connections still open end once their current answer is sent."""
        self._server.shutdown()
        self._server.server_close()
        self._server.end_connections()
        self._thread.join(timeout=5)
        shutil.rmtree(self._folder, ignore_errors=True)


_FOLDER_PREFIX: Final = "drl-chain-"


def _remove_stale_folders() -> None:
    """Remove the socket folders of our processes that were killed before they could."""
    for folder in Path(tempfile.gettempdir()).glob(f"{_FOLDER_PREFIX}*-*"):
        pid = folder.name.removeprefix(_FOLDER_PREFIX).split("-", 1)[0]
        try:
            if folder.stat().st_uid != os.getuid() or not pid.isdigit():
                continue
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue  # alive under another user, or gone meanwhile


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    answer: Callable[[Any], Any]

    def __init__(self, path: str, handler: type[socketserver.BaseRequestHandler]) -> None:
        super().__init__(path, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()
        self._ended = False

    def track(self, sock: socket.socket) -> bool:
        """Note an open connection; ``False`` once the server is closed."""
        with self._open_lock:
            if not self._ended:
                self._open.add(sock)
            return not self._ended

    def untrack(self, sock: socket.socket) -> None:
        with self._open_lock:
            self._open.discard(sock)

    def end_connections(self) -> None:
        """Wake every connection's reader with end-of-file (a daemon thread would otherwise
        keep answering from a backend its owner is about to close)."""
        with self._open_lock:
            self._ended = True
            for sock in self._open:
                with contextlib.suppress(OSError):  # already gone
                    sock.shutdown(socket.SHUT_RD)


class _Connection(socketserver.BaseRequestHandler):
    """One sibling's connection: JSON values one after another, each answered in turn (a
    line that is not JSON with a parse error, and the connection answers on)."""

    server: _Server

    def handle(self) -> None:
        sock: socket.socket = self.request
        if not self.server.track(sock):
            return
        try:
            # A sibling that went away mid-answer (killed, restarted) needs no answer.
            with contextlib.suppress(OSError):
                self._serve(sock)
        finally:
            self.server.untrack(sock)

    def _serve(self, sock: socket.socket) -> None:
        decoder = json.JSONDecoder()
        text = codecs.getincrementaldecoder("utf-8")(errors="replace")  # chunks split characters
        buffer = ""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buffer += text.decode(chunk)
            while True:
                buffer = buffer.lstrip()
                if not buffer:
                    break
                try:
                    request, end = decoder.raw_decode(buffer)
                except json.JSONDecodeError as exc:
                    line_end = buffer.find("\n", exc.pos)
                    if line_end != -1:
                        # A value merely cut short fails at the end of the input (or in a
                        # string, which holds no raw line break): this one is broken. Answer
                        # and drop through that line, as web3 ends each request with "\n".
                        sock.sendall(_encode(_error(None, _PARSE_ERROR, "parse error")))
                        buffer = buffer[line_end + 1 :]
                        continue
                    if len(buffer) > MAX_REQUEST_BYTES:
                        sock.sendall(_encode(_error(None, _PARSE_ERROR, "request too large")))
                        return
                    break  # wait for the rest of the value
                buffer = buffer[end:]
                sock.sendall(_encode(self.server.answer(request)))


def _encode(answer: Any) -> bytes:
    return json.dumps(answer, separators=(",", ":")).encode() + b"\n"


def _error(request_id: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}


#: How far the file may be ahead of a node's pending count and still be believed.
MAX_PENDING_LAG: Final = 64


class FileNonces:
    """A sender's nonces handed out under an exclusive lock on ``path`` (one machine).

    Implements ``ledger.chain.tx.NonceSource`` as ``SharedNonces`` does with a row: the nonce
    is the larger of the node's pending count and the next nonce recorded in the file (a node
    that is slow to count an accepted transaction as pending cannot hand one out twice; a file
    more than :data:`MAX_PENDING_LAG` ahead names another chain and is ignored), read
    with the lock held; the lock is kept until the transaction reached the node, and the next
    nonce is recorded only then. The file holds one JSON object: sender -> next nonce.
    """

    def __init__(self, path: Path) -> None:
        self.path = private_file(path)

    @contextmanager
    def reserve(self, sender: str, pending: Callable[[], int]) -> Iterator[int]:
        # Each reserve opens the file anew: a flock belongs to an open file, so this excludes
        # the other threads of this process as well as other processes.
        fd = os.open(self.path, os.O_RDWR | os.O_CLOEXEC)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd is closed
            recorded = _read_nonces(fd)
            counted, noted = pending(), int(recorded.get(sender, 0))
            # Far ahead of the node means the node's chain is not the one noted (a node reset,
            # a restored backup): the node's count is the truth then.
            nonce = noted if counted < noted <= counted + MAX_PENDING_LAG else counted
            yield nonce
            recorded[sender] = nonce + 1
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, json.dumps(recorded).encode())
        finally:
            os.close(fd)


def _read_nonces(fd: int) -> dict[str, int]:
    raw = b""
    while chunk := os.read(fd, 65536):
        raw += chunk
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}  # torn by a crash mid-write: the node's pending count still holds
    return value if isinstance(value, dict) else {}

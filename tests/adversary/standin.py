"""A stand-in broker: a reverse proxy in front of the real broker that forges chosen answers.

The attacker controls the broker host, so it can answer any request however it likes. The
stand-in forwards every request to the real ``drl serve`` (signatures and all) and lets a test
replace the answer of chosen routes: ``standin.on("GET", r"/v1/config", fn)`` where ``fn``
takes the real answer (:class:`Answer`) and returns the one to send. It records every request
it saw, so a test can show that the honest client never asked for something (``/v1/verify``)
or never sent something (a receipt).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

import httpx


#: Hop-by-hop and length headers the proxy sets itself.
_SKIP = frozenset({"host", "content-length", "transfer-encoding", "connection", "keep-alive"})


@dataclass
class Answer:
    """One HTTP answer, as the real broker gave it or as the stand-in forges it."""

    status: int
    headers: dict[str, str]
    body: bytes
    #: The request it answers (path with query, and its body).
    path: str = ""
    request_body: bytes = b""

    def json(self) -> object:
        import json

        return json.loads(self.body)

    def with_json(self, value: object) -> Answer:
        import json

        self.body = json.dumps(value).encode()
        self.headers["content-type"] = "application/json"
        return self


Rewrite = Callable[[Answer], Answer]


@dataclass
class StandIn:
    """The running proxy: its URL, the rewrites in force and the requests it saw."""

    upstream: str
    url: str = ""
    seen: list[tuple[str, str]] = field(default_factory=list)
    _rules: list[tuple[str, re.Pattern[str], Rewrite]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def on(self, method: str, path: str, rewrite: Rewrite) -> None:
        """Forge the answer of ``method`` requests whose path (no query) fully matches ``path``."""
        with self._lock:
            self._rules.append((method.upper(), re.compile(path), rewrite))

    def clear(self) -> None:
        """Back to an honest relay; forget what was seen."""
        with self._lock:
            self._rules.clear()
            self.seen.clear()

    def asked(self, method: str, pattern: str) -> list[str]:
        """Paths of the requests seen with ``method`` whose path matches ``pattern``."""
        rx = re.compile(pattern)
        with self._lock:
            return [p for m, p in self.seen if m == method and rx.fullmatch(urlsplit(p).path)]

    def _rule(self, method: str, path: str) -> Rewrite | None:
        with self._lock:
            self.seen.append((method, path))
            bare = urlsplit(path).path
            for m, rx, fn in reversed(self._rules):
                if m == method and rx.fullmatch(bare):
                    return fn
        return None


def _handler(standin: StandIn, client: httpx.Client) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            """Quiet."""

        def _relay(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else b""
            rewrite = standin._rule(self.command, self.path)
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _SKIP}
            try:
                real = client.request(
                    self.command, standin.upstream + self.path, content=body, headers=headers
                )
                answer = Answer(
                    real.status_code,
                    {k: v for k, v in real.headers.items() if k.lower() not in _SKIP},
                    real.content,
                    self.path,
                    body,
                )
                if rewrite is not None:
                    answer = rewrite(answer)
            except Exception as exc:  # a test's forgery failed: say so, loudly
                answer = Answer(599, {"content-type": "text/plain"}, repr(exc).encode())
            self.send_response(answer.status)
            for k, v in answer.headers.items():
                if k.lower() not in _SKIP:
                    self.send_header(k, v)
            self.send_header("content-length", str(len(answer.body)))
            self.end_headers()
            self.wfile.write(answer.body)

        do_GET = do_POST = do_PUT = do_DELETE = _relay  # noqa: N815

    return Handler


@contextmanager
def stand_in(upstream: str) -> Iterator[StandIn]:
    """A stand-in broker relaying to ``upstream`` on a free loopback port."""
    standin = StandIn(upstream=upstream.rstrip("/"))
    with httpx.Client(timeout=120) as client:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(standin, client))
        server.daemon_threads = True
        standin.url = f"http://127.0.0.1:{server.server_address[1]}"
        thread = threading.Thread(target=server.serve_forever, name="stand-in", daemon=True)
        thread.start()
        try:
            yield standin
        finally:
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)

"""A stand-in broker: a reverse proxy in front of the real broker that forges chosen answers.

The attacker controls the broker host, so it can answer any request however it likes. The
stand-in forwards every request to the real ``drl serve`` (signatures and all) and lets a test
replace the answer of chosen routes: ``standin.on("GET", r"/v1/config", fn)`` where ``fn``
takes the real answer (:class:`Answer`) and returns the one to send. It records every request
it saw, so a test can show that the honest client never asked for something (``/v1/verify``)
or never sent something (a receipt).
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from eth_account.signers.local import LocalAccount

from ledger.merkle import proofs as merkle
from ledger.protocol.checkpoint import Checkpoint, sign_checkpoint

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

    def json(self) -> Any:
        return json.loads(self.body)

    def with_json(self, value: object) -> Answer:
        self.status = 200
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

        def log_message(self, format: str, *args: object) -> None:
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

        do_GET = do_POST = do_PUT = do_DELETE = _relay

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


class ForgedLog:
    """Another history of the flow log, served by a stand-in under the BROKER key's signature.

    ``leaves()`` gives the raw records the stand-in shows, asked anew for every request (for a
    fork or a rewrite: the real ones read from broker.db, some changed or added); the
    checkpoint over them is signed with the real BROKER key (the attacker holds it), and
    records and proofs are computed from them, so the forged history is self-consistent: only
    a checkpoint kept from before can tell.
    """

    def __init__(
        self, leaves: Callable[[], list[bytes]], broker: LocalAccount, origin: str
    ) -> None:
        self.leaves = leaves
        self.broker = broker
        self.origin = origin

    def install(self, standin: StandIn) -> None:
        standin.on("GET", r"/v1/log/checkpoint", self._checkpoint)
        standin.on("GET", r"/v1/log/records", self._page)
        standin.on("GET", r"/v1/log/records/\d+", self._one)
        standin.on("GET", r"/v1/log/proofs/consistency", self._consistency)
        standin.on("GET", r"/v1/log/proofs/inclusion", self._inclusion)

    @staticmethod
    def _record(leaves: list[bytes], seq: int) -> dict[str, object]:
        leaf = leaves[seq]
        record = json.loads(leaf)
        return {
            "seq": seq,
            "action": record["signed"]["action"],
            "actor": record["signed"]["actor"],
            "dataset_id": None,
            "leaf": leaf.decode(),
            "leaf_hash": "0x" + merkle.leaf_hash(leaf).hex(),
        }

    def _checkpoint(self, a: Answer) -> Answer:
        leaves = self.leaves()
        root = merkle.root(leaves)
        cp = Checkpoint(origin=self.origin, size=len(leaves), root=root)
        note = sign_checkpoint(self.broker, cp)
        return a.with_json({"note": note, "size": len(leaves), "root": "0x" + root.hex()})

    def _page(self, a: Answer) -> Answer:
        leaves, q = self.leaves(), _query(a.path)
        after, limit = int(q.get("after", "-1")), int(q.get("limit", "100"))
        seqs = range(max(after + 1, 0), min(after + 1 + limit, len(leaves)))
        data = [self._record(leaves, s) for s in seqs]
        return a.with_json({"data": data, "count": len(data)})

    def _one(self, a: Answer) -> Answer:
        seq = int(urlsplit(a.path).path.rsplit("/", 1)[1])
        return a.with_json(self._record(self.leaves(), seq))

    def _consistency(self, a: Answer) -> Answer:
        leaves, q = self.leaves(), _query(a.path)
        old, size = int(q["old_size"]), int(q.get("tree_size", len(leaves)))
        path = merkle.consistency_proof(old, leaves[:size])
        return a.with_json(self._proof(leaves, "consistency", size, path, old_size=old))

    def _inclusion(self, a: Answer) -> Answer:
        leaves, q = self.leaves(), _query(a.path)
        seq, size = int(q["seq"]), int(q.get("tree_size", len(leaves)))
        path = merkle.inclusion_proof(seq, leaves[:size])
        return a.with_json(self._proof(leaves, "inclusion", size, path, seq=seq))

    @staticmethod
    def _proof(
        leaves: list[bytes], kind: str, size: int, path: list[bytes], **extra: int
    ) -> dict[str, object]:
        return {
            "kind": kind,
            "tree_size": size,
            "root": "0x" + merkle.root(leaves[:size]).hex(),
            "path": ["0x" + p.hex() for p in path],
            **extra,
        }


def _query(path: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}

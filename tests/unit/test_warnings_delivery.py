"""Hooks (ledger.client.alerts): each new warning reaches a webhook and a command once.

The webhook is a real HTTP server from the standard library on a loopback port; the command
hook runs a real program (this Python) that appends what it reads on stdin to a file.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from ledger.audit import AuditState
from ledger.audit.warnings import EarlyWarning, Hooks, Rules, load_rules
from ledger.client.alerts import deliver
from tests.support.net import free_port

#: A program that appends its stdin, as one line, to the file it is given.
APPEND = "import sys; open(sys.argv[1], 'ab').write(sys.stdin.buffer.read() + b'\\n')"


def warning(n: int, severity: str = "warning") -> EarlyWarning:
    return EarlyWarning(
        rule="repeated-refusals",
        severity=severity,
        subject=f"member 0x{n:040x}",
        message=f"refused {n} times",
        first_seen="2025-06-01T12:00:00+00:00",
        records=(n, n + 1),
        key=f"repeated-refusals|member 0x{n:040x}|from record {n}",
    )


@dataclass
class Receiver:
    """What the webhook server was sent, and the status it answers with."""

    url: str
    bodies: list[dict[str, Any]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    status: int = 204


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver(url="")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers["Content-Length"])
            assert self.headers["Content-Type"] == "application/json"
            got.bodies.append(json.loads(self.rfile.read(length)))
            got.paths.append(self.path)
            self.send_response(got.status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    got.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T0KEN-IN-PATH"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()


def with_hooks(**hooks: Any) -> Rules:
    return replace(load_rules(), hooks=Hooks(**hooks))


def keys(body: dict[str, Any]) -> list[str]:
    return [w["key"] for w in body["warnings"]]


def test_the_webhook_receives_each_warning_once(receiver: Receiver) -> None:
    state = AuditState.in_memory()
    rules = with_hooks(webhook=receiver.url)
    first, second, third = warning(1), warning(2, "critical"), warning(3)
    report = deliver(state, [first, second], rules)
    assert report.ok
    assert report.sent == {"webhook": [first.key, second.key]}
    (body,) = receiver.bodies
    assert body == {"v": 1, "log": None, "warnings": [first.to_json(), second.to_json()]}
    assert receiver.paths == ["/hooks/T0KEN-IN-PATH"]
    assert deliver(state, [first, second], rules).sent == {}
    assert len(receiver.bodies) == 1
    report = deliver(state, [first, second, third], rules)
    assert report.sent == {"webhook": [third.key]}
    assert keys(receiver.bodies[-1]) == [third.key]


def test_a_failing_webhook_is_reported_without_its_secrets_and_tried_again(
    receiver: Receiver,
) -> None:
    state = AuditState.in_memory()
    url = receiver.url.replace("http://", "http://alert:s3cret@")
    rules = with_hooks(webhook=url)
    receiver.status = 500
    report = deliver(state, [warning(1)], rules)
    shown = receiver.url.replace("http://", "http://alert:***@").replace(
        "/hooks/T0KEN-IN-PATH", "/..."
    )
    assert report.failures == [f"webhook {shown}: answered 500"]
    assert report.sent == {}
    receiver.status = 200
    report = deliver(state, [warning(1)], rules)
    assert (report.ok, report.sent) == (True, {"webhook": [warning(1).key]})
    assert [keys(b) for b in receiver.bodies] == [[warning(1).key]] * 2


def test_an_unreachable_webhook_is_a_failure_not_an_error() -> None:
    state = AuditState.in_memory()
    port = free_port()
    url = f"https://user:pw@127.0.0.1:{port}/T0KEN?key=SECRET"
    report = deliver(state, [warning(1)], with_hooks(webhook=url, timeout_seconds=2))
    (failure,) = report.failures
    assert failure.startswith(f"webhook https://user:***@127.0.0.1:{port}/...?...: ")
    assert "ConnectError" in failure
    for secret in ("pw@", "T0KEN", "SECRET"):
        assert secret not in failure


def test_the_command_receives_new_warnings_on_stdin_once(tmp_path: Path) -> None:
    state = AuditState.in_memory()
    out = tmp_path / "received.jsonl"
    rules = with_hooks(command=(sys.executable, "-c", APPEND, str(out)))
    assert deliver(state, [warning(1)], rules).sent == {"command": [warning(1).key]}
    assert deliver(state, [warning(1)], rules).sent == {}
    assert deliver(state, [warning(1), warning(2)], rules).sent == {"command": [warning(2).key]}
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [keys(line) for line in lines] == [[warning(1).key], [warning(2).key]]


def test_a_failing_command_is_reported_and_tried_again(tmp_path: Path) -> None:
    state = AuditState.in_memory()
    failing = (sys.executable, "-c", "import sys; sys.stderr.write('pager down'); sys.exit(3)")
    report = deliver(state, [warning(1)], with_hooks(command=failing))
    assert report.failures == [f"command {sys.executable}: exited 3: pager down"]
    missing = ("/nonexistent/pager",)
    (failure,) = deliver(state, [warning(1)], with_hooks(command=missing)).failures
    assert failure.startswith("command /nonexistent/pager: cannot run: ")
    slow = (sys.executable, "-c", "import time; time.sleep(30)")
    (failure,) = deliver(
        state, [warning(1)], with_hooks(command=slow, timeout_seconds=0.3)
    ).failures
    assert failure == f"command {sys.executable}: still running after 0.3 s (stopped)"
    out = tmp_path / "received.jsonl"
    working = (sys.executable, "-c", APPEND, str(out))
    assert deliver(state, [warning(1)], with_hooks(command=working)).sent == {
        "command": [warning(1).key]
    }


def test_each_hook_keeps_its_own_deliveries(receiver: Receiver, tmp_path: Path) -> None:
    state = AuditState.in_memory()
    out = tmp_path / "received.jsonl"
    rules = with_hooks(webhook=receiver.url, command=(sys.executable, "-c", APPEND, str(out)))
    receiver.status = 503
    report = deliver(state, [warning(1)], rules)
    assert report.sent == {"command": [warning(1).key]}
    assert len(report.failures) == 1
    receiver.status = 204
    assert deliver(state, [warning(1)], rules).sent == {"webhook": [warning(1).key]}
    assert len(out.read_text().splitlines()) == 1


def test_deliveries_are_kept_in_the_state_file(receiver: Receiver, tmp_path: Path) -> None:
    path = tmp_path / "audit.sqlite"
    rules = with_hooks(webhook=receiver.url)
    with AuditState.open(path) as state:
        deliver(state, [warning(1)], rules)
    with AuditState.open(path) as state:
        assert deliver(state, [warning(1)], rules).sent == {}
    assert len(receiver.bodies) == 1

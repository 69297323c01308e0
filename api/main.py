"""The broker's FastAPI app: routes under /v1, one error handler, body size and depth limits."""

from __future__ import annotations

import importlib
import logging
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio.to_thread
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import docs, errors
from api.auth import admission_queues
from api.routes import (
    access,
    audit,
    chain,
    datasets,
    exchange,
    issues,
    members,
    standards,
    system,
)
from api.transfers import TransferLimits, Transfers, WriteRate
from ledger.broker import Broker
from ledger.errors import PayloadTooLarge
from ledger.protocol import http as auth
from ledger.protocol.codes import ErrorCode
from ledger.services.admission import Admission
from ledger.services.system import JSON_BODY_LIMIT

log = logging.getLogger("drl.broker")

#: JSON bodies may nest arrays and objects this deep (the deepest the API takes is about 5).
JSON_DEPTH_LIMIT: Final = 64
#: The recursion limit the broker runs with. Importing py_ecc (through eth-account) and py-evm
#: raises it to 100,000 for the whole process, far past what the C stack holds: a deeply nested
#: body (or anything else recursing on input) would then crash the process instead of raising
#: RecursionError. The embedded chain's calls nest a few contracts deep, far below this.
RECURSION_LIMIT: Final = 4000
#: A JSON string (escapes included): removed before the brackets are counted.
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_A_BRACKET = bytes(sorted(set(range(256)) - set(b"[]{}")))


def restore_recursion_limit() -> None:
    """Undo what py_ecc and py-evm's imports did to the recursion limit (after importing both)."""
    for module in ("py_ecc", "eth"):
        importlib.import_module(module)
    sys.setrecursionlimit(max(1000, min(sys.getrecursionlimit(), RECURSION_LIMIT)))


def too_deep(body: bytes, limit: int = JSON_DEPTH_LIMIT) -> bool:
    """Whether ``body`` nests ``[``/``{`` (outside JSON strings) more than ``limit`` deep.

    Cheap: counts first (no body with at most ``limit`` brackets can be too deep), then walks
    only the brackets left once the strings are cut out. An unterminated string leaves its
    brackets counted, which only refuses what the JSON parser would refuse anyway.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for byte in _JSON_STRING.sub(b"", body).translate(None, _NOT_A_BRACKET):
        if byte in b"[{":
            depth += 1
            if depth > limit:
                return True
        else:
            depth -= 1
    return False


class BodyLimit:
    """Refuse bodies over the limit (413) before they are read; uploads have their own limit."""

    def __init__(self, app: ASGIApp, *, limit: int, upload_limit: int) -> None:
        self.app = app
        self.limit = limit
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_upload = scope["method"] == "PUT" and scope["path"].startswith("/v1/datasets/uploads/")
        limit = self.upload_limit if is_upload else self.limit
        headers = dict(scope.get("headers") or [])
        declared = auth.content_length(headers.get(b"content-length"))
        if declared is not None and not 0 <= declared <= limit:
            await _too_large(send, limit)
            return
        if not is_upload:
            # JSON bodies are small and read whole anyway: read them here, so a body sent
            # without a Content-Length (chunked) is refused with the same 413.
            body = await _read_body(receive, limit)
            if body is None:
                await _too_large(send, limit)
                return
            # json.loads recurses once per level: refuse deep nesting before FastAPI parses.
            if too_deep(body):
                await _refuse(
                    send,
                    400,
                    ErrorCode.BODY_TOO_DEEP,
                    f"the body nests arrays or objects more than {JSON_DEPTH_LIMIT} deep",
                )
                return
            await self.app(scope, _replay(body, receive), send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise PayloadTooLarge(f"body exceeds {limit} bytes")
            return message

        await self.app(scope, limited, send)


async def _read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or ``None`` as soon as it exceeds ``limit``."""
    parts: list[bytes] = []
    seen = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        part = message.get("body", b"")
        seen += len(part)
        if seen > limit:
            return None
        parts.append(part)
        if not message.get("more_body", False):
            break
    return b"".join(parts)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields ``body`` once, then defers to the server (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _too_large(send: Send, limit: int) -> None:
    await _refuse(send, 413, ErrorCode.PAYLOAD_TOO_LARGE, f"body exceeds {limit} bytes")


async def _refuse(send: Send, status: int, code: ErrorCode, message: str) -> None:
    raw = errors.ErrorBody(code=code, message=message).model_dump_json().encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(raw)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": raw})


@asynccontextmanager
async def _closing_batches(app: FastAPI) -> AsyncIterator[None]:
    """At shutdown, the batching threads finish what they hold and stop (waited for off the
    event loop, which keeps serving the requests those batches answer)."""
    yield
    for coalescer in (app.state.admission, app.state.standings, app.state.requests):
        if not await anyio.to_thread.run_sync(coalescer.close):
            log.warning("a batch was still running at shutdown; its requests may fail")


def create_app(
    broker: Broker,
    *,
    transfers: TransferLimits | None = None,
    write_rate: WriteRate | None = None,
) -> FastAPI:
    """The app around an opened broker core (also lowers the recursion limit: see above)."""
    restore_recursion_limit()
    app = FastAPI(
        lifespan=_closing_batches,
        title="Data Rights Ledger broker",
        docs_url=None,  # served offline by api.docs
        redoc_url=None,
        version="1",
        # FastAPI's OpenTelemetry hooks look for providers on every request; the broker
        # configures none, so they are off rather than asked each time.
        telemetry={"tracing": False, "metrics": False, "logs": False},
        description=(
            "A blind broker for end-to-end encrypted data exchange between departments and "
            "enterprises. Every request is signed by the member's key (see the security "
            "scheme); every state change also carries the actor's EIP-712 signed action, which "
            "is relayed on chain where rights change and appended to the anchored flow log."
        ),
    )
    app.state.ledger = broker.ledger
    app.state.anchorer = broker.anchorer
    admission = Admission(broker.ledger)  # one pruning clock for both queues that record nonces
    app.state.admission, app.state.standings = admission_queues(admission, broker.ledger)
    app.state.requests = access.request_coalescer(broker.ledger, admission)
    app.state.transfers = Transfers(transfers or TransferLimits())
    app.state.write_rate = write_rate or WriteRate()
    errors.install(app)
    docs.mount_docs(app)
    # Routes are matched in this order, one by one: the busiest routers first (matching a
    # signed write's path through every router before it cost 5% of its CPU).
    for module in (access, datasets, system, members, exchange, audit, chain, standards, issues):
        app.include_router(module.router, prefix="/v1")
    app.add_middleware(
        BodyLimit, limit=JSON_BODY_LIMIT, upload_limit=broker.ledger.max_upload_bytes + 1
    )
    return app


def openapi_of(broker: Broker) -> dict[str, Any]:
    return create_app(broker).openapi()

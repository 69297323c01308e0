"""Who may talk to the console: this machine's browser holding this run's token, nobody else.

The console holds a member's unlocked keys, so every request passes one gate (an ASGI
middleware in front of every route, static files included), in this order:

1. **Host** must be ``127.0.0.1:PORT`` or ``localhost:PORT``: a DNS-rebinding page that made
   another name resolve to 127.0.0.1 still sends its own name here (403).
2. **Origin**, when present, must be the console's own; a POST must carry it (browsers always
   do) — a page on another origin cannot drive the console (403).
3. **The token**, created at each start: ``?token=`` sets an ``HttpOnly``, ``SameSite=Strict``
   cookie and redirects to the same path without it (so it leaves no trace in history or in a
   Referer); afterwards the cookie must carry it. Anything else is a 401 page.

Every answer carries a strict Content-Security-Policy (this origin only, no inline script),
``no-store`` and ``no-referrer``. Nothing here ever sees a key or a passphrase.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from typing import Final
from urllib.parse import parse_qsl, urlencode

from starlette.types import ASGIApp, Message, Receive, Scope, Send

CSP: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; form-action 'self'; base-uri 'none'; "
    "frame-ancestors 'none'"
)
HEADERS: Final[tuple[tuple[bytes, bytes], ...]] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
)
SAFE_METHODS: Final = frozenset({"GET", "HEAD"})


def new_token() -> str:
    """A fresh random token (256 bits), one per console start."""
    return secrets.token_urlsafe(32)


@dataclass(frozen=True)
class Gate:
    """The console's address and token; decides each request (see the module docstring)."""

    port: int
    token: str
    hosts: tuple[str, ...] = field(default=("127.0.0.1", "localhost"))

    @property
    def cookie(self) -> str:
        """The cookie's name: one per port, so two consoles on this machine do not clash."""
        return f"drl_console_{self.port}"

    @property
    def origins(self) -> frozenset[str]:
        return frozenset(f"http://{host}:{self.port}" for host in self.hosts)

    @property
    def url(self) -> str:
        """What the member opens: the token in the URL, once."""
        return f"http://127.0.0.1:{self.port}/?token={self.token}"

    def host_ok(self, host: str | None) -> bool:
        return host is not None and host.lower() in {f"{h}:{self.port}" for h in self.hosts}

    def origin_ok(self, origin: str | None, method: str) -> bool:
        if origin is None:
            return method in SAFE_METHODS
        return origin.lower() in self.origins

    def token_ok(self, value: str | None) -> bool:
        return value is not None and secrets.compare_digest(value.encode(), self.token.encode())


class GateMiddleware:
    """Applies a :class:`Gate` to every HTTP request before the app sees it; ``refused``
    renders the page a refused request gets (status, why: no data, no script)."""

    def __init__(self, app: ASGIApp, *, gate: Gate, refused: Callable[[int, str], str]) -> None:
        self.app = app
        self.gate = gate
        self.refused = refused

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = _headers(scope["headers"])
        method = str(scope["method"]).upper()
        gate = self.gate
        if not gate.host_ok(headers.get("host")):
            await self._refuse(send, 403, "This console answers only on 127.0.0.1 and localhost.")
            return
        if not gate.origin_ok(headers.get("origin"), method):
            await self._refuse(send, 403, "Requests from another origin are refused.")
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        offered = [value for key, value in query if key == "token"]
        if offered:
            if method not in SAFE_METHODS or not gate.token_ok(offered[-1]):
                await self._refuse(send, 401, "That token is not this console's.")
                return
            rest = urlencode([(k, v) for k, v in query if k != "token"])
            await self._sign_in(send, str(scope.get("path") or "/") + (f"?{rest}" if rest else ""))
            return
        if not gate.token_ok(_cookies(headers.get("cookie")).get(gate.cookie)):
            await self._refuse(
                send, 401, "Open the link `drl console` printed (it carries this run's token)."
            )
            return

        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, secured)

    async def _sign_in(self, send: Send, location: str) -> None:
        cookie = (
            f"{self.gate.cookie}={self.gate.token}; Path=/; HttpOnly; SameSite=Strict"
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 303,
                "headers": [
                    (b"location", location.encode()),
                    (b"set-cookie", cookie),
                    (b"content-length", b"0"),
                    *HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": b""})

    async def _refuse(self, send: Send, status: int, why: str) -> None:
        body = self.refused(status, why).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"text/html; charset=utf-8"),
                    (b"content-length", str(len(body)).encode()),
                    *HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _headers(raw: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """Request headers by lower-case name (the first of repeated ones)."""
    found: dict[str, str] = {}
    for name, value in raw:
        found.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))
    return found


def _cookies(header: str | None) -> dict[str, str]:
    if not header:
        return {}
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(header)
    except Exception:  # a malformed Cookie header is no cookie
        return {}
    return {name: morsel.value for name, morsel in jar.items()}

"""URLs fit for messages and logs: no password, and for node URLs no path (API keys live there).

``DRL_DATABASE_URL`` may carry a password (``postgresql://user:secret@host/db``, or
``?password=...``) and ``DRL_CHAIN_URL`` credentials or a provider's API key in its path
(``https://node.example/v3/<key>``). Anything printed or logged names them through
:func:`mask_url`; error text from a driver goes through :func:`scrub` as well.

Messages that reach a client (an HTTP error body) name no endpoint at all: a client has no
business knowing where the broker's node or database lives. :func:`scrub_endpoints` removes
URLs, ``host=...``/``port=...`` pairs (as urllib3 and libpq write them) and ``host:port``
from text whose origin is a transport or driver.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

HIDDEN = "***"
UNPARSEABLE = "<a URL that cannot be parsed (hidden)>"


def mask_url(url: str, *, keep_path: bool = True) -> str:
    """``url`` with its password replaced by ``***`` and its query and fragment dropped.

    ``keep_path=False`` also drops the path (shown as ``/...``): right for chain node URLs,
    whose path may be an API key. A string that does not parse as ``scheme://...`` is not
    shown at all.
    """
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return UNPARSEABLE
    if not parts.scheme or not url.startswith(f"{parts.scheme}://"):
        return UNPARSEABLE
    user = ""
    if parts.username is not None:
        user = parts.username + (f":{HIDDEN}" if parts.password is not None else "") + "@"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # IPv6
    shown = f"{parts.scheme}://{user}{host}" + (f":{port}" if port is not None else "")
    if keep_path:
        shown += parts.path
    elif parts.path not in ("", "/"):
        shown += "/..."
    if parts.query or parts.fragment:
        shown += "?..."
    return shown


def scrub(text: str, url: str) -> str:
    """``text`` with ``url``'s password and query (which may hold one) replaced by ``***``."""
    try:
        parts = urlsplit(url)
        secrets = [url, parts.password or "", parts.query]
    except ValueError:
        secrets = [url]
    for secret in sorted(filter(None, secrets), key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    return text


ENDPOINT = "<endpoint>"
_URL = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>),]+")
_KEY_VALUE = re.compile(
    r"\b(host|hostaddr|port|url|dbname|user)\s*=\s*('[^']*'|\"[^\"]*\"|[^\s,)]+)"
)
#: libpq: ``connection to server at "10.0.0.5", port 5432 failed`` or ``on socket "/run/..."``.
_LIBPQ = re.compile(r"(?:\"[^\"]*\", port \d+|socket \"[^\"]*\")")
_HOST_PORT = re.compile(
    r"(?<![\w.:])(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:]+\]|localhost|"
    r"[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)+):\d{1,5}\b"
)


def scrub_endpoints(text: str) -> str:
    """``text`` without URLs, ``host=``/``port=`` values or ``host:port`` pairs (for clients)."""
    text = _URL.sub(ENDPOINT, text)
    text = _LIBPQ.sub(ENDPOINT, text)
    text = _KEY_VALUE.sub(lambda m: f"{m.group(1)}={HIDDEN}", text)
    return _HOST_PORT.sub(ENDPOINT, text)

"""URLs fit for messages and logs: no password, and for node URLs no path (API keys live there).

``DRL_DATABASE_URL`` may carry a password (``postgresql://user:secret@host/db``, or
``?password=...``) and ``DRL_CHAIN_URL`` credentials or a provider's API key in its path
(``https://node.example/v3/<key>``). Anything printed or logged names them through
:func:`mask_url`; error text from a driver goes through :func:`scrub` as well.
"""

from __future__ import annotations

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

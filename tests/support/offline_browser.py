"""What the browser tests share: Debian's chromium, quiet flags, and the traffic a page made.

Playwright's own browser download is not reachable here; Debian's chromium is (shared/DESIGN.md).
A test routes every request through :class:`Traffic` and aborts what leaves its origin.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

CHROMIUM: Final = Path("/usr/bin/chromium")
#: No sandbox (root), and nothing the browser would fetch on its own.
CHROMIUM_ARGS: Final = (
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


@dataclass
class Traffic:
    """Every request the page made, and the ones that left ``origin``."""

    origin: str
    seen: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def is_local(self, url: str) -> bool:
        parts = urlsplit(url)
        if parts.scheme in ("data", "blob", "about"):
            return True
        return f"{parts.scheme}://{parts.netloc}" == self.origin

    @property
    def foreign(self) -> list[str]:
        return [url for url in self.seen if not self.is_local(url)]

"""Waiting for a condition, and the child processes of a process (Linux /proc)."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path


def wait_until(condition: Callable[[], object], timeout: float = 20.0, every: float = 0.1) -> bool:
    """Whether ``condition()`` became true within ``timeout`` seconds (polled ``every``)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every)
    return False


def children(pid: int) -> list[int]:
    """``pid``'s child processes: a child belongs to the thread that started it, so every
    thread's list counts (``drl serve --workers`` restarts siblings from a thread)."""
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            found += [int(child) for child in (task / "children").read_text().split()]
        except FileNotFoundError:  # the thread ended
            continue
    return sorted(found)

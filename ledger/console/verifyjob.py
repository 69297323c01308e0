""" "Verify now": one verification at a time in a background thread, its progress polled.

The page asks for a run (``POST /verify``) and polls ``/data/verify``; the run reports through
:data:`ledger.audit.Progress` (stage, done, total). A second request while one runs joins it.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from ledger.audit import Progress
from ledger.errors import LedgerError

Run = Callable[[Progress], dict[str, Any]]
"""A verification: reports progress, returns what it found (JSON-ready)."""


@dataclass
class VerifyStatus:
    """Where the current (or last) run stands."""

    running: bool = False
    runs: int = 0
    stage: str = ""
    done: int = 0
    total: int = 0
    started_at: str | None = None
    finished_at: str | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    history: list[str] = field(default_factory=list)


class VerifyJob:
    """Runs ``run`` on request, never twice at once, and keeps its status for the page."""

    def __init__(self, run: Run) -> None:
        self._run = run
        self._lock = threading.Lock()
        self._status = VerifyStatus()
        self._thread: threading.Thread | None = None

    def start(self) -> bool:
        """Start a run unless one is running; returns whether this call started it."""
        with self._lock:
            if self._status.running:
                return False
            self._status = VerifyStatus(
                running=True,
                runs=self._status.runs + 1,
                stage="starting",
                started_at=_now(),
                history=self._status.history[-9:],
            )
            self._thread = threading.Thread(target=self._work, name="drl-console-verify")
            self._thread.daemon = True
            self._thread.start()
            return True

    def wait(self, timeout: float | None = None) -> None:
        """Wait for the current run to end (tests, and a clean stop)."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)

    def status(self) -> dict[str, Any]:
        with self._lock:
            return asdict(self._status)

    def _progress(self, stage: str, done: int, total: int) -> None:
        with self._lock:
            self._status.stage, self._status.done, self._status.total = stage, done, total

    def _work(self) -> None:
        result: dict[str, Any] | None = None
        error: str | None = None
        try:
            result = self._run(self._progress)
        except LedgerError as exc:
            error = f"[{exc.code}] {exc.message}"
        except Exception as exc:  # a bug must reach the page, not kill the thread silently
            error = f"{type(exc).__name__}: {exc}"
        with self._lock:
            s = self._status
            s.running, s.stage, s.finished_at = False, "done", _now()
            s.result, s.error = result, error
            outcome = error or ("ok" if result and result.get("ok") else "problems found")
            s.history.append(f"{s.finished_at} {outcome}")


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")

"""Uploads and downloads that hostile or slow clients cannot use to stall the broker.

A transfer holds a connection and, for an upload, a worker thread for as long as the client
keeps it open. Without limits, forty clients each sending one byte a second held every thread
of the pool the other routes run on. So every transfer:

- takes a slot: at most ``per_member`` at once for one member (429 ``too_many_transfers``) and
  ``total`` for the replica (503 ``transfers_busy``), checked before anything is recorded;
- runs its worker on a thread limiter of its own (``Transfers.limiter``, as many threads as
  slots), never on the pool of the other routes;
- is paced (:class:`Pace`): no byte moved for ``idle_seconds``, or fewer than
  ``min_bytes_per_second`` on average once ``grace_seconds`` have passed, ends it (408
  ``transfer_stalled`` for an upload; a download's connection is closed).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Final

import anyio
from fastapi.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ledger.errors import InvalidInput, LedgerError, Throttled
from ledger.protocol.codes import ErrorCode
from ledger.settings import Settings

log = logging.getLogger("drl.transfers")


class TransferStalled(InvalidInput):
    """The client moved no byte for too long, or too few on average."""

    code = ErrorCode.TRANSFER_STALLED


@dataclass(frozen=True)
class TransferLimits:
    idle_seconds: float = 30.0
    min_bytes_per_second: int = 16 * 1024
    grace_seconds: float = 30.0
    per_member: int = 4
    total: int = 32

    @classmethod
    def from_settings(cls, settings: Settings) -> TransferLimits:
        return cls(
            idle_seconds=settings.transfer_idle_seconds,
            min_bytes_per_second=settings.transfer_min_bytes_per_second,
            grace_seconds=settings.transfer_grace_seconds,
            per_member=settings.transfers_per_member,
            total=settings.transfers_total,
        )


class Pace:
    """One transfer's progress against the idle timeout and the minimum rate."""

    def __init__(self, limits: TransferLimits, clock: Callable[[], float] = time.monotonic):
        self.limits = limits
        self._clock = clock
        self._started = clock()
        self.moved = 0

    def add(self, size: int) -> None:
        """Count ``size`` more bytes; raises once the average is too low after the grace."""
        self.moved += size
        elapsed = self._clock() - self._started
        limits = self.limits
        if elapsed > limits.grace_seconds and self.moved < limits.min_bytes_per_second * elapsed:
            raise TransferStalled(
                f"the transfer ran below {limits.min_bytes_per_second} bytes/s on average"
            )

    def idle(self) -> TransferStalled:
        return TransferStalled(f"the transfer moved no byte for {self.limits.idle_seconds:g} s")


class Transfers:
    """The replica's running transfers, counted per member and in all."""

    def __init__(self, limits: TransferLimits) -> None:
        self.limits = limits
        self.limiter = anyio.CapacityLimiter(limits.total)
        self._running: Counter[str] = Counter()
        self._lock = threading.Lock()

    def acquire(self, member: str) -> Callable[[], None]:
        """Take a slot for ``member``; returns the function that gives it back (once)."""
        with self._lock:
            if sum(self._running.values()) >= self.limits.total:
                raise Throttled(
                    "the broker runs as many transfers as it takes at once; try again shortly",
                    code=ErrorCode.TRANSFERS_BUSY,
                )
            if self._running[member] >= self.limits.per_member:
                raise Throttled(
                    f"{member} already runs {self.limits.per_member} transfers at once",
                    code=ErrorCode.TOO_MANY_TRANSFERS,
                )
            self._running[member] += 1
        released = threading.Event()

        def release() -> None:
            if released.is_set():
                return
            released.set()
            with self._lock:
                self._running[member] -= 1
                if self._running[member] <= 0:
                    del self._running[member]

        return release

    def running(self) -> Mapping[str, int]:
        with self._lock:
            return dict(self._running)


class PacedDownload(StreamingResponse):
    """A streamed download that ends a client who stops reading, and frees its slot after."""

    def __init__(
        self,
        content: AsyncIterator[bytes],
        *,
        pace: Pace,
        release: Callable[[], None],
        headers: Mapping[str, str],
        media_type: str = "application/octet-stream",
    ) -> None:
        super().__init__(content, headers=headers, media_type=media_type)
        self._pace = pace
        self._release = release

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()

    async def stream_response(self, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        try:
            async for chunk in self.body_iterator:
                assert isinstance(chunk, bytes | memoryview)
                with anyio.fail_after(self._pace.limits.idle_seconds):
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
                self._pace.add(len(chunk))
        except (TimeoutError, LedgerError) as ended:
            # The client stopped reading or reads too slowly, or the blob store found the blob
            # altered at its end: close the connection. The response has begun, so there is
            # no status left to send (the client sees a cut download and keeps no file).
            reason = str(self._pace.idle()) if isinstance(ended, TimeoutError) else str(ended)
            log.warning("download ended after %d bytes: %s", self._pace.moved, reason)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


#: How often a running upload renews its claim on its intent (a fraction of the lease).
RENEW_FRACTION: Final = 3


def upload_lease_seconds(limits: TransferLimits) -> int:
    """How long an upload's claim on its intent lasts unless renewed (twice the idle time)."""
    return max(10, int(2 * limits.idle_seconds))


class WriteRate:
    """Each member's signed writes, limited by a token bucket (``per_second``, ``burst``).

    A replica's own limit: with several replicas behind a balancer a member may reach each
    one's rate. Buckets that have refilled are forgotten, so memory follows active writers.
    """

    def __init__(
        self,
        per_second: float = 50.0,
        burst: int = 100,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.per_second = per_second
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> WriteRate:
        return cls(settings.writes_per_second, settings.write_burst)

    def take(self, member: str) -> None:
        """Spend one of ``member``'s writes; none left is ``Throttled`` (``rate_limited``)."""
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(member, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.per_second)
            if tokens < 1:
                wait = (1 - tokens) / self.per_second
                raise Throttled(
                    f"{member} sends writes faster than {self.per_second:g} per second; "
                    f"retry in {wait:.2f} s",
                    code=ErrorCode.RATE_LIMITED,
                )
            self._buckets[member] = (tokens - 1, now)
            if len(self._buckets) > MAX_BUCKETS:
                self._forget_full(now)

    def _forget_full(self, now: float) -> None:
        full = [
            member
            for member, (tokens, at) in self._buckets.items()
            if tokens + (now - at) * self.per_second >= self.burst
        ]
        for member in full:
            del self._buckets[member]


#: Buckets kept before the full ones are forgotten.
MAX_BUCKETS: Final = 10_000

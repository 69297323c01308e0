"""Concurrent requests that share one durable commit (group commit).

A durable commit (an fsync on SQLite, a WAL flush on PostgreSQL) costs the same for one row
as for hundreds. A :class:`Coalescer` collects the items that concurrent requests hand it and
passes them, as one batch, to a function that does the work in one transaction; each request
gets its own item's answer. The first request to find it idle starts a drain that runs batch
after batch on a thread of its own (never one of the pool the routes and transfers use);
requests arriving during a commit form the next batch, so a lone request waits for nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

import anyio
import anyio.to_thread

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Runs ``work(items) -> answers`` (one answer per item, in order) over batched items."""

    def __init__(self, work: Callable[[Sequence[T]], Sequence[R]], *, batch: int = 256) -> None:
        self._work = work
        self._batch = batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._drain: asyncio.Task[None] | None = None
        self._limiter = anyio.CapacityLimiter(1)

    async def submit(self, item: T) -> R:
        """``item``'s answer once its batch is done (``work``'s error if the batch failed)."""
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (tests start one per client)
            self._loop, self._pending, self._drain = loop, [], None
        future: asyncio.Future[R] = loop.create_future()
        self._pending.append((item, future))
        if self._drain is None or self._drain.done():
            self._drain = loop.create_task(self._run())
        return await future

    async def _run(self) -> None:
        while self._pending:
            batch = self._pending[: self._batch]
            del self._pending[: self._batch]
            items = [item for item, _ in batch]
            try:
                answers = await anyio.to_thread.run_sync(self._work, items, limiter=self._limiter)
            except Exception as exc:  # e.g. DatabaseBusy: each request answers with it
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, future), answer in zip(batch, answers, strict=True):
                if not future.done():
                    future.set_result(answer)

"""Concurrent requests that share one durable commit (group commit).

A durable commit (an fsync on SQLite, a WAL flush on PostgreSQL) costs the same for one row
as for hundreds. A :class:`Coalescer` collects the items that concurrent requests hand it and
passes them, as one batch, to a function that does the work in one transaction; each request
gets its own item's answer.

The batches run on a thread of the coalescer's own (never one of the pool the routes and
transfers use), which takes whatever queued up while the last batch ran and starts the next
batch at once. It never waits for the event loop between batches: under load the loop has a
long queue of requests ready to run, and a drain that had to be resumed by the loop after each
batch waited behind all of them, 60-190 ms for a batch whose work took 5 ms, while the loop
itself sat idle once every client was waiting for admission. A lone request still waits for
nothing: the thread is idle and takes it at once.

When the last batch had company (requests are arriving together), the thread lingers up to
``linger`` (2 ms) for more before it starts the next: a batch costs about a millisecond of CPU
however small it is (begin, commit, SQLAlchemy's statements), which under load, on the core the
event loop needs, cost more than the few requests a batch without lingering would hold.

With a ``turn`` (the database's turn to write, ``Database.writer_turn``) the thread takes the
turn before it collects the rest of the batch: the requests that queued while another writer
(another process of ``drl serve --workers``) held the database join the batch that waited for
it, instead of each waiting for a turn of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")
#: One request's item, the event loop it waits on and the future it waits for.
Waiter = tuple[T, asyncio.AbstractEventLoop, "asyncio.Future[R]"]


class Coalescer(Generic[T, R]):
    """Runs ``work(items) -> answers`` (one answer per item, in order) over batched items.

    :meth:`close` stops the thread once what was queued before it is answered; a request
    submitted later starts a new one (an app's lifespan may run more than once in tests).
    """

    def __init__(
        self,
        work: Callable[[Sequence[T]], Sequence[R]],
        *,
        batch: int = 256,
        linger: float = 0.002,
        name: str = "batch",
        turn: Callable[[], AbstractContextManager[object]] | None = None,
    ) -> None:
        self._work = work
        self._turn = turn
        self._batch = batch
        self._linger = linger
        self._name = name
        self._lock = threading.Lock()
        # Each thread drains a queue of its own: what was queued before ``close`` is answered
        # by the old thread, what comes after by a new one; none is left behind the stop mark.
        self._queue: queue.SimpleQueue[Waiter[T, R]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def submit(self, item: T) -> R:
        """``item``'s answer once its batch is done (``work``'s error if the batch failed)."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        with self._lock:
            self._queue.put((item, loop, future))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, args=(self._queue,), name=self._name, daemon=True
                )
                self._thread.start()
        return await future

    def close(self, timeout: float = 10.0) -> bool:
        """Stop the thread once what is queued is answered; False if it did not stop in time."""
        with self._lock:
            thread, drained = self._thread, self._queue
            self._thread, self._queue = None, queue.SimpleQueue()
        if thread is None:
            return True
        drained.put(_STOP)  # type: ignore[arg-type]
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self, waiting_room: queue.SimpleQueue[Waiter[T, R]]) -> None:
        busy = False  # the last batch had company: requests are arriving together
        while True:
            try:
                first = waiting_room.get_nowait()
            except queue.Empty:
                busy = False  # idle: the next lone request must not wait for company
                first = waiting_room.get()
            if first is _STOP:
                return
            waiting = [first]
            until = time.monotonic() + self._linger if busy else 0.0
            stop = self._collect(waiting_room, waiting, until)
            if self._turn is None:
                self._answer(waiting)
            else:
                stop = self._answer_in_turn(self._turn, waiting_room, waiting) or stop
            busy = len(waiting) > 1
            if stop:
                return

    def _collect(
        self,
        waiting_room: queue.SimpleQueue[Waiter[T, R]],
        waiting: list[Waiter[T, R]],
        until: float,
    ) -> bool:
        """Add what queues until ``until`` (or is queued now) to ``waiting``; True on the stop
        mark."""
        while len(waiting) < self._batch:
            try:
                left = until - time.monotonic()
                more = waiting_room.get(timeout=left) if left > 0 else waiting_room.get_nowait()
            except queue.Empty:
                return False
            if more is _STOP:
                return True
            waiting.append(more)
        return False

    def _answer_in_turn(
        self,
        turn: Callable[[], AbstractContextManager[object]],
        waiting_room: queue.SimpleQueue[Waiter[T, R]],
        waiting: list[Waiter[T, R]],
    ) -> bool:
        """Take the turn, add what queued while waiting for it, answer; True if told to stop."""
        stop = False
        try:
            with turn():
                stop = self._collect(waiting_room, waiting, until=0.0)
                self._answer(waiting)
        except Exception as exc:  # no turn (DatabaseBusy): each request of the batch gets it
            self._settle_all(waiting, exc)
        return stop

    def _answer(self, waiting: list[Waiter[T, R]]) -> None:
        """Run one batch and hand each request its answer; nothing here may end the thread."""
        answers: Sequence[R] = ()
        error: BaseException | None = None
        try:
            answers = self._work([item for item, _, _ in waiting])
            if len(answers) != len(waiting):
                error = RuntimeError(f"{self._name}: {len(answers)} answers for {len(waiting)}")
        except Exception as exc:  # e.g. DatabaseBusy: each request of the batch gets it
            error = exc
        except BaseException as exc:  # not one a request should re-raise
            error = RuntimeError(f"{self._name}: {exc!r}")
        self._settle_all(waiting, error, answers)

    @staticmethod
    def _settle_all(
        waiting: list[Waiter[T, R]], error: BaseException | None, answers: Sequence[R] = ()
    ) -> None:
        """Hand each request its answer, or ``error`` (a request answered already keeps its
        answer: ``_settle`` skips a future that is done)."""
        by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[R], R | None]]] = {}
        for index, (_, loop, future) in enumerate(waiting):
            answer = None if error is not None else answers[index]
            by_loop.setdefault(loop, []).append((future, answer))
        for loop, settled in by_loop.items():
            # One wake-up per loop and batch, not one per request; a loop that has closed has
            # nobody waiting for these answers.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_settle, settled, error)


class Inline(Generic[T, R]):
    """A :class:`Coalescer`'s interface that does the work at once, in the caller's event loop:
    for work cheaper than handing it to a thread and back (a local file's indexed reads, about
    50 µs; the hand-off and the loop's wake-up cost more than that under load)."""

    def __init__(self, work: Callable[[Sequence[T]], Sequence[R]]) -> None:
        self._work = work

    async def submit(self, item: T) -> R:
        """``item``'s answer (``work``'s error if it failed)."""
        (answer,) = self._work([item])
        return answer

    def close(self, timeout: float = 10.0) -> bool:
        """Nothing runs in the background: always stopped."""
        return True


#: What a route hands its item to: batched on a thread, or answered at once.
Batcher = Coalescer[T, R] | Inline[T, R]

_STOP: object = object()


def _settle(settled: list[tuple[asyncio.Future[R], R | None]], error: BaseException | None) -> None:
    for future, answer in settled:
        if future.done():  # the request was cancelled (its client went away)
            continue
        try:
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(answer)  # type: ignore[arg-type]
        except Exception as exc:  # an error no future accepts (StopIteration): still answer
            future.set_exception(RuntimeError(f"batch failed: {exc!r}"))

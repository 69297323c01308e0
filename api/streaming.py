"""Streaming between HTTP and the blocking blob store, both ways, with bounded memory.

Uploads (:func:`consume_stream`). The body arrives in pieces (64-256 KiB with uvicorn). The
event loop groups them, as they are, into batches of up to ``BATCH`` bytes and puts each batch
in a small queue (``QUEUE_DEPTH`` batches); a worker thread runs the registration, whose blob
writer reads the pieces from :class:`QueueReader` without any copy. The event loop never blocks
and does not hop to a thread per piece: when the queue is full it waits for the worker's signal
that a batch was taken. No buffer is allocated per batch, so what the broker holds for an upload
is the pieces in flight (at most about ``(QUEUE_DEPTH + 2) * BATCH``); after a large transfer,
what the allocator kept of them goes back to the operating system (:func:`release_memory`). If
the client goes away mid-upload the reader raises, the blob store removes its temporary file,
and nothing is registered.

Downloads (:func:`blob_stream`). A thread of its own reads the blob a few pieces ahead of what
the response has sent and hands them to the event loop; no thread hop per piece either.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import io
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from typing import BinaryIO, TypeVar, cast

import anyio
import anyio.to_thread
from fastapi import Request
from starlette.requests import ClientDisconnect

from api.transfers import Pace
from ledger.errors import InvalidInput
from ledger.protocol.codes import ErrorCode

T = TypeVar("T")
BATCH = 256 * 1024
DOWNLOAD_CHUNK = 256 * 1024
DOWNLOAD_DEPTH = 2
QUEUE_DEPTH = 2
_EOF: list[bytes] = []


#: After a transfer of at least this many bytes, freed buffers go back to the operating system.
RELEASE_AFTER = 64 * 1024 * 1024


def _load_malloc_trim() -> Callable[[int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        trim: Callable[[int], int] = libc.malloc_trim
    except (OSError, AttributeError):  # not glibc
        return None
    return trim


_MALLOC_TRIM = _load_malloc_trim()


def release_memory(transferred: int) -> None:
    """Hand memory freed by a large transfer back to the operating system (glibc only).

    glibc keeps freed blocks of its arenas for reuse; after streaming hundreds of megabytes
    through buffers of a few hundred KiB, several MiB of them stay resident for good (and the
    next transfer's peak starts from there). ``malloc_trim`` costs a few milliseconds, nothing
    next to such a transfer, so it only runs after one.
    """
    if _MALLOC_TRIM is not None and transferred >= RELEASE_AFTER:
        _MALLOC_TRIM(0)


class UploadInterrupted(InvalidInput):
    """The client went away mid-upload: nothing was stored or registered."""

    code = ErrorCode.UPLOAD_INTERRUPTED


class UploadAborted(Exception):
    """The client stopped sending before the body was complete."""


class QueueReader(io.RawIOBase):
    """A readable stream fed from another thread with batches of pieces (an empty one ends it).

    ``read(n)`` hands out the next piece itself when it fits in ``n`` (no copy), otherwise a
    slice of it; it never joins pieces, so a read may return fewer bytes than asked (as raw
    streams do). ``on_take`` runs after each batch is taken off the queue (the feeder waits on
    it when the queue is full). ``aborted`` is set by the feeder when it stops without an end
    of body (cancelled), so a reader waiting for the next batch raises instead of waiting
    forever.
    """

    def __init__(
        self,
        batches: queue.Queue[list[bytes] | BaseException],
        aborted: threading.Event | None = None,
        on_take: Callable[[], None] | None = None,
    ) -> None:
        self._batches = batches
        self._pieces: deque[bytes] = deque()
        self._piece = b""
        self._pos = 0
        self._done = False
        self._aborted = aborted or threading.Event()
        self._on_take = on_take

    def readable(self) -> bool:
        return True

    def _next(self) -> bool:
        """Move to the next piece, waiting for a batch if needed; ``False`` at the end."""
        while not self._pieces:
            try:
                item = self._batches.get(timeout=0.1)
            except queue.Empty:
                if self._aborted.is_set():
                    raise UploadAborted("upload interrupted") from None
                continue
            if self._on_take is not None:
                self._on_take()
            if isinstance(item, BaseException):
                raise item
            if not item:
                self._done = True
                return False
            self._pieces.extend(item)
        self._piece, self._pos = self._pieces.popleft(), 0
        return True

    def read(self, size: int = -1, /) -> bytes:
        while self._pos >= len(self._piece):
            if self._done or not self._next():
                return b""
        piece, start = self._piece, self._pos
        if start == 0 and (size < 0 or size >= len(piece)):
            self._piece, self._pos = b"", 0
            return piece
        end = len(piece) if size < 0 else min(len(piece), start + size)
        self._pos = end
        return piece[start:end]

    def readinto(self, target: memoryview | bytearray) -> int:  # type: ignore[override]
        data = self.read(len(target))
        target[: len(data)] = data
        return len(data)


async def consume_stream(
    request: Request,
    work: Callable[[BinaryIO], T],
    *,
    pace: Pace | None = None,
    limiter: anyio.CapacityLimiter | None = None,
    heartbeat: Callable[[], None] | None = None,
    heartbeat_every: float = 10.0,
) -> T:
    """Run ``work(reader)`` in a thread while feeding it the request body.

    ``pace`` ends a body that pauses too long or arrives too slowly (``TransferStalled``);
    ``limiter`` is the thread limiter ``work`` runs on (transfers have their own);
    ``heartbeat`` runs on a thread every ``heartbeat_every`` seconds while the body arrives
    (the upload renews its claim on its intent with it).

    The worker's own error (a refused registration: not the owner, bytes that do not match the
    signed digest, ...) is raised as is, so the error handler answers its status; an error of
    the body itself (client gone, body over the limit) wins over the worker's ``UploadAborted``.
    Once the worker stops reading, the rest of the body is drained and dropped, so the feeder
    never blocks on a full queue and the client still reads the answer.
    """
    loop = asyncio.get_running_loop()
    space = asyncio.Event()
    batches: queue.Queue[list[bytes] | BaseException] = queue.Queue(maxsize=QUEUE_DEPTH)
    stopped, aborted = threading.Event(), threading.Event()

    def taken() -> None:  # on the worker thread
        loop.call_soon_threadsafe(space.set)

    reader = QueueReader(batches, aborted, on_take=taken)
    result: list[T] = []
    failed: dict[str, Exception] = {}

    async def put(item: list[bytes]) -> None:
        """Queue ``item`` once there is room; drop it once the worker has stopped."""
        while not stopped.is_set():
            try:
                batches.put_nowait(item)
                return
            except queue.Full:
                space.clear()
                if batches.full():
                    with anyio.move_on_after(0.05):  # and look at ``stopped`` again
                        await space.wait()

    def guarded() -> T:
        try:
            return work(cast(BinaryIO, reader))
        finally:
            stopped.set()
            taken()

    received = 0

    async def feed() -> None:
        nonlocal received
        pending: list[bytes] = []
        size = 0
        beat = time.monotonic() + heartbeat_every
        body = request.stream().__aiter__()
        try:
            while True:
                try:
                    if pace is None:
                        chunk = await body.__anext__()
                    else:
                        with anyio.fail_after(pace.limits.idle_seconds):
                            chunk = await body.__anext__()
                except StopAsyncIteration:
                    break
                except TimeoutError:
                    if pace is None:
                        raise
                    raise pace.idle() from None
                received += len(chunk)
                if pace is not None:
                    pace.add(len(chunk))
                if heartbeat is not None and time.monotonic() >= beat:
                    await anyio.to_thread.run_sync(heartbeat)
                    beat = time.monotonic() + heartbeat_every
                if not chunk or stopped.is_set():
                    continue  # after the worker stopped, the rest is drained and dropped
                pending.append(chunk)
                size += len(chunk)
                if size >= BATCH:
                    await put(pending)
                    pending, size = [], 0
            if pending:
                await put(pending)
            await put(_EOF)
        except Exception as exc:
            failed["body"] = exc
            aborted.set()
        except BaseException:
            aborted.set()
            raise

    async def run() -> None:
        try:
            result.append(await anyio.to_thread.run_sync(guarded, limiter=limiter))
        except Exception as exc:
            failed["work"] = exc

    async with anyio.create_task_group() as group:
        group.start_soon(feed)
        group.start_soon(run)
    release_memory(received)
    work_error = failed.get("work")
    if work_error is not None and not isinstance(work_error, UploadAborted):
        raise work_error
    if "body" in failed:
        if isinstance(failed["body"], ClientDisconnect):
            # Nothing was registered and the blob's temporary file is gone; the client is too,
            # so answer with a handled error instead of a server traceback.
            raise UploadInterrupted("the client disconnected before the upload completed")
        raise failed["body"]
    if work_error is not None:
        raise work_error
    return result[0]


async def blob_stream(open_blob: Callable[[], BinaryIO]) -> AsyncIterator[bytes]:
    """A stored blob, opened by ``open_blob``, as an async stream of ``DOWNLOAD_CHUNK`` pieces.

    One thread of its own reads the blob (the store verifies its hash at the end, so a reader
    that reaches the end learns of tampering: the error is raised here and cuts the response)
    and hands each piece to the event loop, at most ``DOWNLOAD_DEPTH`` ahead of what was sent:
    no thread hop per piece, and about ``(DOWNLOAD_DEPTH + 1) * DOWNLOAD_CHUNK`` in flight.
    When the response stops early (the client went away), the thread stops too.
    """
    loop = asyncio.get_running_loop()
    ready: asyncio.Queue[bytes | BaseException] = asyncio.Queue()
    room = threading.Semaphore(DOWNLOAD_DEPTH)
    stop = threading.Event()

    def hand(item: bytes | BaseException) -> None:
        try:
            loop.call_soon_threadsafe(ready.put_nowait, item)
        except RuntimeError:  # the event loop is gone (the server stopped): nobody listens
            stop.set()

    def produce() -> None:
        sent = 0
        try:
            with open_blob() as fh:
                while True:
                    while not room.acquire(timeout=0.1):
                        if stop.is_set():
                            return
                    if stop.is_set():
                        return
                    chunk = fh.read(DOWNLOAD_CHUNK)
                    hand(chunk)
                    if not chunk:
                        return
                    sent += len(chunk)
        except BaseException as exc:
            hand(exc)
        finally:
            release_memory(sent)

    threading.Thread(target=produce, name="drl-download", daemon=True).start()
    try:
        while True:
            item = await ready.get()
            room.release()
            if isinstance(item, BaseException):
                raise item
            if not item:
                return
            yield item
    finally:
        stop.set()

"""Bridging the ASGI request stream to the blocking blob store, with bounded memory.

The event loop pushes body chunks into a small queue; a worker thread runs the registration,
whose blob writer reads from :class:`QueueReader`. If the client goes away mid-upload the reader
raises, the blob store removes its temporary file, and nothing is registered.
"""

from __future__ import annotations

import io
import queue
import threading
from collections.abc import Callable, Iterator
from typing import BinaryIO, TypeVar

import anyio
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from ledger.store.blobs import BlobStore

T = TypeVar("T")
CHUNK = 1024 * 1024
_EOF = b""


class UploadAborted(Exception):
    """The client stopped sending before the body was complete."""


class QueueReader(io.RawIOBase):
    """A readable stream fed chunk by chunk from another thread.

    ``aborted`` is set by the feeder when it stops without an end of body (cancelled), so a
    reader waiting for the next chunk raises instead of waiting forever.
    """

    def __init__(
        self, chunks: queue.Queue[bytes | BaseException], aborted: threading.Event | None = None
    ) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")
        self._done = False
        self._aborted = aborted or threading.Event()

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._buffer and not self._done:
            try:
                item = self._chunks.get(timeout=0.1)
            except queue.Empty:
                if self._aborted.is_set():
                    raise UploadAborted("upload interrupted") from None
                continue
            if isinstance(item, BaseException):
                raise item
            if item == _EOF:
                self._done = True
            else:
                self._buffer = memoryview(item)
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


async def consume_stream(request: Request, work: Callable[[BinaryIO], T]) -> T:
    """Run ``work(reader)`` in a thread while feeding it the request body.

    The worker's own error (a refused registration: not the owner, bytes that do not match the
    signed digest, ...) is raised as is, so the error handler answers its status; an error of
    the body itself (client gone, body over the limit) wins over the worker's ``UploadAborted``.
    Once the worker stops reading, the rest of the body is drained and dropped, so the feeder
    never blocks on a full queue and the client still reads the answer.
    """
    chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=8)
    stopped, aborted = threading.Event(), threading.Event()
    reader = io.BufferedReader(QueueReader(chunks, aborted), buffer_size=CHUNK)
    result: list[T] = []
    failed: dict[str, Exception] = {}

    def put(item: bytes | BaseException) -> None:
        while not stopped.is_set():
            try:
                chunks.put(item, timeout=0.05)
                return
            except queue.Full:
                continue

    def guarded() -> T:
        try:
            return work(reader)
        finally:
            stopped.set()

    async def feed() -> None:
        try:
            async for chunk in request.stream():
                if chunk and not stopped.is_set():
                    await anyio.to_thread.run_sync(put, chunk)
            await anyio.to_thread.run_sync(put, _EOF)
        except Exception as exc:
            failed["body"] = exc
            aborted.set()
        except BaseException:
            aborted.set()
            raise

    async def run() -> None:
        try:
            result.append(await run_in_threadpool(guarded))
        except Exception as exc:
            failed["work"] = exc

    async with anyio.create_task_group() as group:
        group.start_soon(feed)
        group.start_soon(run)
    work_error = failed.get("work")
    if work_error is not None and not isinstance(work_error, UploadAborted):
        raise work_error
    if "body" in failed:
        raise failed["body"]
    if work_error is not None:
        raise work_error
    return result[0]


def blob_chunks(blobs: BlobStore, digest: bytes) -> Iterator[bytes]:
    """Yield a stored blob in 1 MiB chunks (the store verifies its hash at the end)."""
    with blobs.open(digest) as fh:
        while chunk := fh.read(CHUNK):
            yield chunk

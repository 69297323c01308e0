"""Bridging the ASGI request stream to the blocking blob store, with bounded memory.

The event loop pushes body chunks into a small queue; a worker thread runs the registration,
whose blob writer reads from :class:`QueueReader`. If the client goes away mid-upload the reader
raises, the blob store removes its temporary file, and nothing is registered.
"""

from __future__ import annotations

import io
import queue
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
    """A readable stream fed chunk by chunk from another thread."""

    def __init__(self, chunks: queue.Queue[bytes | BaseException]) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")
        self._done = False

    def readable(self) -> bool:
        return True

    def readinto(self, target: memoryview | bytearray) -> int:  # type: ignore[override]
        while not self._buffer and not self._done:
            item = self._chunks.get()
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
    """Run ``work(reader)`` in a thread while feeding it the request body."""
    chunks: queue.Queue[bytes | BaseException] = queue.Queue(maxsize=8)
    reader = io.BufferedReader(QueueReader(chunks), buffer_size=CHUNK)

    async def feed() -> None:
        try:
            async for chunk in request.stream():
                if chunk:
                    await anyio.to_thread.run_sync(chunks.put, chunk)
            await anyio.to_thread.run_sync(chunks.put, _EOF)
        except BaseException:
            await anyio.to_thread.run_sync(chunks.put, UploadAborted("upload interrupted"))
            raise

    result: list[T] = []

    async def run() -> None:
        result.append(await run_in_threadpool(work, reader))

    async with anyio.create_task_group() as group:
        group.start_soon(feed)
        group.start_soon(run)
    return result[0]


def blob_chunks(blobs: BlobStore, digest: bytes) -> Iterator[bytes]:
    """Yield a stored blob in 1 MiB chunks (the store verifies its hash at the end)."""
    with blobs.open(digest) as fh:
        while chunk := fh.read(CHUNK):
            yield chunk

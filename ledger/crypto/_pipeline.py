"""Ordered, bounded, two-core chunk pipeline shared by encryption, decryption and hashing.

SHA-256 (about 1.5 GB/s here) is the bottleneck, not AES-GCM (about 8 GB/s). Chunk hashes are
independent and both hashlib and cryptography release the GIL on large buffers, so chunks are
sealed or opened and hashed on a small thread pool while the calling thread reads ahead. Results
are handed on in order to single-thread stages (writer, ciphertext hasher, and the content hasher
when chunks must be re-sliced into 1 MiB pieces), so writing, which on some machines costs as
much CPU as hashing, overlaps reading instead of following it.

Memory stays flat: a bounded set of slots, each with one preallocated input and one output
buffer, is recycled; a slot returns to the free list only after its output was written and its
``emit`` follow-up (such as hashing the ciphertext) completed. Preallocated buffers also keep
worker threads from allocating a fresh megabyte per chunk, which costs page faults in glibc's
per-thread arenas. Slots are made only when the stream needs them (a one-chunk stream never
allocates more than two), and large chunks get fewer slots: the buffers of a stream never
exceed ``BUFFER_BUDGET`` beyond the two slots any stream needs, whatever chunk size a (possibly
hostile) header declares.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO

WORKERS = 2
# Two chunks per worker in flight, plus the chunk being read and the read-ahead that tells
# whether it is the last one.
SLOTS = 2 * WORKERS + 2
# Bytes of slot buffers a stream may hold (the default 1 MiB chunks use all SLOTS slots); at
# least two slots are always allowed: the chunk in hand and the read-ahead.
BUFFER_BUDGET = 64 << 20


def slot_count(in_size: int, out_size: int) -> int:
    """How many slots a stream of ``in_size`` chunks may have: SLOTS, fewer for large chunks."""
    return max(2, min(SLOTS, BUFFER_BUDGET // max(1, in_size + out_size)))


class Slot:
    """A reusable pair of buffers for one chunk in flight."""

    __slots__ = ("inbuf", "out_len", "outbuf", "pending", "size")

    def __init__(self, in_size: int, out_size: int) -> None:
        self.inbuf = bytearray(in_size)
        self.outbuf = bytearray(out_size)
        self.size = 0
        self.out_len = 0
        self.pending: Sequence[Future[Any]] = ()

    def input(self) -> memoryview:
        """The bytes read into this slot."""
        return memoryview(self.inbuf)[: self.size]

    def output(self, length: int) -> memoryview:
        """An output window of ``length`` bytes, remembered for ``emit``."""
        self.out_len = length
        return memoryview(self.outbuf)[:length]

    def written(self) -> memoryview:
        """The output window the transform filled."""
        return memoryview(self.outbuf)[: self.out_len]


# (slot, chunk index, is last chunk) -> the leaf hashes the chunk yields on its own (possibly
# none); fills slot.output(...). Runs on a worker.
Transform = Callable[[Slot, int, bool], list[bytes]]
# Receives each slot in order on the calling thread and hands its input or output on (write,
# hash); returns the futures to wait for before the slot's buffers are reused.
Emit = Callable[[Slot], Sequence["Future[Any]"]]


def read_full(src: BinaryIO, buf: bytearray) -> int:
    """Fill ``buf`` from ``src`` until it is full or the stream ends; return the byte count."""
    view = memoryview(buf)
    total = 0
    readinto = getattr(src, "readinto", None)
    while total < len(buf):
        if readinto is not None:
            n = readinto(view[total:]) or 0
        else:
            data = src.read(len(buf) - total)
            n = len(data)
            view[total : total + n] = data
        if n == 0:
            break
        total += n
    return total


def run(
    src: BinaryIO,
    *,
    in_size: int,
    out_size: int,
    transform: Transform,
    emit: Emit,
) -> tuple[list[bytes], int]:
    """Run ``transform`` over ``in_size`` chunks of ``src``; return leaf hashes and bytes read.

    A chunk shorter than ``in_size`` ends the stream; a full one is the last when nothing
    follows it. An empty stream still yields one (empty, last) chunk.
    """
    limit = slot_count(in_size, out_size)
    made = 0
    free: deque[Slot] = deque()
    working: deque[tuple[Slot, Future[list[bytes]]]] = deque()
    emitted: deque[Slot] = deque()
    leaves: list[bytes] = []
    total = 0
    pool = ThreadPoolExecutor(WORKERS, thread_name_prefix="drl-crypto")

    def retire() -> None:
        slot, future = working.popleft()
        leaves.extend(future.result())
        slot.pending = emit(slot)
        emitted.append(slot)

    def take() -> Slot:
        nonlocal made
        if not free and made < limit:
            made += 1
            return Slot(in_size, out_size)
        while not free:
            if emitted and (not working or _done(emitted[0])):
                slot = emitted.popleft()
                _wait(slot)
                free.append(slot)
            else:
                retire()
        return free.popleft()

    try:
        current = take()
        current.size = read_full(src, current.inbuf)
        total += current.size
        index = 0
        while True:
            following: Slot | None = None
            if current.size == in_size:
                following = take()
                following.size = read_full(src, following.inbuf)
                total += following.size
                if following.size == 0:
                    free.append(following)
                    following = None
            last = following is None
            working.append((current, pool.submit(transform, current, index, last)))
            if following is None:
                break
            current = following
            index += 1
        while working:
            retire()
        while emitted:
            _wait(emitted.popleft())
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return leaves, total


def _done(slot: Slot) -> bool:
    return all(future.done() for future in slot.pending)


def _wait(slot: Slot) -> None:
    for future in slot.pending:
        future.result()
    slot.pending = ()

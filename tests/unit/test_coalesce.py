"""Group commit for concurrent requests (``api.coalesce.Coalescer``).

Each request gets its own item's answer; requests that arrive together share one batch; a
failed batch fails exactly its own requests; and the next batch never waits for the event loop
(under load the loop is busy with other requests, and a batch that waited for it took ten to
forty times as long as its work).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator, Sequence

import pytest

from api.coalesce import Coalescer, Inline


def times_ten(items: Sequence[int]) -> list[int]:
    return [i * 10 for i in items]


def test_each_request_gets_its_own_answer_and_concurrent_ones_share_a_batch() -> None:
    batches: list[list[int]] = []
    gate = threading.Event()

    def work(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        gate.wait(5)
        return times_ten(items)

    async def scenario() -> list[int]:
        coalescer = Coalescer(work, linger=0)
        first = asyncio.ensure_future(coalescer.submit(1))
        await asyncio.sleep(0.05)  # the first batch is running
        rest = [asyncio.ensure_future(coalescer.submit(i)) for i in (2, 3, 4)]
        await asyncio.sleep(0.05)  # all three wait behind it
        gate.set()
        answers = await asyncio.gather(first, *rest)
        coalescer.close()
        return answers

    assert asyncio.run(scenario()) == [10, 20, 30, 40]
    assert batches == [[1], [2, 3, 4]]


def test_a_lone_request_is_a_batch_of_one() -> None:
    batches: list[list[int]] = []

    def work(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        return times_ten(items)

    async def scenario() -> list[int]:
        coalescer = Coalescer(work)
        answers = [await coalescer.submit(i) for i in (5, 6)]
        coalescer.close()
        return answers

    assert asyncio.run(scenario()) == [50, 60]
    assert batches == [[5], [6]]


def test_the_next_batch_starts_while_the_event_loop_is_busy() -> None:
    started: list[tuple[list[int], float]] = []
    gate = threading.Event()

    def work(items: Sequence[int]) -> list[int]:
        started.append((list(items), time.monotonic()))
        if items == [0]:
            gate.wait(5)
        return times_ten(items)

    async def scenario() -> tuple[float, float]:
        coalescer = Coalescer(work, linger=0)
        first = asyncio.ensure_future(coalescer.submit(0))
        await asyncio.sleep(0.05)
        rest = [asyncio.ensure_future(coalescer.submit(i)) for i in (1, 2)]
        await asyncio.sleep(0.05)
        gate.set()
        busy_from = time.monotonic()
        time.sleep(0.3)  # a long request holds the event loop
        busy_to = time.monotonic()
        assert await first == 0
        assert await asyncio.gather(*rest) == [10, 20]
        coalescer.close()
        return busy_from, busy_to

    busy_from, busy_to = asyncio.run(scenario())
    assert [batch for batch, _ in started] == [[0], [1, 2]]
    assert busy_from <= started[1][1] < busy_to


def test_a_failed_batch_fails_its_own_requests_only() -> None:
    def work(items: Sequence[int]) -> list[int]:
        if 13 in items:
            raise OSError("disk full")
        return times_ten(items)

    async def scenario() -> tuple[BaseException | int, int]:
        coalescer = Coalescer(work)
        failed = await asyncio.gather(coalescer.submit(13), return_exceptions=True)
        after = await coalescer.submit(7)
        coalescer.close()
        return failed[0], after

    failed, after = asyncio.run(scenario())
    assert isinstance(failed, OSError)
    assert after == 70


def test_a_wrong_number_of_answers_is_an_error_not_a_misdelivery() -> None:
    async def scenario() -> None:
        coalescer = Coalescer(lambda items: [1, 2], linger=0)
        try:
            await coalescer.submit(1)
        finally:
            coalescer.close()

    with pytest.raises(RuntimeError, match="2 answers for 1"):
        asyncio.run(scenario())


def test_close_answers_what_was_queued_and_a_later_request_starts_a_new_thread() -> None:
    def alive() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "drl-test-batches"]

    async def scenario() -> None:
        coalescer = Coalescer(times_ten, name="drl-test-batches")
        assert await coalescer.submit(1) == 10
        assert await asyncio.to_thread(coalescer.close)
        assert not alive()
        assert await coalescer.submit(2) == 20  # e.g. a second lifespan of the same app
        assert len(alive()) == 1
        assert coalescer.close()

    asyncio.run(scenario())
    assert not alive()


def test_an_error_no_future_takes_still_answers_and_the_thread_lives_on() -> None:
    def work(items: Sequence[int]) -> list[int]:
        if 1 in items:
            raise StopIteration  # a Future refuses this one as an exception
        if 2 in items:
            raise KeyboardInterrupt  # not an Exception
        if 3 in items:
            return 42  # type: ignore[return-value]  # no answers at all
        return times_ten(items)

    async def scenario() -> list[object]:
        coalescer = Coalescer(work, linger=0)
        outcomes = []
        for item in (1, 2, 3, 4):
            try:
                outcomes.append(await asyncio.wait_for(coalescer.submit(item), 5))
            except Exception as exc:  # what the route would turn into a 500
                outcomes.append(type(exc))
        coalescer.close()
        return outcomes

    assert asyncio.run(scenario()) == [RuntimeError, RuntimeError, TypeError, 40]


def test_a_lone_request_after_a_busy_spell_does_not_linger() -> None:
    batches: list[list[int]] = []

    def work(items: Sequence[int]) -> list[int]:
        batches.append(list(items))
        return times_ten(items)

    async def scenario() -> float:
        coalescer = Coalescer(work, linger=1.0)  # a linger no test would sit through
        await asyncio.gather(*(coalescer.submit(i) for i in range(8)))
        await asyncio.sleep(0.1)  # the thread goes idle
        started = time.monotonic()
        assert await coalescer.submit(99) == 990
        coalescer.close()
        return time.monotonic() - started

    assert asyncio.run(scenario()) < 0.5
    assert batches[-1] == [99]


def test_requests_from_several_event_loops_are_answered_on_their_own_loop() -> None:
    coalescer = Coalescer(times_ten)
    answers: dict[int, int] = {}

    def client(n: int) -> None:
        answers[n] = asyncio.run(coalescer.submit(n))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(1, 6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    coalescer.close()
    assert answers == {n: n * 10 for n in range(1, 6)}


def test_requests_that_queue_while_a_batch_waits_for_its_turn_join_that_batch() -> None:
    """With a turn (the database's turn to write), the batch takes the turn first and only then
    collects: requests that arrived during another writer's transaction share the next commit."""
    batches: list[list[int]] = []
    turn = threading.Lock()
    taking = threading.Event()

    @contextlib.contextmanager
    def take_turn() -> Iterator[None]:
        taking.set()
        with turn:
            yield

    def work(items: Sequence[int]) -> list[int]:
        assert turn.locked()  # the work runs inside the turn
        batches.append(list(items))
        return times_ten(items)

    async def scenario() -> list[int]:
        coalescer = Coalescer(work, linger=0, turn=take_turn)
        turn.acquire()  # another writer holds the turn
        first = asyncio.ensure_future(coalescer.submit(1))
        while not taking.is_set():
            await asyncio.sleep(0.01)  # the batch of 1 now waits for its turn
        rest = [asyncio.ensure_future(coalescer.submit(i)) for i in (2, 3, 4)]
        await asyncio.sleep(0.05)
        turn.release()
        answers = await asyncio.gather(first, *rest)
        coalescer.close()
        return answers

    assert asyncio.run(scenario()) == [10, 20, 30, 40]
    assert batches == [[1, 2, 3, 4]]


def test_a_turn_that_cannot_be_taken_fails_the_batch_and_the_thread_lives_on() -> None:
    fail = [True]

    @contextlib.contextmanager
    def take_turn() -> Iterator[None]:
        if fail[0]:
            raise TimeoutError("no turn to write within the busy timeout")
        yield

    async def scenario() -> tuple[BaseException | int, int]:
        coalescer = Coalescer(times_ten, turn=take_turn)
        refused = (await asyncio.gather(coalescer.submit(1), return_exceptions=True))[0]
        fail[0] = False
        answered = await coalescer.submit(2)
        coalescer.close()
        return refused, answered

    refused, answered = asyncio.run(scenario())
    assert isinstance(refused, TimeoutError)
    assert answered == 20


# -- Inline: the same interface, the work done at once -------------------------------------------


def test_inline_work_runs_at_once_in_the_callers_thread() -> None:
    threads: list[threading.Thread] = []

    def work(items: Sequence[int]) -> list[int]:
        threads.append(threading.current_thread())
        return times_ten(items)

    inline = Inline(work)

    async def both() -> list[int]:
        return list(await asyncio.gather(*(inline.submit(i) for i in (1, 2))))

    answers = asyncio.run(both())
    assert answers == [10, 20]
    assert threads == [threading.main_thread()] * 2  # one item at a time, no thread of its own
    assert inline.close() is True


def test_inline_work_that_fails_fails_its_request() -> None:
    def work(items: Sequence[int]) -> list[int]:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        asyncio.run(Inline(work).submit(1))

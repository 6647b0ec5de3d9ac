"""EventBus: per-run fan-out, dropping a laggard, observers of every run; replay then live."""

from __future__ import annotations

import asyncio

import pytest

from graph_runtime.events import EventBus, EventQueue, replay_then_live
from graph_runtime.models import Event, EventType


def event(run_id: str, i: int) -> Event:
    return Event(run_id=run_id, id=i, type=EventType.LOG, data={"i": i})


async def test_subscribers_get_their_runs_events_and_a_laggard_is_dropped() -> None:
    bus = EventBus(max_queue=10)
    async with bus.subscribe("a") as a, bus.subscribe("b") as b:
        for i in range(1, 4):
            bus.publish(event("a", i))
        assert [a.queue.get_nowait().id for _ in range(3)] == [1, 2, 3]  # type: ignore[union-attr]
        assert b.queue.empty()
        for i in range(1, 21):
            bus.publish(event("b", i))
        assert b.dropped and b.queue.qsize() == 11  # 10 events, then None: reconnect
    assert bus.subscriber_count("a") == bus.subscriber_count("b") == 0


async def test_event_queue_is_fifo_and_wakes_its_waiting_consumer() -> None:
    queue: EventQueue[int] = EventQueue()
    assert queue.empty() and queue.qsize() == 0
    with pytest.raises(asyncio.QueueEmpty):
        queue.get_nowait()
    queue.put_nowait(1)
    queue.put_nowait(2)
    assert queue.qsize() == 2 and queue.get_nowait() == 1 and await queue.get() == 2

    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    # A second consumer waiting at the same time is refused, not left hanging.
    with pytest.raises(RuntimeError):
        await queue.get()
    queue.put_nowait(3)
    queue.put_nowait(4)
    assert await waiting == 3 and queue.get_nowait() == 4

    # A consumer cancelled while it waits leaves the queue usable by the next one.
    cancelled = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    queue.put_nowait(5)
    assert await asyncio.wait_for(queue.get(), 1) == 5 and queue.empty()

    # offer(): put unless the limit is reached; it wakes a waiting consumer too.
    waiting = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert queue.offer(6, 2) and await waiting == 6
    assert queue.offer(7, 2) and queue.offer(8, 2) and not queue.offer(9, 2)
    assert queue.qsize() == 2 and queue.get_nowait() == 7 and queue.get_nowait() == 8


async def test_observers_see_every_run_until_detached_and_a_failing_one_is_ignored() -> None:
    bus = EventBus()
    seen: list[tuple[str, int]] = []

    def broken(_event: Event) -> None:
        raise RuntimeError("observer bug")

    bus.observe(broken)
    detach = bus.observe(lambda e: seen.append((e.run_id, e.id)))
    async with bus.subscribe("a") as sub:
        bus.publish(event("a", 1))
        bus.publish(event("b", 1))
        assert sub.queue.get_nowait() is not None  # the broken observer did not stop it
    detach()
    bus.publish(event("a", 2))
    assert seen == [("a", 1), ("b", 1)]


async def test_replay_then_live_ticks_only_after_a_quiet_heartbeat() -> None:
    bus = EventBus()
    stored = [event("a", 1)]

    async def load(run_id: str, after: int) -> list[Event]:
        return [e for e in stored if e.id > after]

    async def not_finished() -> bool:
        return False

    stream = replay_then_live(bus, "a", 0, load, is_finished=not_finished, heartbeat=0.2)
    loop = asyncio.get_running_loop()
    try:
        assert (await anext(stream)).id == 1  # type: ignore[union-attr]
        got: list[tuple[int | None, float]] = []
        start = loop.time()

        async def publish_every_50ms() -> None:
            for i in range(2, 8):  # 0.3 s of events, none more than 0.05 s apart
                await asyncio.sleep(0.05)
                bus.publish(event("a", i))

        publisher = asyncio.create_task(publish_every_50ms())
        while len(got) < 7:
            item = await asyncio.wait_for(anext(stream), 2)
            got.append((None if item is None else item.id, loop.time() - start))
        await publisher
    finally:
        await stream.aclose()
    assert [i for i, _ in got] == [2, 3, 4, 5, 6, 7, None]  # no tick while events flow
    assert got[-1][1] >= got[-2][1] + 0.19  # the tick came a heartbeat after the last one


async def test_replay_then_live_without_heartbeat_arms_no_timer() -> None:
    bus = EventBus()

    async def load(run_id: str, after: int) -> list[Event]:
        return []

    async def not_finished() -> bool:
        return False

    async with bus.subscribe("a") as sub:
        stream = replay_then_live(
            bus, "a", 0, load, is_finished=not_finished, heartbeat=None, subscription=sub
        )
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        assert not loop._scheduled  # type: ignore[attr-defined]
        bus.publish(event("a", 1))
        assert (await waiting).id == 1  # type: ignore[union-attr]
        await stream.aclose()


@pytest.mark.parametrize(
    ("stored", "page", "reads"), [(5, 2, [0, 2, 4]), (4, 2, [0, 2, 4]), (3, None, [0, 3])]
)
async def test_replay_reads_pages_until_a_short_one(
    stored: int, page: int | None, reads: list[int]
) -> None:
    events = [event("a", i) for i in range(1, stored + 1)]
    afters: list[int] = []

    async def load(run_id: str, after: int) -> list[Event]:
        afters.append(after)
        return [e for e in events if e.id > after][: page or None]

    async def finished() -> bool:
        return True

    stream = replay_then_live(EventBus(), "a", 0, load, is_finished=finished, page=page)
    assert [e.id async for e in stream if e is not None] == list(range(1, stored + 1))
    assert afters == reads  # a short page is the last: no read that finds nothing after it

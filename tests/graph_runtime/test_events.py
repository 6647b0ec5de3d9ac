"""EventBus: per-run fan-out, dropping a subscriber that falls behind, observers of every run."""

from __future__ import annotations

from graph_runtime.events import EventBus
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

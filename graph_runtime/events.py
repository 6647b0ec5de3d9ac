"""EventBus: per-run fan-out of live events to subscribers with bounded queues.

Events are persisted before they are published, so a subscriber can always fill a gap from
the store. ``subscribe()`` returns a queue that receives every event published after the call;
a subscriber that falls ``max_queue`` events behind is dropped (its queue receives ``None``)
instead of slowing the run or growing memory, and reconnects with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext
from dataclasses import dataclass, field
from time import monotonic
from typing import Any, Generic, TypeVar

from graph_runtime import failpoints
from graph_runtime.models import Event, EventType

__all__ = ["EventBus", "EventQueue", "Subscription"]

_TICK: Any = object()
"""Put in a subscriber's queue by ``replay_then_live``'s heartbeat timer."""

logger = logging.getLogger(__name__)


_T = TypeVar("_T")


class EventQueue(Generic[_T]):
    """A subscriber's queue: ``asyncio.Queue``'s put, get and size, for one consumer.

    Every event of a run passes through one per subscriber. ``asyncio.Queue`` costs about
    nine Python calls per item (task accounting, lists of getters and putters) for what is
    here an append, a popleft and, when the consumer waits, one future. Unbounded (the bus
    bounds it). One consumer awaits it at a time.
    """

    __slots__ = ("_items", "_waiter")

    def __init__(self) -> None:
        self._items: deque[_T] = deque()
        self._waiter: asyncio.Future[None] | None = None

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def put_nowait(self, item: _T) -> None:
        self.offer(item, sys.maxsize)

    def offer(self, item: _T, limit: int) -> bool:
        """:meth:`put_nowait` unless ``limit`` items are queued already; whether it did."""
        items = self._items
        if len(items) >= limit:
            return False
        items.append(item)
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)
        return True

    def get_nowait(self) -> _T:
        """The oldest item; raises ``asyncio.QueueEmpty`` if there is none."""
        if not self._items:
            raise asyncio.QueueEmpty
        return self._items.popleft()

    async def get(self) -> _T:
        """The oldest item, once there is one."""
        items = self._items
        while not items:
            if self._waiter is not None:
                raise RuntimeError("another task is already waiting on this queue")
            waiter = self._waiter = asyncio.get_running_loop().create_future()
            try:
                await waiter
            finally:
                if self._waiter is waiter:
                    self._waiter = None
        return items.popleft()


@dataclass(eq=False, slots=True)
class Subscription:
    """One subscriber's queue; ``None`` in the queue means "dropped: reconnect"."""

    run_id: str
    queue: EventQueue[Event | None] = field(default_factory=EventQueue)
    dropped: bool = False
    types: frozenset[EventType] | None = None
    """The event types it receives (None: every one)."""


class EventBus:
    """In-process publish/subscribe of run events."""

    def __init__(self, *, max_queue: int = 1000) -> None:
        self.max_queue = max_queue
        self._subs: dict[str, set[Subscription]] = {}
        self._observers: tuple[Callable[[Event], None], ...] = ()

    def observe(self, observer: Callable[[Event], None]) -> Callable[[], None]:
        """Call ``observer(event)`` for every event published from now on, of every run.

        For in-process consumers such as metrics: it runs in ``publish``, so it must be quick
        and must not block; an exception it raises is logged and ignored. Returns the
        function that stops the observation.
        """
        self._observers = (*self._observers, observer)

        def detach() -> None:
            self._observers = tuple(o for o in self._observers if o is not observer)

        return detach

    def publish(self, event: Event) -> None:
        """Hand an (already persisted) event to every subscriber of its run. Never blocks."""
        if failpoints.ENABLED:
            failpoints.hit("before_publish")
        for observer in self._observers:
            try:
                observer(event)
            except Exception:
                logger.exception("an event observer failed", extra={"action": "observe"})
        subs = self._subs.get(event.run_id)
        if not subs:
            return
        for sub in list(subs):
            if sub.dropped or (sub.types is not None and event.type not in sub.types):
                continue
            if not sub.queue.offer(event, self.max_queue):
                # A frozen client must not hold the run back or grow memory: drop it; it
                # will reconnect with Last-Event-ID and replay from the store.
                sub.dropped = True
                sub.queue.put_nowait(None)
                logger.info(
                    "dropped a slow subscriber",
                    extra={"action": "sse_drop", "run_id": event.run_id},
                )

    def subscriber_count(self, run_id: str) -> int:
        """How many subscribers a run has."""
        return len(self._subs.get(run_id, ()))

    @asynccontextmanager
    async def subscribe(
        self, run_id: str, types: frozenset[EventType] | None = None
    ) -> AsyncIterator[Subscription]:
        """Receive the run's events published while the context is open.

        ``types``: only events of these types (None: all); a waiter that cares about a few
        types is then not woken for every step and log line of the run.
        """
        sub = Subscription(run_id, types=types)
        self._subs.setdefault(run_id, set()).add(sub)
        try:
            yield sub
        finally:
            subs = self._subs.get(run_id)
            if subs is not None:
                subs.discard(sub)
                if not subs:
                    del self._subs[run_id]

    def close_all(self) -> None:
        """Tell every subscriber to go away (shutdown): they reconnect to the next process."""
        for subs in self._subs.values():
            for sub in subs:
                if not sub.dropped:
                    sub.dropped = True
                    sub.queue.put_nowait(None)


class _Heartbeat:
    """Puts ``_TICK`` in a queue once nothing was delivered from it for ``every`` seconds.

    One timer, moved along only when it fires: arming one per event (``asyncio.timeout``
    around each ``get``) cost more than the rest of a delivery. A delivery only sets
    :attr:`quiet_since` (``monotonic()``, where ``loop.time()`` is a Python call); the
    timer is armed relative to now, so the loop's own clock may differ.
    """

    __slots__ = ("_every", "_loop", "_queue", "_timer", "quiet_since")

    def __init__(self, queue: EventQueue[Any], every: float) -> None:
        self._loop = asyncio.get_running_loop()
        self._queue = queue
        self._every = every
        self.quiet_since = monotonic()
        """When the last item was delivered (``time.monotonic()``)."""
        self._timer = self._loop.call_later(every, self._fire)

    def close(self) -> None:
        self._timer.cancel()

    def _fire(self) -> None:
        now = monotonic()
        if now >= self.quiet_since + self._every:
            self._queue.put_nowait(_TICK)
            self.quiet_since = now
        self._timer = self._loop.call_later(self.quiet_since + self._every - now, self._fire)


class _NoHeartbeat:
    """A heartbeat that never ticks (and arms no timer)."""

    __slots__ = ("quiet_since",)

    def __init__(self) -> None:
        self.quiet_since = 0.0

    def close(self) -> None:
        pass


async def replay_then_live(
    bus: EventBus,
    run_id: str,
    after: int,
    load: Callable[[str, int], Awaitable[list[Event]]],
    *,
    is_finished: Callable[[], Awaitable[bool]],
    heartbeat: float | None = 15.0,
    page: int | None = None,
    subscription: Subscription | None = None,
    replay: bool = True,
) -> AsyncIterator[Event | None]:
    """Every event after ``after``: stored ones first, then live ones, no gap, no duplicate.

    Yields ``None`` as a heartbeat tick when nothing happened for ``heartbeat`` seconds
    (never when it is None).
    Ends after an ``end`` event, or when the subscriber is dropped. ``page``: the most
    events ``load`` returns at once, if it has such a limit (a shorter batch is then the
    last one stored, and is not followed by a read that finds nothing).

    ``subscription``: the run's subscription, opened by the caller (and closed by it).
    ``replay=False``: it was opened before the run's first event was published, so every
    event is in its queue: the store is read only if an id is ever missing from it.
    """
    # Subscribe before reading the store: an event published between the read and the
    # subscription would otherwise be lost. Duplicates are filtered by id instead.
    async with (
        nullcontext(subscription) if subscription is not None else bus.subscribe(run_id)
    ) as sub:
        last = after
        while replay:
            batch = await load(run_id, last)
            if not batch:
                break
            for ev in batch:
                last = ev.id
                yield ev
                if ev.type is EventType.END and await is_finished():
                    return
            if page is not None and len(batch) < page:
                break
        if replay and await is_finished():
            return
        queue = sub.queue
        waiting = queue._items  # read here, not through empty() and get_nowait() (calls)
        beat = _Heartbeat(queue, heartbeat) if heartbeat is not None else _NoHeartbeat()
        try:
            while True:
                # A burst is taken without suspending; otherwise the subscriber runs one
                # loop turn after the publish (a pause it asks for lands before the run's
                # next superstep starts).
                item = waiting.popleft() if waiting else await queue.get()
                if item is _TICK:
                    yield None
                    continue
                beat.quiet_since = monotonic()
                if item is None:
                    return
                if item.id <= last:
                    continue
                if item.id > last + 1:
                    # Missed some (published before we subscribed but after the read): fetch them.
                    for ev in await load(run_id, last):
                        if ev.id >= item.id:
                            break
                        last = ev.id
                        yield ev
                last = item.id
                yield item
                if item.type is EventType.END and await is_finished():
                    return
        finally:
            beat.close()

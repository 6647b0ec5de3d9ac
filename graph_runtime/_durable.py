"""A run's writes queued with the run store, and the events each one publishes once durable.

The :class:`~graph_runtime.recorder.EventRecorder` hands every batch of records to
:class:`DurableWrites` in event-id order. Each batch is queued with the store at once (the
store commits queued writes in queue order) and its events are published to live
subscribers the moment the store reports the commit, in queue order too: a subscriber never
sees an event the store does not have, and never sees them out of order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from functools import partial
from typing import Protocol

from checkpoints.store import NO_ROWS, RecordRows
from graph_runtime.models import Event

__all__ = ["DurableWrites", "EventSink", "PersistFn"]

EventSink = Callable[[Event], None]


class PersistFn(Protocol):
    """Queues rows with the store before it returns (``RunStore.queue_records``)."""

    def __call__(
        self,
        rows: RecordRows,
        *,
        lazy: bool,
        urgent: bool,
        on_done: Callable[[BaseException | None], None],
        followed: bool = False,
    ) -> None:
        """Call ``on_done(error)`` once the write is durable (``None``) or failed.

        Writes queued one after another commit in that order; an empty non-lazy one
        commits once everything queued before it is durable. ``urgent``: the caller waits
        for it next (the store may commit at once, calling ``on_done`` before returning).
        """
        ...


class _Write:
    """One queued write: its events, and its outcome once the store reported it."""

    __slots__ = ("done", "error", "events")

    def __init__(self, events: list[Event]) -> None:
        self.events = events
        self.done = False
        self.error: BaseException | None = None


class DurableWrites:
    """The writes of one run queued with the store, oldest first."""

    def __init__(self, persist: PersistFn, publish: EventSink | None) -> None:
        self._persist = persist
        self._publish = publish
        self._inflight: deque[_Write] = deque()
        self.failure: BaseException | None = None
        """The error of a queued write that failed, until :meth:`raise_failure` raises it."""
        self._lazy_tail = False  # the newest queued write asked for no commit of its own
        self._idle: asyncio.Future[None] | None = None  # resolved once nothing is in flight

    @property
    def pending(self) -> bool:
        """Whether a queued write is not yet known to be durable (or failed)."""
        return bool(self._inflight)

    def queue(
        self,
        events: list[Event],
        rows: RecordRows,
        *,
        lazy: bool,
        urgent: bool = False,
        followed: bool = False,
    ) -> None:
        """Queue one write; its events are published once it committed.

        Args:
            events: Its events, in id order (after every event queued before).
            rows: Its rows (those of ``events`` among them).
            lazy: Ask for no commit of its own: it joins the next one.
            urgent: :meth:`wait` follows: the store may commit it at once.
            followed: (with ``lazy``) a checkpointer commit is known to follow.
        """
        write = _Write(events)
        inflight = self._inflight
        inflight.append(write)
        try:
            self._persist(
                rows,
                lazy=lazy,
                urgent=urgent,
                on_done=partial(self._on_done, write),
                followed=followed,
            )
        except BaseException:
            if inflight and inflight[-1] is write:
                inflight.pop()
            raise
        self._lazy_tail = lazy and not write.done

    async def wait(self) -> None:
        """Wait until every queued write is durable; raise the first failure since last time."""
        inflight = self._inflight
        if self._lazy_tail and inflight and not inflight[-1].done:
            # The newest write waits for a commit to join: ask for one now (a barrier).
            self.queue([], NO_ROWS, lazy=False, urgent=True)
        if inflight:
            idle = self._idle
            if idle is None or idle.done():
                idle = self._idle = asyncio.get_running_loop().create_future()
            # Shielded: a stop that cancels the run must not cancel the future the writes
            # report to; the writes themselves are queued and go ahead regardless.
            await asyncio.shield(idle)
        self.raise_failure()

    def raise_failure(self) -> None:
        """Raise (once) the error of a queued write that failed."""
        error, self.failure = self.failure, None
        if error is not None:
            raise error

    def _on_done(self, write: _Write, error: BaseException | None) -> None:
        # The store calls this the moment a write committed, before a run waiting for the
        # same commit (its checkpoint) resumes: subscribers hear of a step before the next
        # superstep starts, and can still pause the run at that boundary. Publish the
        # finished prefix of the queued writes, in queue (id) order.
        write.done = True
        write.error = error
        inflight = self._inflight
        publish = self._publish
        while inflight and inflight[0].done:
            first = inflight.popleft()
            if first.error is not None:
                # Never published: a subscriber would see an event the store does not have.
                if self.failure is None:
                    self.failure = first.error
            elif publish is not None:
                for event in first.events:
                    publish(event)
        if not inflight:
            self._lazy_tail = False
            idle = self._idle
            if idle is not None and not idle.done():
                idle.set_result(None)

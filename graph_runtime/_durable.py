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
from collections.abc import Callable, Sequence
from typing import Protocol

from checkpoints.store import LogRecord
from graph_runtime.models import Event, TaskStepResult

__all__ = ["DurableWrites", "EventSink", "PersistFn"]

EventSink = Callable[[Event], None]


class PersistFn(Protocol):
    """Queues a write with the store before it returns (``RunStore.record_nowait``)."""

    def __call__(
        self,
        events: Sequence[Event],
        steps: Sequence[TaskStepResult],
        logs: Sequence[LogRecord],
        *,
        lazy: bool,
        on_done: Callable[[BaseException | None], None],
        urgent: bool = False,
    ) -> asyncio.Future[None]:
        """Return a future resolved once the write is durable; ``on_done`` runs right then.

        Writes queued one after another commit in that order; an empty non-lazy one
        resolves once everything queued before it is durable. ``urgent``: the caller waits
        for it next (the store may commit at once; the future is then done on return).
        """
        ...


class DurableWrites:
    """The writes of one run queued with the store, oldest first."""

    def __init__(self, persist: PersistFn, publish: EventSink | None) -> None:
        self._persist = persist
        self._publish = publish
        self._inflight: deque[tuple[asyncio.Future[None], list[Event]]] = deque()
        self._failure: BaseException | None = None
        self._lazy_tail = False  # the newest queued write asked for no commit of its own

    @property
    def pending(self) -> bool:
        """Whether a queued write is not yet known to be durable (or failed)."""
        return bool(self._inflight)

    def queue(
        self,
        events: list[Event],
        steps: Sequence[TaskStepResult],
        logs: Sequence[LogRecord],
        *,
        lazy: bool,
        urgent: bool = False,
    ) -> None:
        """Queue one write; its events are published once it committed.

        Args:
            events: Its events, in id order (after every event queued before).
            steps: Its step records.
            logs: Its log lines.
            lazy: Ask for no commit of its own: it joins the next one.
            urgent: :meth:`wait` follows: the store may commit it at once.
        """
        pending = self._persist(
            events, steps, logs, lazy=lazy, on_done=self._on_durable, urgent=urgent
        )
        if pending.done() and not self._inflight:
            self._settle(pending, events)
            return
        self._inflight.append((pending, events))
        self._lazy_tail = lazy

    async def wait(self) -> None:
        """Wait until every queued write is durable; raise the first failure since last time."""
        inflight = self._inflight
        if self._lazy_tail and inflight and not inflight[-1][0].done():
            # The newest write waits for a commit to join: ask for one now (a barrier).
            self.queue([], (), (), lazy=False, urgent=True)
        while inflight:
            pending = inflight[0][0]
            if not pending.done():
                # Shielded: a stop that cancels the run must not cancel the future the
                # write reports to; the write itself is queued and goes ahead regardless.
                await asyncio.shield(pending)
            self._on_durable()
        self.raise_failure()

    def raise_failure(self) -> None:
        """Raise (once) the error of a queued write that failed."""
        error, self._failure = self._failure, None
        if error is not None:
            raise error

    def _on_durable(self, _error: BaseException | None = None) -> None:
        # Publish the finished prefix of the queued writes, in queue (id) order. The store
        # calls this the moment a write committed, before a run waiting for the same commit
        # (its checkpoint) resumes: subscribers hear of a step before the next superstep
        # starts, and can still pause the run at that boundary.
        inflight = self._inflight
        while inflight and inflight[0][0].done():
            pending, events = inflight.popleft()
            self._settle(pending, events)

    def _settle(self, pending: asyncio.Future[None], events: list[Event]) -> None:
        if pending.cancelled():
            return
        error = pending.exception()
        if error is not None:
            # Never published: a subscriber would see an event the store does not have.
            if self._failure is None:
                self._failure = error
            return
        if self._publish is not None:
            for event in events:
                self._publish(event)

"""The run queue: which waiting run a free worker takes next.

Priority 1-10 (10 first; a resumed run goes before new ones), FIFO within a priority. Runs of
one LangGraph thread run one at a time, in queue order: a run whose thread is busy is parked
behind it and goes back in the queue, with its original priority and place, when the thread's
run ends. A run with a ``not_before`` time waits for it on a timer, out of the queue.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import heapq
import itertools
from collections import deque
from collections.abc import Callable
from typing import Any

from graph_runtime.models import utcnow

__all__ = ["RunQueue"]

# (-priority, arrival, run id, payload): heapq pops the highest priority, oldest first.
Entry = tuple[int, int, str, Any]


class RunQueue:
    """Runs waiting for a worker of one process."""

    def __init__(self, wake: Callable[[], None]) -> None:
        """``wake`` is called whenever a run becomes ready (the dispatcher's event)."""
        self._wake = wake
        self._heap: list[Entry] = []
        self._counter = itertools.count()
        self._thread_of: dict[str, str] = {}
        self._holder: dict[str, str] = {}
        self._parked: dict[str, deque[Entry]] = {}
        self._not_before: dict[str, dt.datetime] = {}
        self._timers: set[asyncio.TimerHandle] = set()

    def __len__(self) -> int:
        """Runs ready to go (parked and delayed runs are not counted)."""
        return len(self._heap)

    def put(
        self,
        run_id: str,
        priority: int,
        payload: Any,
        *,
        thread_id: str | None = None,
        not_before: dt.datetime | None = None,
    ) -> None:
        """Queue a run; ``payload`` goes to its worker (e.g. a resume value)."""
        if thread_id is not None:
            self._thread_of[run_id] = thread_id
        if not_before is not None:
            self._not_before[run_id] = not_before
        self._push((-priority, next(self._counter), run_id, payload))

    def take(self, skip: Callable[[str], bool]) -> tuple[str, Any] | None:
        """The next run that may start now and its payload, or None.

        Entries for which ``skip(run_id)`` is true (the run already has a worker) are
        dropped; runs whose thread is busy are parked, delayed ones set aside.
        """
        while self._heap:
            entry = heapq.heappop(self._heap)
            run_id = entry[2]
            if skip(run_id) or self._held(entry):
                continue
            return run_id, entry[3]
        return None

    def release(self, run_id: str) -> None:
        """The run's worker ended: the next run parked on its thread may go."""
        thread = self._thread_of.pop(run_id, None)
        if thread is None or self._holder.get(thread) != run_id:
            return
        del self._holder[thread]
        parked = self._parked.pop(thread, None)
        for entry in parked or ():
            heapq.heappush(self._heap, entry)  # original priority and order
        if parked:
            self._wake()

    def close(self) -> None:
        """Cancel the timers of delayed runs (they stay pending in the store)."""
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()

    def _push(self, entry: Entry) -> None:
        heapq.heappush(self._heap, entry)
        self._wake()

    def _held(self, entry: Entry) -> bool:
        """Park or delay an entry that may not start now; True if it was held back."""
        run_id = entry[2]
        not_before = self._not_before.get(run_id)
        if not_before is not None:
            delay = (not_before - utcnow()).total_seconds()
            if delay > 0:
                loop = asyncio.get_running_loop()
                timer: asyncio.TimerHandle | None = None

                def due() -> None:
                    self._timers.discard(timer)  # type: ignore[arg-type]
                    self._push(entry)

                timer = loop.call_later(delay, due)
                self._timers.add(timer)
                return True
            del self._not_before[run_id]
        thread = self._thread_of.get(run_id)
        if thread is None:
            return False
        holder = self._holder.get(thread)
        if holder is not None and holder != run_id:
            self._parked.setdefault(thread, deque()).append(entry)
            return True
        self._holder[thread] = run_id
        return False

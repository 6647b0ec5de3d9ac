"""Prometheus metrics in the text exposition format (0.0.4), written by hand.

* ``graph_runtime_runs{status}``: runs in the store, by status (read from the store per scrape).
* ``graph_runtime_queue_depth``, ``graph_runtime_active_runs``: the run manager, now.
* ``graph_runtime_step_duration_seconds``: a histogram of step durations, fed by the ``step``
  events this process publishes (the bus is tapped, so it costs one dict lookup per event).
* ``graph_runtime_runs_success_ratio``: completed over runs that ended on their own.
* ``graph_runtime_sse_streams``: event streams open now.
"""

from __future__ import annotations

import bisect
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field

from graph_runtime.events import EventBus
from graph_runtime.models import Event, EventType, TaskStatus
from graph_runtime.runtime import Runtime

__all__ = ["CONTENT_TYPE", "Histogram", "Metrics"]

logger = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Step duration buckets in seconds: nodes range from sub-millisecond transforms to LLM calls.
STEP_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Statuses a run reaches by itself; stopped and cancelled runs were ended by a client.
_SELF_ENDED = (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.TIMED_OUT)


@dataclass(slots=True)
class Histogram:
    """A cumulative-bucket histogram."""

    bounds: tuple[float, ...] = STEP_BUCKETS
    counts: list[int] = field(default_factory=list)
    """Observations per bucket (not cumulative), plus one for +Inf."""
    sum: float = 0.0
    count: int = 0

    def __post_init__(self) -> None:
        self.counts = [0] * (len(self.bounds) + 1)

    def observe(self, value: float) -> None:
        """Add one observation."""
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.sum += value
        self.count += 1

    def lines(self, name: str) -> list[str]:
        """The ``_bucket``, ``_sum`` and ``_count`` sample lines."""
        out, running = [], 0
        for bound, n in zip((*self.bounds, math.inf), self.counts, strict=True):
            running += n
            out.append(f'{name}_bucket{{le="{_number(bound)}"}} {running}')
        out += [f"{name}_sum {_number(self.sum)}", f"{name}_count {self.count}"]
        return out


class Metrics:
    """The server's metrics; :meth:`attach` starts observing a bus, :meth:`render` scrapes."""

    def __init__(self) -> None:
        self.step_duration = Histogram()
        self._detach: Callable[[], None] | None = None

    def attach(self, bus: EventBus) -> None:
        """Observe every event ``bus`` publishes from now on (until :meth:`detach`)."""
        self.detach()
        self._detach = bus.observe(self._on_event)

    def detach(self) -> None:
        """Stop observing (the runtime may outlive this app)."""
        if self._detach is not None:
            self._detach()
            self._detach = None

    def _on_event(self, event: Event) -> None:
        if event.type is not EventType.STEP:
            return
        duration_ms = event.data.get("duration_ms")
        if isinstance(duration_ms, int | float) and not isinstance(duration_ms, bool):
            self.step_duration.observe(duration_ms / 1000)

    async def render(self, runtime: Runtime, *, sse_streams: int) -> str:
        """The exposition text."""
        stored = await runtime.store.count_runs()
        counts = {status: stored.get(status, 0) for status in TaskStatus}
        ended = sum(counts[s] for s in _SELF_ENDED)
        ratio = counts[TaskStatus.COMPLETED] / ended if ended else math.nan
        manager = runtime.manager
        lines = _header("graph_runtime_runs", "gauge", "Runs in the store, by status.")
        lines += [f'graph_runtime_runs{{status="{s.value}"}} {n}' for s, n in counts.items()]
        lines += _gauge(
            "graph_runtime_queue_depth", "Runs waiting for a worker.", manager.queue_depth
        )
        lines += _gauge("graph_runtime_active_runs", "Runs executing now.", manager.active_count)
        lines += _header(
            "graph_runtime_step_duration_seconds", "histogram", "Wall time of node steps."
        )
        lines += self.step_duration.lines("graph_runtime_step_duration_seconds")
        lines += _gauge(
            "graph_runtime_runs_success_ratio",
            "Completed runs over completed, failed and timed-out runs (NaN before any).",
            ratio,
        )
        lines += _gauge("graph_runtime_sse_streams", "Event streams open now.", sse_streams)
        return "\n".join(lines) + "\n"


def _header(name: str, kind: str, help_text: str) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]


def _gauge(name: str, help_text: str, value: float) -> list[str]:
    return [*_header(name, "gauge", help_text), f"{name} {_number(value)}"]


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(value) if isinstance(value, float) else str(value)

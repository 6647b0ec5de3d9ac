"""Sans-I/O reconnection logic of ``stream()``, shared by ``Client`` and ``AsyncClient``.

The server keeps a run's stream open until its ``end`` event (also while the run is paused),
but a stream can end early: the network drops, the server drops a slow client, or the server
restarts. The clients keep one ``EventStreamState`` per ``stream()`` call and loop: connect
(``request()``), feed bytes (``feed()``), and unless ``done``, sleep ``backoff()`` and reconnect
with ``Last-Event-ID`` = the last event id yielded. Events are deduplicated by id, so a replayed
event is never yielded twice.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import httpx
import pydantic

from graph_runtime.errors import GraphRuntimeError
from graph_runtime.models import Event, EventType
from graph_runtime.sdk._base import SETTLED, remaining
from graph_runtime.sdk._errors import error_from_response
from graph_runtime.sdk.sse import SSEParser

if TYPE_CHECKING:
    from graph_runtime.sdk._base import _BaseClient

__all__ = ["EventStreamState", "wakes_waiter"]

logger = logging.getLogger(__name__)

# Server-side trouble that a later attempt may not meet (restart, overload, a proxy).
_RETRYABLE_STATUS = frozenset({502, 503, 504})
_SETTLED_VALUES = frozenset(s.value for s in SETTLED)


def wakes_waiter(event: Event) -> bool:
    """Events after which ``wait()`` asks for the status: the end, or a move to a resting state."""
    return event.type is EventType.END or (
        event.type is EventType.STATUS and event.data.get("new") in _SETTLED_VALUES
    )


class EventStreamState:
    """Where one ``stream()`` is: last event id, failures so far, the server's ``retry``."""

    def __init__(
        self, client: _BaseClient, execution_id: str, after: int, deadline: float | None
    ) -> None:
        self.client = client
        self.execution_id = execution_id
        self.last_id = after
        self.deadline = deadline
        self.done = False
        """True once the ``end`` event was yielded."""
        self.failures = 0
        self.connections = 0
        self.retry_ms: int | None = None
        self._parser = SSEParser()
        self._progress = False

    def request(self) -> httpx.Request:
        """The next connection's request (``Last-Event-ID`` on every reconnection)."""
        self._parser = SSEParser()  # a dropped connection's half line must not leak into this one
        self._progress = False
        resume = self.connections > 0 and self.last_id > 0
        self.connections += 1
        return self.client._events_request(
            self.execution_id,
            after=self.last_id,
            resume=resume,
            read_timeout=self._read_timeout(),
        )

    def _read_timeout(self) -> float | None:
        left = remaining(self.deadline)
        read = self.client.timeout.read
        if left is None:
            return read
        return left if read is None else min(read, left)

    def rejected(self, response: httpx.Response) -> Exception:
        """The error of a non-2xx answer (read first): returned if retryable, else raised."""
        error = error_from_response(response, "run")
        if response.status_code in _RETRYABLE_STATUS:
            return error
        raise error

    def feed(self, chunk: bytes) -> list[Event]:
        """The new events in the next piece of the body (none after ``end``)."""
        remaining(self.deadline)
        events: list[Event] = []
        for frame in self._parser.feed_bytes(chunk):
            if self.done:
                break
            try:
                event = Event.model_validate_json(frame.data)
            except pydantic.ValidationError as exc:
                raise GraphRuntimeError(f"unexpected event frame: {frame.data[:200]!r}") from exc
            if event.id <= self.last_id:
                continue  # replayed after a reconnect: already yielded
            if event.id != self.last_id + 1:
                logger.warning(
                    "event ids jump from %d to %d",
                    self.last_id,
                    event.id,
                    extra={"action": "sse_gap", "run_id": self.execution_id},
                )
            self.last_id = event.id
            self._progress = True
            self.done = event.type is EventType.END
            events.append(event)
        if self._parser.retry is not None:  # also set by blocks that carry no event
            self.retry_ms = self._parser.retry
        return events

    def backoff(self, error: Exception | None) -> float:
        """Seconds to wait before reconnecting; raises when retries or time ran out.

        ``error`` is why the last connection ended (None: the server closed it cleanly). A
        connection that brought news resets the count, so only a run of useless attempts fails.
        """
        self.failures = 1 if self._progress else self.failures + 1
        if self.failures > self.client.max_reconnects:
            if error is not None:
                raise error
            raise GraphRuntimeError(
                f"the event stream of run {self.execution_id!r} closed "
                f"{self.failures} times without news"
            )
        base = self.client.reconnect_delay if self.retry_ms is None else self.retry_ms / 1000
        # The cap bounds our doubling, never the server's own `retry:` (honoured at least once).
        cap = max(self.client.max_reconnect_delay, base)
        delay = min(base * 2.0 ** (self.failures - 1), cap)
        left = remaining(self.deadline)
        logger.info(
            "event stream closed; reconnecting",
            extra={"action": "sse_reconnect", "run_id": self.execution_id, "error": repr(error)},
        )
        return delay if left is None else min(delay, left)

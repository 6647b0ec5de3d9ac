"""A run's events as Server-Sent Events (DESIGN.md §7).

Each event is one frame::

    id: 7
    event: step
    data: {"run_id": "...", "id": 7, "type": "step", "data": {...}, "created_at": "..."}

The stream starts after the ``Last-Event-ID`` header (a reconnecting browser sends it) or the
``?after=`` query, replays the stored events, then follows live ones with no gap and no
duplicate (``Runtime.events(..., follow=True)``), and ends after the ``end`` event. Comment
frames (``: heartbeat``) keep idle connections open. A client too slow to keep up is dropped by
the ``EventBus``; its stream then ends, so it reconnects with ``Last-Event-ID`` and replays the
rest from the store, while the run never waits for it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from dataclasses import dataclass
from typing import cast

from sse_starlette import EventSourceResponse, ServerSentEvent
from sse_starlette.sse import SendTimeoutError
from starlette.types import Receive, Scope, Send

from graph_runtime.errors import InputValidationError, Problem
from graph_runtime.models import Event
from graph_runtime.runtime import Runtime

__all__ = ["MAX_EVENT_ID", "EventStream", "StreamStats", "event_stream", "resume_point"]

logger = logging.getLogger(__name__)

#: The largest event id a client may name (the store keeps ids as signed 64-bit integers).
MAX_EVENT_ID = 2**63 - 1
#: A send that cannot finish within this many heartbeats means a frozen client: give up on it.
_SEND_TIMEOUT_HEARTBEATS = 6


@dataclass(slots=True)
class StreamStats:
    """Counts of event streams, for ``/metrics`` and for tests that check nothing leaks."""

    open: int = 0
    """Streams open now."""
    total: int = 0
    """Streams opened since start."""


class EventStream(EventSourceResponse):
    """``EventSourceResponse`` that treats a frozen client's send timeout as a disconnect."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        except SendTimeoutError:
            # The client stopped reading. It was dropped from the bus long ago; ending the
            # response frees the connection (the client reconnects with Last-Event-ID).
            logger.info("closed a frozen event stream", extra={"action": "sse_send_timeout"})


def resume_point(last_event_id: str | None, after: int | None) -> int:
    """The id to resume after: the ``Last-Event-ID`` header wins over ``?after=``.

    Raises:
        InputValidationError: the header is not a whole number from 0 to 2**63-1.
    """
    if last_event_id is None or not last_event_id.strip():
        return after or 0
    text = last_event_id.strip()
    if not text.isascii() or not text.isdigit() or int(text) > MAX_EVENT_ID:
        problem = Problem(path="/Last-Event-ID", message="must be an event id (a whole number)")
        raise InputValidationError("invalid Last-Event-ID header", problems=[problem])
    return int(text)


async def event_stream(
    runtime: Runtime,
    run_id: str,
    after: int,
    *,
    heartbeat: float,
    stats: StreamStats,
) -> EventStream:
    """The SSE response of a run's events after ``after``.

    Raises:
        RunNotFound: before any byte is sent, so the client gets a 404 and not an empty stream.
    """
    await runtime.get_run(run_id)

    async def frames() -> AsyncIterator[ServerSentEvent]:
        stats.open += 1
        stats.total += 1
        try:
            # aclosing: a disconnect cancels this generator; closing the inner one at once
            # releases its bus subscription instead of waiting for garbage collection.
            events = cast(AsyncGenerator[Event], runtime.events(run_id, after, follow=True))
            async with aclosing(events):
                async for event in events:
                    yield ServerSentEvent(
                        data=event.model_dump_json(), event=event.type.value, id=str(event.id)
                    )
        finally:
            stats.open -= 1

    return EventStream(
        frames(),
        ping=heartbeat,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
        send_timeout=max(heartbeat * _SEND_TIMEOUT_HEARTBEATS, 10.0),
    )

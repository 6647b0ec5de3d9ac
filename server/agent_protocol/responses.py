r"""The two long responses of the protocol: a run's SSE stream and the wait/join JSON body.

* :func:`run_stream`: ``text/event-stream`` with ``Location`` (where to rejoin) and
  ``Content-Location`` (the run), ``: heartbeat`` comments every heartbeat period, stored
  events first (after ``Last-Event-ID``), then live ones, closed by ``end``.
* :func:`wait_response`: ``application/json`` sent as it comes: a ``\n`` per heartbeat
  while the run goes on (proxies and the SDK's read timeout see bytes), then the final JSON,
  which is the thread's values, with ``__interrupt__`` at an interrupt or ``__error__``
  when the run failed (agent-protocol.md §2.1).

A client that goes away cancels the run only if it asked to (``on_disconnect=cancel``,
``cancel_on_disconnect=true``); a stream cut by a server shutdown ends without ``end``, so
the SDK reconnects to the next process with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Iterable
from contextlib import aclosing
from typing import Any, cast

from fastapi.responses import StreamingResponse
from sse_starlette import ServerSentEvent

from graph_runtime.errors import InvalidTransition, RunNotFound
from graph_runtime.models import Event, TaskStatus
from server.agent_protocol.protocol import AgentProtocol
from server.agent_protocol.streaming import FrameMapper, end_frame
from server.sse import EventStream, StreamStats

__all__ = ["locations", "run_stream", "wait_response"]

logger = logging.getLogger(__name__)

_SEND_TIMEOUT_HEARTBEATS = 6


def locations(thread_id: str, run_id: str, tail: str) -> dict[str, str]:
    """``Location`` (``…/runs/{id}/<tail>``) and ``Content-Location`` (the run) headers."""
    run = f"/threads/{thread_id}/runs/{run_id}"
    return {"Location": f"{run}/{tail}", "Content-Location": run}


def _settled(status: TaskStatus) -> bool:
    return status.is_terminal or status in (TaskStatus.PAUSED, TaskStatus.CRASHED)


async def _stop_quietly(protocol: AgentProtocol, run_id: str) -> None:
    try:
        await protocol.runtime.stop(run_id)
    except (InvalidTransition, RunNotFound):
        pass  # it ended (or went) meanwhile


def run_stream(
    protocol: AgentProtocol,
    thread_id: str,
    run_id: str,
    *,
    modes: Iterable[str],
    subgraphs: bool,
    after: int,
    cancel_on_disconnect: bool,
    heartbeat: float,
    stats: StreamStats,
) -> EventStream:
    """The SSE response of a run's events after event id ``after``."""
    runtime = protocol.runtime
    mapper = FrameMapper(run_id, modes, subgraphs=subgraphs)

    async def frames() -> AsyncIterator[ServerSentEvent]:
        stats.open += 1
        stats.total += 1
        finished = False
        last_seen = sent = after
        try:
            # aclosing: a disconnect cancels this generator; closing the inner one at once
            # releases its bus subscription.
            events = cast(AsyncGenerator[Event], runtime.events(run_id, after))
            async with aclosing(events):
                async for event in events:
                    last_seen = event.id
                    for frame in mapper.frames(event):
                        if frame.id is not None:
                            sent = event.id
                        yield frame
            if mapper.ended:
                finished = True
                return
            record = await runtime.get_run(run_id)
            if _settled(record.status):
                # Waiting at an interrupt (or ended with no `end` left to replay): close
                # with `end`, carrying the last event's id if no frame had it yet.
                finished = True
                yield end_frame(run_id, record.status, last_seen if last_seen > sent else None)
            # Else the stream was cut (shutdown, a subscriber too slow): no `end`, so the
            # client asks the run and reconnects with Last-Event-ID.
        except RunNotFound:
            finished = True  # deleted while streaming (a stateless run's thread)
        finally:
            stats.open -= 1
            if not finished and cancel_on_disconnect:
                protocol.background.spawn(
                    _stop_quietly(protocol, run_id), name=f"ap-disconnect:{run_id}"
                )

    headers = {**locations(thread_id, run_id, "stream"), "Cache-Control": "no-store"}
    headers["X-Accel-Buffering"] = "no"
    return EventStream(
        frames(),
        headers=headers,
        ping=heartbeat,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
        send_timeout=max(heartbeat * _SEND_TIMEOUT_HEARTBEATS, 10.0),
    )


def wait_response(
    protocol: AgentProtocol,
    thread_id: str,
    run_id: str,
    *,
    cancel_on_disconnect: bool,
    heartbeat: float,
) -> StreamingResponse:
    """``200 application/json``: newlines while the run goes on, then its final values."""

    async def final_values() -> dict[str, Any]:
        # A run with a finisher (webhook, stateless) gets its values from it: the finisher
        # may delete the run's thread as soon as it settles.
        values = await protocol.background.final_values(run_id)
        if values is not None:
            return values
        await protocol.runtime.wait(run_id)
        return await protocol.runs.final_values(await protocol.runtime.get_run(run_id))

    async def body() -> AsyncIterator[bytes]:
        waiter = asyncio.create_task(final_values(), name=f"ap-wait:{run_id}")
        done = False
        try:
            while True:
                finished, _ = await asyncio.wait({waiter}, timeout=heartbeat)
                if finished:
                    break
                yield b"\n"
            values = waiter.result()
            done = True
            yield json.dumps(values, separators=(",", ":"), default=str).encode()
        finally:
            waiter.cancel()
            if not done and cancel_on_disconnect:
                protocol.background.spawn(
                    _stop_quietly(protocol, run_id), name=f"ap-disconnect:{run_id}"
                )

    return StreamingResponse(
        body(), media_type="application/json", headers=locations(thread_id, run_id, "join")
    )

r"""The two long responses of the protocol: a run's SSE stream and the wait/join JSON body.

* :func:`run_stream`: ``text/event-stream`` with ``Location`` (where to rejoin) and
  ``Content-Location`` (the run), ``: heartbeat`` comments every heartbeat period, stored
  events first (after ``Last-Event-ID``), then live ones, closed by ``end``.
* :func:`wait_response`: ``application/json``, the final JSON, which is the thread's
  values, with ``__interrupt__`` at an interrupt or ``__error__`` when the run failed
  (agent-protocol.md §2.1). A run that settles within a heartbeat gets one plain body; a
  longer one sends its headers and a ``\n`` per heartbeat while it goes on (proxies and the
  SDK's read timeout see bytes), then the JSON.

A client that goes away cancels the run only if it asked to (``on_disconnect=cancel``,
``cancel_on_disconnect=true``); a stream cut by a server shutdown ends without ``end``, so
the SDK reconnects to the next process with ``Last-Event-ID``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Coroutine, Iterable, Mapping
from contextlib import aclosing
from typing import Any, cast

from fastapi.responses import Response
from sse_starlette import ServerSentEvent
from starlette.types import Receive, Scope, Send

from graph_runtime.errors import InvalidTransition, RunNotFound
from graph_runtime.models import Event, TaskStatus
from server.agent_protocol.protocol import AgentProtocol
from server.agent_protocol.streaming import FrameMapper, compact_json, end_frame
from server.sse import EventStream, StreamStats

__all__ = ["WaitResponse", "locations", "run_stream", "wait_response"]

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


class WaitResponse(Response):
    r"""``200 application/json`` of a run's final values, with keepalives while it goes on.

    Values ready within the first heartbeat go out as one body with a ``Content-Length``: no
    chunked framing, no task listening for the client. After that, the headers go out with a
    ``\n`` per heartbeat, the values end the (chunked) body, and a client that goes away ends
    the wait. ``on_disconnect`` runs when the client leaves before the values were sent (with
    it, the client is listened for from the start).
    """

    media_type = "application/json"

    def __init__(
        self,
        values: Callable[[], Coroutine[Any, Any, dict[str, Any]]],
        *,
        heartbeat: float,
        headers: Mapping[str, str] | None = None,
        on_disconnect: Callable[[], None] | None = None,
        name: str = "ap-wait",
    ) -> None:
        # No super().__init__: it would render a body and set its Content-Length.
        self.status_code = 200
        self.background = None
        self.init_headers(headers)
        self._values = values
        self._heartbeat = heartbeat
        self._on_disconnect = on_disconnect
        self._name = name

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        waiter = asyncio.create_task(self._values(), name=self._name)
        listener = None if self._on_disconnect is None else _listen(receive, self._name)
        started = done = False
        try:
            while True:
                waiting = {waiter} if listener is None else {waiter, listener}
                finished, _ = await asyncio.wait(
                    waiting, timeout=self._heartbeat, return_when=asyncio.FIRST_COMPLETED
                )
                if waiter in finished:
                    break
                if listener in finished:
                    return  # the client went away
                if not started:
                    start = {"type": "http.response.start", "status": 200}
                    await send({**start, "headers": self.raw_headers})
                    started = True
                    listener = listener or _listen(receive, self._name)
                await send({"type": "http.response.body", "body": b"\n", "more_body": True})
            body = compact_json(waiter.result())
            done = True
            if not started:
                length = (b"content-length", str(len(body)).encode())
                start = {"type": "http.response.start", "status": 200}
                await send({**start, "headers": [*self.raw_headers, length]})
            await send({"type": "http.response.body", "body": body, "more_body": False})
        finally:
            waiter.cancel()
            if listener is not None:
                listener.cancel()
            if not done and self._on_disconnect is not None:
                self._on_disconnect()
        if self.background is not None:
            await self.background()


def _listen(receive: Receive, name: str) -> asyncio.Task[None]:
    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    return asyncio.create_task(disconnected(), name=f"{name}:listen")


def wait_response(
    protocol: AgentProtocol,
    thread_id: str,
    run_id: str,
    *,
    cancel_on_disconnect: bool,
    heartbeat: float,
) -> WaitResponse:
    """``200 application/json``: the run's final values once it settles (see ``WaitResponse``)."""

    async def final_values() -> dict[str, Any]:
        # A run with a finisher (webhook, stateless) gets its values from it: the finisher
        # may delete the run's thread as soon as it settles.
        values = await protocol.background.final_values(run_id)
        if values is not None:
            return values
        settled = await protocol.runtime.settle(run_id)
        return await protocol.runs.final_values(settled)

    def stop_run() -> None:
        protocol.background.spawn(_stop_quietly(protocol, run_id), name=f"ap-disconnect:{run_id}")

    return WaitResponse(
        final_values,
        heartbeat=heartbeat,
        headers=locations(thread_id, run_id, "join"),
        on_disconnect=stop_run if cancel_on_disconnect else None,
        name=f"ap-wait:{run_id}",
    )

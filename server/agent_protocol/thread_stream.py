"""``GET /threads/{id}/stream``: every run of a thread, one after another, as one SSE stream.

Each run's events are mapped as in a run stream (:class:`FrameMapper`), without their ``end``;
after each run comes ``metadata {"status": "run_done", "run_id"}``, as the reference sends.
The stream follows the thread until the client leaves: runs created later are streamed when
they start. Without ``Last-Event-ID`` it starts at the runs pending or running now.

Ids stay integers that strictly increase across runs: ``created_ms << 20 | event_id`` (the
run's creation time in milliseconds, then its own event id; ``run_done`` takes the largest
event id), so a reconnect resumes exactly where it left off, in this run or a later one.
The modes are ``run_modes`` (each run's own, the default), ``lifecycle`` (only ``run_done``),
or protocol stream modes; ``stream_mode`` and ``stream_modes`` are both read (the SDK sends
the first, the reference reads the second: agent-protocol.md §2.6).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from typing import cast

from sse_starlette import ServerSentEvent

from checkpoints.store import RunRecord
from graph_runtime.errors import RunNotFound
from graph_runtime.models import Event, TaskStatus
from server.agent_protocol.protocol import AgentProtocol
from server.agent_protocol.runs import AP_KEY
from server.agent_protocol.streaming import FrameMapper, parse_stream_modes
from server.agent_protocol.threads import ACTIVE
from server.sse import EventStream, StreamStats

__all__ = ["EVENT_BITS", "thread_event_id", "thread_stream"]

#: Bits of a thread stream id that hold the run's own event id.
EVENT_BITS = 20
_RUN_DONE = (1 << EVENT_BITS) - 1
_SPECIAL = frozenset({"run_modes", "lifecycle", "state_update"})


def thread_event_id(run: RunRecord, event_id: int) -> int:
    """The thread stream id of a run's event."""
    return (int(run.created_at.timestamp() * 1000) << EVENT_BITS) | min(event_id, _RUN_DONE)


def _modes(values: Sequence[str]) -> tuple[set[str], bool, bool]:
    """(protocol modes, each run's own modes, lifecycle only) from the query values."""
    special = {v for raw in values for v in str(raw).split(",") if v.strip() in _SPECIAL}
    rest = [v.strip() for raw in values for v in str(raw).split(",") if v.strip() not in _SPECIAL]
    modes = set(parse_stream_modes(rest, "/stream_mode"))
    if "state_update" in {s.strip() for s in special}:
        modes.add("values")
    lifecycle = {s.strip() for s in special} == {"lifecycle"} and not modes
    return modes, not modes and not lifecycle, lifecycle


def thread_stream(
    protocol: AgentProtocol,
    thread_id: str,
    *,
    mode_values: Sequence[str],
    last_event_id: str | None,
    heartbeat: float,
    stats: StreamStats,
) -> EventStream:
    """The SSE response of a thread's runs."""
    modes, run_modes, lifecycle = _modes(mode_values)
    cursor: int | None = None
    if last_event_id is not None:
        text = last_event_id.strip()
        cursor = int(text) if text.isdigit() and len(text) <= 19 else 0
    poll = min(heartbeat, 0.5)

    async def frames() -> AsyncIterator[ServerSentEvent]:
        stats.open += 1
        stats.total += 1
        done: set[str] = set()
        first_scan = True
        try:
            while True:
                for run in reversed(await protocol.threads.runs_of(thread_id)):
                    if run.run_id in done:
                        continue
                    base = thread_event_id(run, 0)
                    if cursor is not None and base | _RUN_DONE <= cursor:
                        done.add(run.run_id)  # already sent before the reconnect
                        continue
                    if cursor is None and first_scan and run.status not in ACTIVE:
                        done.add(run.run_id)  # history: a join starts at the live runs
                        continue
                    after = cursor - base if cursor is not None and cursor > base else 0
                    ended = False
                    async for frame in _run_frames(protocol, run, after, modes, run_modes):
                        if frame is None:
                            ended = True
                        elif not lifecycle:
                            yield frame
                    if not ended:
                        return  # cut (shutdown, a slow client): the client reconnects
                    done.add(run.run_id)
                    data = {"status": "run_done", "run_id": run.run_id}
                    yield ServerSentEvent(
                        data=json.dumps(data), event="metadata", id=str(base | _RUN_DONE)
                    )
                first_scan = False
                await asyncio.sleep(poll)  # wait for the thread's next run
        finally:
            stats.open -= 1

    return EventStream(
        frames(),
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        ping=heartbeat,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
        send_timeout=max(heartbeat * 6, 10.0),
    )


async def _run_frames(
    protocol: AgentProtocol, run: RunRecord, after: int, modes: set[str], run_modes: bool
) -> AsyncIterator[ServerSentEvent | None]:
    """One run's frames with thread ids; None once the run settled (its events are all out)."""
    runtime = protocol.runtime
    kwargs = (run.metadata.get(AP_KEY) or {}).get("kwargs") or {}
    own = list(kwargs.get("stream_mode") or ["values"]) if run_modes else sorted(modes)
    mapper = FrameMapper(run.run_id, own, subgraphs=bool(kwargs.get("subgraphs")))
    try:
        events = cast(AsyncGenerator[Event], runtime.events(run.run_id, after))
        async with aclosing(events):
            async for event in events:
                for frame in mapper.frames(event):
                    if frame.event == "end":
                        continue  # run_done stands for it on a thread stream
                    ident = None if frame.id is None else str(thread_event_id(run, event.id))
                    yield ServerSentEvent(data=frame.data, event=frame.event, id=ident)
        record = await runtime.get_run(run.run_id)
    except RunNotFound:
        yield None  # deleted meanwhile: nothing more to send
        return
    if record.status.is_terminal or record.status in (TaskStatus.PAUSED, TaskStatus.CRASHED):
        yield None

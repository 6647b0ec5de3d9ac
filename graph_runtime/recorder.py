"""The callback layer: node attempts and LangGraph stream chunks become step records and events.

One ``EventRecorder`` per run. Node wrappers call ``step()`` when an attempt ends (so a record
exists before the run pulls its next superstep); the run loop feeds LangGraph's ``custom``,
``messages`` and ``updates`` chunks to ``on_chunk()``. Every event gets the next per-run id.
A step is keyed by (task id, attempt): an attempt that is re-executed after a resume is not
recorded twice.

With a ``persist`` callback (the run store), ``flush()`` writes what was recorded, in event-id
order, before publishing it; status changes go through ``transition()``, which flushes first
and writes the status with its event in one store call, so a reader that replays the store by
event id never sees a gap.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from langchain_core.messages import AIMessage

from checkpoints.store import LogRecord
from graph_runtime.expressions import to_view
from graph_runtime.models import ErrorCode, Event, EventType, TaskStatus, TaskStepResult, utcnow
from graph_runtime.state_machine import check_transition

__all__ = ["STEP_MARKER", "EventRecorder"]

logger = logging.getLogger(__name__)

#: Key of the ``custom`` chunks that carry our own records (kept out of ``custom`` events).
STEP_MARKER = "__graph_runtime__"

EventSink = Callable[[Event], None]
PersistFn = Callable[
    [Sequence[Event], Sequence[TaskStepResult], Sequence[LogRecord]], Awaitable[None]
]
ApplyFn = Callable[[Event], Awaitable[Any]]


class EventRecorder:
    """Builds the ``TaskStepResult`` records and events of one run."""

    def __init__(
        self,
        run_id: str,
        *,
        expected_steps: int = 0,
        sink: EventSink | None = None,
        last_event_id: int = 0,
        last_seq: int = 0,
        seen_keys: Iterable[tuple[str, int]] = (),
        status: TaskStatus | None = None,
        persist: PersistFn | None = None,
        publish: EventSink | None = None,
        keep_steps: bool = True,
    ) -> None:
        self.run_id = run_id
        self.expected_steps = expected_steps
        self.sink = sink
        self.current_status = status
        """The run's status as this recorder last wrote it."""
        self.persist = persist
        self.publish = publish
        self.keep_steps = keep_steps
        self._out_events: list[Event] = []
        self._out_steps: list[TaskStepResult] = []
        self._out_logs: list[LogRecord] = []
        # One flush (or transition) at a time, in FIFO order: events commit in id order.
        self._lock = asyncio.Lock()
        self._event_id = last_event_id
        self._seq = last_seq
        self._seen: set[tuple[str, int]] = set(seen_keys)
        self.pending: list[Event] = []
        """Events not yet taken by ``drain()``."""
        self.steps: list[TaskStepResult] = []
        self.completed_steps = 0
        self.current_node: str | None = None
        self.output: Any = None
        self.has_output = False
        self.interrupts: list[dict[str, Any]] = []

    # -- events -------------------------------------------------------------------------------

    def emit(self, type_: EventType, data: dict[str, Any]) -> Event:
        """Create the next event and hand it to the sink."""
        self._event_id += 1
        event = Event(run_id=self.run_id, id=self._event_id, type=type_, data=data)
        self.pending.append(event)
        if self.persist is not None or self.publish is not None:
            self._out_events.append(event)
        if self.sink is not None:
            self.sink(event)
        return event

    async def flush(self) -> None:
        """Persist what was recorded since the last flush, then publish its events."""
        if not (self._out_events or self._out_steps or self._out_logs):
            return
        async with self._lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        events, steps, logs = self._out_events, self._out_steps, self._out_logs
        if not (events or steps or logs):
            return
        self._out_events, self._out_steps, self._out_logs = [], [], []
        if self.persist is not None:
            # Shielded: a stop that cancels the run must not cut a write in half.
            await asyncio.shield(self.persist(events, steps, logs))
        if self.publish is not None:
            for event in events:
                self.publish(event)

    async def transition(
        self, new: TaskStatus, message: str = "", *, apply: ApplyFn | None = None, **extra: Any
    ) -> Event:
        """Change the run's status: flush, then write the status and its event together.

        ``apply(event)`` writes both (``RunStore.transition``); without it the event is
        recorded like any other.

        Raises:
            InvalidTransition: the change is not legal from the current status.
        """
        async with self._lock:
            old = self.current_status
            if old is not None:
                check_transition(old, new)
            await self._flush_locked()
            data: dict[str, Any] = {
                "old": old.value if old else None,
                "new": new.value,
                "message": message,
            }
            data.update(extra)
            if apply is None:
                event = self.emit(EventType.STATUS, data)
                await self._flush_locked()
            else:
                # No await between taking the id and writing it: ids stay gap-free.
                self._event_id += 1
                event = Event(
                    run_id=self.run_id, id=self._event_id, type=EventType.STATUS, data=data
                )
                self.pending.append(event)
                if self.sink is not None:
                    self.sink(event)
                await apply(event)
                if self.publish is not None:
                    self.publish(event)
            self.current_status = new
            return event

    def drain(self) -> list[Event]:
        """Take the events emitted since the last call."""
        out, self.pending = self.pending, []
        return out

    @property
    def last_event_id(self) -> int:
        """Id of the last event emitted."""
        return self._event_id

    @property
    def progress(self) -> float:
        """Finished steps over expected steps, capped at 1.0."""
        if self.expected_steps <= 0:
            return 0.0
        return min(1.0, self.completed_steps / self.expected_steps)

    def status(
        self, old: TaskStatus | None, new: TaskStatus, message: str = "", **extra: Any
    ) -> Event:
        """A status change."""
        data: dict[str, Any] = {
            "old": old.value if old else None,
            "new": new.value,
            "message": message,
        }
        data.update(extra)
        return self.emit(EventType.STATUS, data)

    def log(self, level: str, message: str, node_id: str | None = None) -> Event:
        """A log line (an event, and a row of the run's log)."""
        event = self.emit(EventType.LOG, {"level": level, "message": message, "node_id": node_id})
        if self.persist is not None:
            # The log id is the event id, so a replayed write is idempotent.
            self._out_logs.append(
                LogRecord(
                    run_id=self.run_id, id=event.id, level=level, message=message, node_id=node_id
                )
            )
        return event

    def end(self, status: TaskStatus, **extra: Any) -> Event:
        """The last event of a run (until it is resumed)."""
        return self.emit(EventType.END, {"status": status.value, **extra})

    # -- steps --------------------------------------------------------------------------------

    def step(
        self,
        *,
        node_id: str,
        node_type: str,
        task_id: str | None,
        attempt: int,
        started_at: dt.datetime,
        result: Any = None,
        error_code: ErrorCode | None = None,
        error_message: str | None = None,
        status: TaskStatus | None = None,
        message: str = "",
    ) -> TaskStepResult | None:
        """Record one finished attempt; returns None when (task, attempt) was already recorded."""
        if task_id is not None:
            key = (task_id, attempt)
            if key in self._seen:
                return None
            self._seen.add(key)
        finished = utcnow()
        if status is None:
            status = TaskStatus.COMPLETED if error_code is None else TaskStatus.FAILED
        self._seq += 1
        record = TaskStepResult(
            step=node_id,
            result=result,
            completed=status is TaskStatus.COMPLETED,
            message=message or _default_message(node_id, status, error_code),
            status=status,
            error_code=error_code,
            error_message=error_message if error_code is not None else None,
            run_id=self.run_id,
            seq=self._seq,
            task_id=task_id,
            node_type=node_type,
            attempt=attempt,
            started_at=started_at,
            finished_at=finished,
            duration_ms=round((finished - started_at).total_seconds() * 1000, 3),
        )
        # Tool calls (``node.tool``) and subgraph steps (``node/child``) are inside a step
        # that counts on its own; counting them too would overshoot the progress.
        if record.completed and "." not in node_id and "/" not in node_id:
            self.completed_steps += 1
        self.current_node = node_id
        if self.keep_steps:
            self.steps.append(record)
        if self.persist is not None:
            self._out_steps.append(record)
        self.emit(EventType.STEP, record.dict())
        return record

    # -- LangGraph stream chunks ----------------------------------------------------------------

    def on_chunk(self, namespace: tuple[str, ...], mode: str, chunk: Any) -> None:
        """Turn one ``astream(..., subgraphs=True)`` chunk into events."""
        if mode == "updates":
            self._on_updates(namespace, chunk)
        elif mode == "custom":
            if isinstance(chunk, dict) and STEP_MARKER in chunk:
                return
            self.emit(
                EventType.CUSTOM,
                {"node_id": _node_of(namespace), "data": to_view(chunk), "ns": list(namespace)},
            )
        elif mode == "messages":
            message, metadata = chunk
            content = getattr(message, "content", "")
            # Only model output is a token: LangGraph also emits the human and tool messages
            # a node writes to state (an llm node's prompt with append_messages).
            if isinstance(message, AIMessage) and content:
                self.emit(
                    EventType.TOKEN,
                    {
                        "node_id": metadata.get("langgraph_node")
                        if isinstance(metadata, dict)
                        else None,
                        "content": content if isinstance(content, str) else to_view(content),
                        "message_id": message.id,
                    },
                )

    def _on_updates(self, namespace: tuple[str, ...], chunk: Any) -> None:
        if not isinstance(chunk, dict):
            return
        if "__interrupt__" in chunk:
            for intr in chunk["__interrupt__"]:
                value = {
                    "value": to_view(getattr(intr, "value", intr)),
                    "id": getattr(intr, "id", None),
                }
                # An interrupt inside a subgraph is reported by the subgraph and again by
                # every parent on the way up, with the same id: one event, the innermost.
                if value["id"] is not None and any(i["id"] == value["id"] for i in self.interrupts):
                    continue
                self.interrupts.append(value)
                self.emit(EventType.INTERRUPT, {**value, "ns": list(namespace)})
            return
        if namespace:
            return  # a subgraph's own updates do not make the parent's result
        for update in chunk.values():
            if isinstance(update, dict) and "__output__" in update:
                self.output = update["__output__"]
                self.has_output = True


def _node_of(namespace: tuple[str, ...]) -> str | None:
    return namespace[-1].split(":", 1)[0] if namespace else None


def _default_message(node_id: str, status: TaskStatus, code: ErrorCode | None) -> str:
    if code is None:
        return f"{node_id} {status.value}"
    return f"{node_id} {status.value} ({code.value}: {code.description})"

"""The callback layer: node attempts and LangGraph stream chunks become step records and events.

One ``EventRecorder`` per run. Node wrappers call ``step()`` when an attempt ends, then
``settle()``, so the record is on its way to the store before LangGraph hears of the
outcome; chunks a node writes (``ctx.writer``) come in through ``custom()``; the run loop
feeds LangGraph's ``messages`` and ``updates`` chunks to ``on_chunk()``, then calls
``settle()`` before it pulls the next chunk. Every event gets the next per-run id. A step is
keyed by (task id, attempt): an attempt that is re-executed after a resume is not recorded
twice.

With a ``persist`` callback (the run store's ``queue_records``), records are queued with the
store as rows, in event-id order, and each event is published once its write committed, in
id order. A step's row holds its event (the store rebuilds the event from it), unless the
step's result is not plain JSON: that event gets an ``events`` row with the data as published.
``settle()`` either waits for the commit (``await_steps``: the store commits apart from the
checkpointer, so a step record must be durable before LangGraph saves the task's writes) or
only queues the write (the store commits through the checkpointer's writer, in queue order:
a record queued before a checkpoint is durable no later than that checkpoint, so waiting
would only cost a commit of its own). Status changes go through ``transition()``, which
flushes first and writes the status with its event (and a final ``end`` event) in one store
call, so a reader that replays the store by event id never sees a gap.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from langchain_core.callbacks import AsyncCallbackManager, BaseCallbackHandler
from langchain_core.messages import AIMessage

from checkpoints.store import LogRecord, RecordRows, event_to_row, step_to_row
from graph_runtime import failpoints
from graph_runtime._durable import DurableWrites, EventSink, PersistFn
from graph_runtime._records import new_event, record_of, step_parts, step_values, step_view
from graph_runtime.expressions import to_view
from graph_runtime.models import ErrorCode, Event, EventType, TaskStatus, TaskStepResult
from graph_runtime.state_machine import check_transition

__all__ = ["STEP_MARKER", "ApplyFn", "EventRecorder", "PersistFn"]

logger = logging.getLogger(__name__)

#: Key of the ``custom`` chunks that carry our own records (kept out of ``custom`` events).
STEP_MARKER = "__graph_runtime__"

ApplyFn = Callable[[Event, Sequence[Event]], Awaitable[Any]]
"""``apply(status_event, followed_by)``: writes the status change, its event and the events
that follow it (a terminal status's ``end``) in one transaction (``RunStore.transition``)."""


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
        await_steps: bool = True,
    ) -> None:
        self.run_id = run_id
        self.expected_steps = expected_steps
        self.sink = sink
        self.current_status = status
        """The run's status as this recorder last wrote it."""
        self.persist = persist
        self.publish = publish
        self.keep_steps = keep_steps
        self.await_steps = await_steps
        """``settle()`` waits for the commit (else it only queues the write)."""
        self._out_events: list[Event] = []
        self._out_event_rows: list[dict[str, Any]] = []
        self._out_steps: list[dict[str, Any]] = []  # rows
        self._out_logs: list[dict[str, Any]] = []  # rows
        # Writes queued with the store; each publishes its events once durable.
        self._writes = DurableWrites(persist, publish) if persist is not None else None
        # One flush (or transition) at a time, in FIFO order: events commit in id order.
        self._lock = asyncio.Lock()
        # Set while transition() holds a status event whose write is not queued yet: no
        # write may be queued ahead of it (its id is lower), so submit() keeps records back.
        self._in_transition = False
        self._event_id = last_event_id
        self._seq = last_seq
        self._seen: set[tuple[str, int]] = set(seen_keys)
        self.steps: list[TaskStepResult] = []
        self.completed_steps = 0
        self.current_node: str | None = None
        self.output: Any = None
        self.has_output = False
        self.values: dict[str, Any] | None = None
        """The graph's state once it ended (see :meth:`final_values_callbacks`)."""
        self.interrupts: list[dict[str, Any]] = []
        self.interrupted = False
        """An ``__interrupt__`` update was seen: the graph stopped at an interrupt or breakpoint."""
        self.deadline: float | None = None
        """Event-loop time at which the run's timeout cuts it (a step cut then is E002)."""

    # -- events -------------------------------------------------------------------------------

    def emit(
        self,
        type_: EventType,
        data: dict[str, Any],
        *,
        at: dt.datetime | None = None,
        row: bool = True,
    ) -> Event:
        """Create the next event (at ``at``, default now) and hand it to the sink.

        ``row=False``: the event is stored by another row (a step's, which holds its id).
        """
        self._event_id += 1
        event = _event(self.run_id, self._event_id, type_, data, at)
        if self.persist is not None or self.publish is not None:
            self._out_events.append(event)
            if row and self.persist is not None:
                self._out_event_rows.append(event_to_row(event))
        if self.sink is not None:
            self.sink(event)
        return event

    def submit(self, *, lazy: bool = False, urgent: bool = False, followed: bool = False) -> None:
        """Queue what was recorded since the last call with the store; do not wait.

        Without ``persist`` the events are published at once. Raises the error of a queued
        write that failed since the last call.

        Args:
            lazy: The write asks for no commit of its own (it joins the next one).
            urgent: The caller waits for the write next (the store may commit it at once).
            followed: (with ``lazy``) a checkpointer commit is known to follow: the task
                that recorded it returns writes, which LangGraph saves next.
        """
        writes = self._writes
        if writes is not None and writes.failure is not None:
            writes.raise_failure()
        if self._in_transition or not (self._out_events or self._out_steps or self._out_logs):
            return
        events = self._out_events
        rows = RecordRows(self._out_event_rows, self._out_steps, self._out_logs)
        self._out_events, self._out_event_rows, self._out_steps, self._out_logs = [], [], [], []
        if writes is None:
            if self.publish is not None:
                for event in events:
                    self.publish(event)
            return
        # No await from taking the records to queuing them: queue order is id order.
        writes.queue(events, rows, lazy=lazy, urgent=urgent, followed=followed)

    async def settle(self, *, followed: bool = False) -> None:
        """Make the run's records safe to move on from (called by nodes and the run loop).

        With ``await_steps`` this is :meth:`flush`. Otherwise the store commits through the
        checkpointer's writer in queue order, and queuing (:meth:`submit`) already makes
        the records durable no later than the next checkpoint; a status change being
        written makes it wait for the lock instead, so nothing is queued ahead of it.

        ``followed``: the caller knows a checkpointer commit follows (a node that returns
        writes, under a durability that saves them): the records join it, with no timer
        of their own in case none came.
        """
        if self.await_steps or self._in_transition:
            await self.flush()
        else:
            self.submit(lazy=True, followed=followed)

    async def flush(self) -> None:
        """Queue what was recorded, wait until every queued write is durable, publish."""
        writes = self._writes
        if not (self._out_events or self._out_steps or self._out_logs) and not (
            writes is not None and writes.pending
        ):
            if writes is not None and writes.failure is not None:
                writes.raise_failure()
            return
        async with self._lock:
            await self._flush_locked()

    async def _flush_locked(self) -> None:
        # Urgent: this waits for the commit, so a run writing alone commits at once rather
        # than a loop turn later (and then does not suspend at all).
        self.submit(urgent=True)
        if self._writes is not None:
            await self._writes.wait()

    async def transition(
        self,
        new: TaskStatus,
        message: str = "",
        *,
        apply: ApplyFn | None = None,
        end: dict[str, Any] | None = None,
        **extra: Any,
    ) -> Event:
        """Change the run's status: flush, then write the status and its event together.

        ``apply(event, followed_by)`` writes them (``RunStore.transition``); without it the
        event is recorded like any other. ``end``: the data of an ``end`` event written in
        the same transaction, right after the status event (so whoever sees the final
        status in the store sees the end of the event stream too).

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
                if end is not None:
                    self.emit(EventType.END, end)
                await self._flush_locked()
            else:
                # No await between taking the id and queuing its write (the store queues it
                # before it first suspends): ids stay gap-free. Until apply() returns, a node
                # that records a step waits for the lock instead of queuing ahead of it.
                self._in_transition = True
                try:
                    event = self._take(EventType.STATUS, data)
                    after = [self._take(EventType.END, end)] if end is not None else []
                    await apply(event, after)
                    failpoints.hit("after_status_write")
                finally:
                    self._in_transition = False
                if self.publish is not None:
                    for done in (event, *after):
                        self.publish(done)
            self.current_status = new
            return event

    def _take(self, type_: EventType, data: dict[str, Any]) -> Event:
        """The next event, for a write of its own (not queued with the records)."""
        self._event_id += 1
        event = _event(self.run_id, self._event_id, type_, data)
        if self.sink is not None:
            self.sink(event)
        return event

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
                ).to_row()
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
    ) -> None:
        """Record one finished attempt (nothing when (task, attempt) was already recorded)."""
        if task_id is not None:
            key = (task_id, attempt)
            if key in self._seen:
                return
            self._seen.add(key)
        finished = dt.datetime.now(dt.UTC)  # utcnow(), one call less per step
        if status is None:
            status = TaskStatus.COMPLETED if error_code is None else TaskStatus.FAILED
        self._seq += 1
        values = step_values(
            step=node_id,
            result=result,
            status=status,
            message=message or _default_message(node_id, status, error_code),
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
        persist = self.persist is not None
        # The event data and the row, without a record (the common case), unless the
        # record is kept or a value needs validating.
        parts = None if self.keep_steps else step_parts(values, row=persist)
        if parts is None:
            record = record_of(values)
            completed = record.completed
            if self.keep_steps:
                self.steps.append(record)
            view = step_view(record)
            row = step_to_row(self.run_id, record) if persist else None
        else:
            view, row = parts
            completed = values["completed"]
        # Tool calls (``node.tool``) and subgraph steps (``node/child``) are inside a step
        # that counts on its own; counting them too would overshoot the progress.
        if completed and "." not in node_id and "/" not in node_id:
            self.completed_steps += 1
        self.current_node = node_id
        # The event's time is the record's finished_at, as the store rebuilds it. The fast
        # path's row stands for the event too; the other writes an events row with the data
        # as published (a result converted to JSON would not read back the same).
        event = self.emit(EventType.STEP, view, at=finished, row=parts is None)
        if row is not None:
            if parts is not None:
                row["event_id"] = event.id
            self._out_steps.append(row)

    def final_values_callbacks(self) -> AsyncCallbackManager:
        """Callbacks for ``astream``'s config that set :attr:`values` when the graph ends.

        LangGraph ends a run by reporting its final channel values to the run's callbacks
        (``on_chain_end``), the values a last ``values`` chunk would carry. Streaming
        ``values`` for them costs a chunk every superstep, reading them back from the
        checkpointer costs a query; this costs one call. The handler is not inheritable:
        the graph's nodes and subgraphs run without it.
        """
        return AsyncCallbackManager(handlers=[_FinalValues(self)], inheritable_handlers=[])

    # -- LangGraph stream chunks ----------------------------------------------------------------

    def on_chunk(self, namespace: tuple[str, ...], mode: str, chunk: Any) -> None:
        """Turn one ``astream(..., subgraphs=True)`` chunk into events."""
        if mode == "updates":
            self._on_updates(namespace, chunk)
        elif mode == "values":
            if not namespace and isinstance(chunk, dict):
                self.values = chunk
        elif mode == "custom":
            self._custom_event(namespace, chunk)
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

    def custom(self, namespace: tuple[str, ...], chunk: Any) -> None:
        """A chunk a node wrote (``ctx.writer``): an event, queued with the store at once."""
        self._custom_event(namespace, chunk)
        # Lazily when the store shares the checkpointer's writer (it joins the next commit),
        # else now: a long node's progress reaches subscribers while it runs.
        self.submit(lazy=not self.await_steps)

    def _custom_event(self, namespace: tuple[str, ...], chunk: Any) -> None:
        if isinstance(chunk, dict) and STEP_MARKER in chunk:
            return
        self.emit(
            EventType.CUSTOM,
            {"node_id": _node_of(namespace), "data": to_view(chunk), "ns": list(namespace)},
        )

    def _on_updates(self, namespace: tuple[str, ...], chunk: Any) -> None:
        if not isinstance(chunk, dict):
            return
        if "__interrupt__" in chunk:
            # A breakpoint (interrupt_before/after) reports an empty tuple: no event, but the
            # run is waiting all the same.
            self.interrupted = True
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


class _FinalValues(BaseCallbackHandler):
    """Hears the end of a run's graph (its root run only: the handler is not inherited)."""

    run_inline = True

    def __init__(self, recorder: EventRecorder) -> None:
        self._recorder = recorder

    def on_chain_end(self, outputs: Any, **kwargs: Any) -> None:
        if isinstance(outputs, dict):
            self._recorder.values = outputs


def _event(
    run_id: str,
    event_id: int,
    type_: EventType,
    data: dict[str, Any],
    at: dt.datetime | None = None,
) -> Event:
    # Every field is built here with its exact type (id >= 1 from the counter): skip the
    # validation, which costs more than the rest of an event's bookkeeping.
    return new_event(run_id, event_id, type_, data, at or dt.datetime.now(dt.UTC))


def _node_of(namespace: tuple[str, ...]) -> str | None:
    return namespace[-1].split(":", 1)[0] if namespace else None


def _default_message(node_id: str, status: TaskStatus, code: ErrorCode | None) -> str:
    if code is None:
        return f"{node_id} {status._value_}"
    return f"{node_id} {status.value} ({code.value}: {code.description})"

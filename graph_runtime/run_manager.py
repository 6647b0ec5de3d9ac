"""RunManager: the priority queue, the concurrency cap, the workers and the run controls.

* **Queue**: priority 1-10 (10 first), FIFO within a priority, at most ``max_concurrent_runs``
  workers at once.
* **Pause**: ``RunControl.request_drain("pause")``; LangGraph stops at the next superstep
  boundary with the checkpoint saved and raises ``GraphDrained``; status → paused.
* **Resume**: continue from the checkpoint (``Command(resume=value)`` answers an ``interrupt()``).
* **Stop**: running → stopping, the worker task is cancelled (a ``wait`` is cut at once), the cut
  step is recorded with E004, status → stopped. **Cancel** ends a run that never started.

Every control is a compare-and-set on the stored status: a duplicate or late request raises
``InvalidTransition`` (HTTP 409) and never runs anything twice.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import uuid
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from langgraph.errors import GraphDrained, GraphRecursionError
from langgraph.runtime import RunControl
from langgraph.types import Command

from checkpoints.store import RunRecord, RunStore
from graph_runtime._integrations import check_answer
from graph_runtime.compiler import CompiledWorkflow, Compiler, RunContext
from graph_runtime.errors import ConflictError, GraphRuntimeError, InvalidTransition
from graph_runtime.events import EventBus
from graph_runtime.models import ErrorCode, Event, EventType, TaskStatus, utcnow
from graph_runtime.recorder import EventRecorder
from graph_runtime.schema import WorkflowDefinition
from graph_runtime.validation import load_workflow

__all__ = ["RunManager"]

logger = logging.getLogger(__name__)

_NO_VALUE = object()


@dataclass(eq=False, slots=True)
class _Active:
    run_id: str
    recorder: EventRecorder
    control: RunControl = field(default_factory=RunControl)
    task: asyncio.Task[None] | None = None
    stop_requested: bool = False
    pause_requested: bool = False


class RunManager:
    """Owns the run queue and the worker tasks of one process."""

    def __init__(
        self,
        store: RunStore,
        compiler: Compiler,
        bus: EventBus,
        *,
        max_concurrent_runs: int = 16,
        services: Mapping[str, Any] | None = None,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.compiler = compiler
        self.bus = bus
        self.max_concurrent_runs = max_concurrent_runs
        self.services = dict(services or {})
        self.owner = owner or uuid.uuid4().hex
        self._heap: list[tuple[int, int, str, Any]] = []
        self._counter = itertools.count()
        self._wake = asyncio.Event()
        self._active: dict[str, _Active] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._definitions: dict[tuple[str, int | None], WorkflowDefinition] = {}
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the dispatcher; queue the pending runs left in the store."""
        for rec in await self.store.list_runs(status=[TaskStatus.PENDING], limit=1_000_000):
            self._enqueue(rec.run_id, rec.priority)
        self._dispatcher = asyncio.create_task(self._dispatch(), name="run-dispatcher")

    async def close(self, grace: float = 10.0) -> None:
        """Drain every run at its next superstep boundary, wait ``grace`` s, cancel the rest."""
        self._closing = True
        for active in list(self._active.values()):
            active.control.request_drain("shutdown")
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.wait(pending, timeout=5)
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        self.bus.close_all()

    @property
    def queue_depth(self) -> int:
        """Runs waiting for a worker."""
        return len(self._heap)

    @property
    def active_count(self) -> int:
        """Runs executing now."""
        return len(self._active)

    def active_recorder(self, run_id: str) -> EventRecorder | None:
        """The live recorder of a run executing in this process."""
        active = self._active.get(run_id)
        return active.recorder if active else None

    # -- submit ---------------------------------------------------------------------------------

    def definition(
        self, workflow_id: str, version: int | None, document: Mapping[str, Any]
    ) -> WorkflowDefinition:
        """The parsed definition of a stored workflow version (cached)."""
        key = (workflow_id, version)
        hit = self._definitions.get(key)
        if hit is None:
            hit = load_workflow(document, workflow_id=workflow_id, registry=self.compiler.registry)
            if version is not None:
                hit = hit.model_copy(update={"version": version})
            self._definitions[key] = hit
        return hit

    async def submit(
        self,
        *,
        workflow_id: str,
        version: int,
        input: Mapping[str, Any],
        run_id: str | None = None,
        priority: int = 5,
        timeout_seconds: float | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> tuple[RunRecord, bool]:
        """Store a pending run and queue it. ``run_id`` is an idempotency key.

        Returns:
            The run, and whether this call created it (False: it existed; nothing new runs).
        """
        run_id = run_id or uuid.uuid4().hex
        now = utcnow()
        record = RunRecord(
            run_id=run_id,
            workflow_id=workflow_id,
            workflow_version=version,
            thread_id=run_id,
            status=TaskStatus.PENDING,
            priority=priority,
            input=dict(input),
            timeout_seconds=timeout_seconds,
            metadata=dict(metadata or {}),
            created_at=now,
            updated_at=now,
        )
        event = Event(
            run_id=run_id,
            id=1,
            type=EventType.STATUS,
            data={"old": None, "new": TaskStatus.PENDING.value, "message": "submitted"},
        )
        stored, created = await self.store.create_run(record, event)
        if created:
            self.bus.publish(event)
            self._enqueue(run_id, priority)
        return stored, created

    def _enqueue(self, run_id: str, priority: int, payload: Any = _NO_VALUE) -> None:
        heapq.heappush(self._heap, (-priority, next(self._counter), run_id, payload))
        self._wake.set()

    async def _dispatch(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._heap and len(self._tasks) < self.max_concurrent_runs and not self._closing:
                _, _, run_id, payload = heapq.heappop(self._heap)
                if run_id in self._active:
                    continue
                task = asyncio.create_task(self._execute(run_id, payload), name=f"run:{run_id}")
                self._tasks.add(task)
                task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "worker crashed", exc_info=task.exception(), extra={"action": "worker_crashed"}
            )
        self._wake.set()

    # -- controls -------------------------------------------------------------------------------

    def _lock(self, run_id: str) -> asyncio.Lock:
        return self._locks.setdefault(run_id, asyncio.Lock())

    async def _recorder_for(self, run_id: str) -> tuple[EventRecorder, RunRecord]:
        record = await self.store.get_run(run_id)
        recorder = EventRecorder(
            run_id,
            last_event_id=await self.store.last_event_id(run_id),
            status=record.status,
            persist=self._persist(run_id),
            publish=self.bus.publish,
            keep_steps=False,
        )
        return recorder, record

    def _apply(self, run_id: str, expected: Collection[TaskStatus], **fields: Any) -> Any:
        async def apply(event: Event) -> None:
            await self.store.transition(
                run_id, TaskStatus(event.data["new"]), event, expected=expected, **fields
            )

        return apply

    def _persist(self, run_id: str) -> Any:
        async def persist(events: Any, steps: Any, logs: Any) -> None:
            await self.store.record(run_id, events=events, steps=steps, logs=logs)

        return persist

    async def pause(self, run_id: str) -> RunRecord:
        """Ask a running run to pause at its next superstep boundary."""
        active = self._active.get(run_id)
        if active is None or active.recorder.current_status is not TaskStatus.RUNNING:
            record = await self.store.get_run(run_id)
            raise InvalidTransition(record.status, TaskStatus.PAUSED)
        if active.pause_requested or active.stop_requested:
            raise ConflictError(f"run {run_id!r} is already pausing or stopping")
        active.pause_requested = True
        active.control.request_drain("pause")
        return await self.store.get_run(run_id)

    async def resume(self, run_id: str, value: Any = _NO_VALUE) -> RunRecord:
        """Continue a paused (or crashed) run from its last checkpoint."""
        async with self._lock(run_id):
            active = self._active.get(run_id)
            if active is not None:
                raise InvalidTransition(
                    active.recorder.current_status or TaskStatus.RUNNING, TaskStatus.RUNNING
                )
            recorder, record = await self._recorder_for(run_id)
            expected = (TaskStatus.PAUSED, TaskStatus.CRASHED)
            if record.status not in expected:
                raise InvalidTransition(record.status, TaskStatus.RUNNING)
            if value is not _NO_VALUE and value is not None:
                # A bad answer to a human node is refused here (E001); the run stays paused.
                await check_answer(await self._compiled(record), record, value)
            await recorder.transition(
                TaskStatus.RUNNING,
                "resumed",
                apply=self._apply(run_id, expected, owner=self.owner),
            )
            self._enqueue(run_id, 11, value)  # a resumed run goes before new ones
            return await self.store.get_run(run_id)

    async def _compiled(self, record: RunRecord) -> CompiledWorkflow:
        stored = await self.store.get_workflow(record.workflow_id, record.workflow_version)
        definition = self.definition(stored.workflow_id, stored.version, stored.definition)
        return self.compiler.compile(definition, input_keys=frozenset(record.input))

    async def stop(self, run_id: str) -> RunRecord:
        """Stop a run: cancel it if pending, cut it if running, end it if paused."""
        async with self._lock(run_id):
            active = self._active.get(run_id)
            if active is not None:
                current = active.recorder.current_status or TaskStatus.RUNNING
                if active.stop_requested or current is not TaskStatus.RUNNING:
                    raise InvalidTransition(current, TaskStatus.STOPPING)
                await active.recorder.transition(
                    TaskStatus.STOPPING,
                    "stop requested",
                    apply=self._apply(run_id, (TaskStatus.RUNNING,)),
                )
                active.stop_requested = True
                if active.task is not None:
                    active.task.cancel()
                return await self.store.get_run(run_id)
            recorder, record = await self._recorder_for(run_id)
            target = (
                TaskStatus.CANCELLED if record.status is TaskStatus.PENDING else TaskStatus.STOPPED
            )
            await self._end(
                recorder,
                record.status,
                target,
                "stopped before it finished",
                ErrorCode.CANCELLED_ERROR,
            )
            return await self.store.get_run(run_id)

    async def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run that has not started (pending)."""
        async with self._lock(run_id):
            recorder, record = await self._recorder_for(run_id)
            if record.status is not TaskStatus.PENDING or run_id in self._active:
                raise InvalidTransition(record.status, TaskStatus.CANCELLED)
            await self._end(
                recorder,
                TaskStatus.PENDING,
                TaskStatus.CANCELLED,
                "cancelled",
                ErrorCode.CANCELLED_ERROR,
            )
            return await self.store.get_run(run_id)

    async def _end(
        self,
        recorder: EventRecorder,
        expected: TaskStatus,
        target: TaskStatus,
        message: str,
        code: ErrorCode | None = None,
        result: Any = None,
    ) -> None:
        fields: dict[str, Any] = {"owner": None, "current_node": recorder.current_node}
        extra: dict[str, Any] = {}
        if code is not None:
            fields.update(error=message, error_code=code)
            extra["error_code"] = code.value
        if target is TaskStatus.COMPLETED:
            fields.update(result=result, progress=1.0)
        elif recorder.expected_steps:
            fields["progress"] = recorder.progress
        await recorder.transition(
            target, message, apply=self._apply(recorder.run_id, (expected,), **fields), **extra
        )
        if target.is_terminal:
            end: dict[str, Any] = {"status": target.value}
            if code is not None:
                end.update(error_code=code.value, error=message)
            if target is TaskStatus.COMPLETED:
                end["result"] = result
            recorder.emit(EventType.END, end)
            await recorder.flush()

    # -- the worker -----------------------------------------------------------------------------

    async def _execute(self, run_id: str, payload: Any) -> None:
        record = await self.store.get_run(run_id)
        if record.status not in (TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.CRASHED):
            return  # cancelled or stopped while it waited in the queue
        stored = await self.store.get_workflow(record.workflow_id, record.workflow_version)
        definition = self.definition(stored.workflow_id, stored.version, stored.definition)
        recorder = EventRecorder(
            run_id,
            last_event_id=await self.store.last_event_id(run_id),
            status=record.status,
            persist=self._persist(run_id),
            publish=self.bus.publish,
            keep_steps=False,
            seen_keys=await self.store.step_keys(run_id),
            last_seq=len(await self.store.steps(run_id)),
        )
        active = _Active(run_id=run_id, recorder=recorder, task=asyncio.current_task())  # type: ignore[arg-type]
        self._active[run_id] = active
        try:
            await self._drive(active, record, definition, payload)
        except asyncio.CancelledError:
            if not active.stop_requested:
                raise  # shutdown: the run stays `running` and is recovered on the next start
            await recorder.flush()
            await self._end(
                recorder,
                TaskStatus.STOPPING,
                TaskStatus.STOPPED,
                "stopped by request",
                ErrorCode.CANCELLED_ERROR,
            )
        except Exception as exc:
            # A bug or a store failure outside the graph: never leave the run running.
            logger.exception(
                "run %s failed outside its graph",
                run_id,
                extra={"action": "run_error", "run_id": run_id},
            )
            await self._fail_safely(recorder, exc)
        finally:
            self._active.pop(run_id, None)

    async def _fail_safely(self, recorder: EventRecorder, exc: Exception) -> None:
        code, message = (
            (exc.code, exc.message)
            if isinstance(exc, GraphRuntimeError)
            else (ErrorCode.EXECUTION_ERROR, f"{type(exc).__name__}: {exc}")
        )
        try:
            if recorder.current_status in (TaskStatus.PENDING, TaskStatus.CRASHED):
                await recorder.transition(
                    TaskStatus.RUNNING,
                    "running",
                    apply=self._apply(
                        recorder.run_id, (recorder.current_status,), owner=self.owner
                    ),
                )
            if recorder.current_status is TaskStatus.RUNNING:
                await self._end(recorder, TaskStatus.RUNNING, TaskStatus.FAILED, message, code)
        except Exception:
            logger.exception(
                "could not mark run %s failed", recorder.run_id, extra={"action": "run_error"}
            )

    async def _drive(
        self, active: _Active, record: RunRecord, definition: WorkflowDefinition, payload: Any
    ) -> None:
        recorder = active.recorder
        run_id = record.run_id
        try:
            compiled = self.compiler.compile(definition, input_keys=frozenset(record.input))
        except GraphRuntimeError as exc:
            await self._start(recorder, record)
            await self._end(recorder, TaskStatus.RUNNING, TaskStatus.FAILED, exc.message, exc.code)
            return
        recorder.expected_steps = compiled.expected_steps
        config = compiled.config(record.thread_id)
        fresh = await self._fresh(compiled, config)
        await self._start(recorder, record)
        if fresh:
            graph_input: Any = compiled.initial_input(record.input)
        elif payload is not _NO_VALUE and payload is not None:
            graph_input = Command(resume=payload)
        else:
            graph_input = None
        context = RunContext(
            run_id=run_id,
            workflow_id=definition.id,
            version=definition.version,
            recorder=recorder,
            services=self.services,
        )
        timeout = record.timeout_seconds or definition.settings.timeout_seconds
        error: tuple[ErrorCode, str] | None = None
        drained: str | None = None
        try:
            async with asyncio.timeout(timeout):
                async for ns, mode, chunk in compiled.graph.astream(
                    graph_input,
                    config,
                    context=context,
                    stream_mode=compiled.stream_modes,
                    subgraphs=True,
                    durability=definition.settings.durability,
                    control=active.control,
                ):
                    # subgraphs=True with a list of modes: (namespace, mode, chunk) tuples.
                    recorder.on_chunk(ns, mode, chunk)  # type: ignore[arg-type]
                    await recorder.flush()
        except GraphDrained as exc:
            drained = exc.reason
        except TimeoutError:
            error = (ErrorCode.TIMEOUT_ERROR, f"the run passed its {timeout:g}s timeout")
        except GraphRuntimeError as exc:
            error = (exc.code, exc.message)
        except GraphRecursionError as exc:
            error = (ErrorCode.EXECUTION_ERROR, f"recursion limit reached: {exc}")
        except Exception as exc:
            logger.exception("run failed", extra={"action": "run_failed", "run_id": run_id})
            error = (ErrorCode.EXECUTION_ERROR, f"{type(exc).__name__}: {exc}")
        await recorder.flush()
        await self._finish(active, compiled, config, error, drained)

    async def _fresh(self, compiled: CompiledWorkflow, config: Any) -> bool:
        saver = compiled.graph.checkpointer
        if saver is None or saver is True or saver is False:
            return True
        return await saver.aget_tuple(config) is None  # type: ignore[union-attr]

    async def _start(self, recorder: EventRecorder, record: RunRecord) -> None:
        if recorder.current_status is TaskStatus.RUNNING:
            return
        await recorder.transition(
            TaskStatus.RUNNING,
            "running",
            apply=self._apply(
                record.run_id,
                (recorder.current_status or TaskStatus.PENDING,),
                owner=self.owner,
                attempts=record.attempts + 1,
            ),
        )

    async def _finish(
        self,
        active: _Active,
        compiled: CompiledWorkflow,
        config: Any,
        error: tuple[ErrorCode, str] | None,
        drained: str | None,
    ) -> None:
        recorder = active.recorder
        if recorder.current_status is TaskStatus.STOPPING:
            await self._end(
                recorder,
                TaskStatus.STOPPING,
                TaskStatus.STOPPED,
                "stopped by request",
                ErrorCode.CANCELLED_ERROR,
            )
            return
        if drained is not None:
            if drained == "shutdown":
                return  # stays running; the next start resumes it from this checkpoint
            await self._end(
                recorder, TaskStatus.RUNNING, TaskStatus.PAUSED, "paused at a superstep boundary"
            )
            return
        if error is not None:
            code, message = error
            target = TaskStatus.TIMED_OUT if code is ErrorCode.TIMEOUT_ERROR else TaskStatus.FAILED
            await self._end(recorder, TaskStatus.RUNNING, target, message, code)
            return
        snapshot = await compiled.graph.aget_state(config)
        if recorder.interrupts or snapshot.next:
            await self._end(
                recorder, TaskStatus.RUNNING, TaskStatus.PAUSED, "waiting at an interrupt"
            )
            return
        result = recorder.output
        if not recorder.has_output:
            result = {k: v for k, v in snapshot.values.items() if not k.startswith("__")}
        from graph_runtime.expressions import to_view  # noqa: PLC0415 -- keep the hot path lean

        await self._end(
            recorder, TaskStatus.RUNNING, TaskStatus.COMPLETED, "completed", result=to_view(result)
        )

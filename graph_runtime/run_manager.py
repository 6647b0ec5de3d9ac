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
import dataclasses
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.errors import GraphDrained, GraphRecursionError
from langgraph.runtime import RunControl
from langgraph.types import Command

from checkpoints.store import RecordRows, RunRecord, RunStore
from graph_runtime import failpoints
from graph_runtime._depth import check_depth
from graph_runtime._integrations import check_answer
from graph_runtime._outage import StorageOutage, is_storage_fault, wait_for_store
from graph_runtime._run_queue import RunQueue
from graph_runtime.compiler import CompiledWorkflow, Compiler, RunContext
from graph_runtime.errors import ConflictError, GraphRuntimeError, InvalidTransition
from graph_runtime.events import EventBus
from graph_runtime.launch import LAUNCH_KEY, RunLaunch, StartPlan, stream_event_data
from graph_runtime.models import ErrorCode, Event, EventType, TaskStatus, utcnow
from graph_runtime.recorder import ApplyFn, EventRecorder, PersistFn
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
        shared_commits: bool = False,
        storage_retry_seconds: float = 2.0,
    ) -> None:
        self.store = store
        # Longest pause between checks while the database refuses writes.
        self.storage_retry_seconds = storage_retry_seconds
        # True when the store commits through the checkpointer's writer, in queue order:
        # nodes then queue their step records instead of waiting for a commit of their own.
        self.shared_commits = shared_commits
        self.compiler = compiler
        self.bus = bus
        self.max_concurrent_runs = max_concurrent_runs
        self.services = dict(services or {})
        self.owner = owner or uuid.uuid4().hex
        self._wake = asyncio.Event()
        self._queue = RunQueue(self._wake.set)
        self._active: dict[str, _Active] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._definitions: dict[tuple[str, int | None], WorkflowDefinition] = {}
        self._dispatcher: asyncio.Task[None] | None = None
        self._closing = False
        # Runs being created to start at once: their worker slots are taken already.
        self._starting = 0

    # -- lifecycle ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the dispatcher; queue the pending runs left in the store."""
        for rec in await self.store.list_runs(status=[TaskStatus.PENDING], limit=1_000_000):
            launch = RunLaunch.of(rec.metadata)
            not_before = launch.not_before if launch is not None else None
            self._enqueue(rec.run_id, rec.priority, thread_id=rec.thread_id, not_before=not_before)
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
        self._queue.close()
        if self._dispatcher is not None:
            self._dispatcher.cancel()
            await asyncio.gather(self._dispatcher, return_exceptions=True)
        self.bus.close_all()

    @property
    def queue_depth(self) -> int:
        """Runs waiting for a worker."""
        return len(self._queue)

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
        thread_id: str | None = None,
        launch: RunLaunch | None = None,
    ) -> tuple[RunRecord, bool]:
        """Store a pending run and queue it. ``run_id`` is an idempotency key.

        ``thread_id`` puts it on that LangGraph thread (default: a new one, the run id); runs
        of one thread execute one at a time, in submit order. ``launch`` says how it starts
        there (default: from ``input`` on a new thread); it is stored in the run's metadata.

        Returns:
            The run, and whether this call created it (False: it existed; nothing new runs).
        """
        check_depth(input, "the input")
        run_id = run_id or uuid.uuid4().hex
        metadata = dict(metadata or {})
        now = utcnow()
        if launch is not None:
            if launch.delay_seconds:
                # From the run's own creation time: it starts `delay` after `created_at`.
                launch = dataclasses.replace(
                    launch,
                    not_before=now + dt.timedelta(seconds=launch.delay_seconds),
                    delay_seconds=None,
                )
            metadata[LAUNCH_KEY] = launch.to_dict()
        # A run on a new thread of its own starts at once when a worker is free and no run
        # waits for one: it is stored running, its start in the same commit as its creation.
        at_once = launch is None and thread_id in (None, run_id) and self._free_worker()
        record = RunRecord(
            run_id=run_id,
            workflow_id=workflow_id,
            workflow_version=version,
            thread_id=thread_id or run_id,
            status=TaskStatus.RUNNING if at_once else TaskStatus.PENDING,
            priority=priority,
            input=dict(input),
            timeout_seconds=timeout_seconds,
            metadata=metadata,
            owner=self.owner if at_once else None,
            attempts=1 if at_once else 0,
            created_at=now,
            updated_at=now,
            started_at=now if at_once else None,
        )
        event = Event(
            run_id=run_id,
            id=1,
            type=EventType.STATUS,
            data={"old": None, "new": TaskStatus.PENDING.value, "message": "submitted"},
        )
        started: Event | None = None
        if at_once:
            started = Event(
                run_id=run_id,
                id=2,
                type=EventType.STATUS,
                data={
                    "old": TaskStatus.PENDING.value,
                    "new": TaskStatus.RUNNING.value,
                    "message": "running",
                },
            )
            self._starting += 1
        try:
            stored, created = await self.store.create_run(record, event, started=started)
        finally:
            if at_once:
                self._starting -= 1
                self._wake.set()  # the slot is a worker's now, or free again
        if created:
            self.bus.publish(event)
            if started is not None:
                failpoints.hit("after_status_write")
                self.bus.publish(started)
                self._start_now(stored)
            else:
                not_before = launch.not_before if launch is not None else None
                self._enqueue(run_id, priority, thread_id=record.thread_id, not_before=not_before)
        return stored, created

    def _free_worker(self) -> bool:
        return (
            self._dispatcher is not None
            and not self._closing
            and len(self._queue) == 0
            and len(self._tasks) + self._starting < self.max_concurrent_runs
        )

    def _start_now(self, record: RunRecord) -> None:
        """Give a run stored running by ``submit`` its worker (no queue, no store read)."""
        run_id = record.run_id
        recorder = EventRecorder(
            run_id,
            last_event_id=2,
            # Running in the store; the worker says so once it has started (until then a
            # control waits for it, see _settled_worker).
            status=TaskStatus.PENDING,
            persist=self._persist(run_id),
            publish=self.bus.publish,
            keep_steps=False,
            await_steps=not self.shared_commits,
        )
        active = _Active(run_id=run_id, recorder=recorder)
        self._active[run_id] = active
        task = asyncio.create_task(
            self._execute(run_id, _NO_VALUE, (active, record)), name=f"run:{run_id}"
        )
        active.task = task
        self._tasks.add(task)
        task.add_done_callback(partial(self._finished, run_id))

    def _enqueue(
        self,
        run_id: str,
        priority: int,
        payload: Any = _NO_VALUE,
        *,
        thread_id: str | None = None,
        not_before: dt.datetime | None = None,
    ) -> None:
        self._queue.put(run_id, priority, payload, thread_id=thread_id, not_before=not_before)

    async def _dispatch(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while not self._closing and (
                len(self._tasks) + self._starting < self.max_concurrent_runs
            ):
                taken = self._queue.take(self._active.__contains__)
                if taken is None:
                    break
                run_id, payload = taken
                task = asyncio.create_task(self._execute(run_id, payload), name=f"run:{run_id}")
                self._tasks.add(task)
                task.add_done_callback(partial(self._finished, run_id))

    def _finished(self, run_id: str, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._queue.release(run_id)
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
            await_steps=not self.shared_commits,
        )
        return recorder, record

    def _apply(self, run_id: str, expected: Collection[TaskStatus], **fields: Any) -> ApplyFn:
        async def apply(event: Event, followed_by: Sequence[Event]) -> None:
            await self.store.transition(
                run_id,
                TaskStatus(event.data["new"]),
                event,
                expected=expected,
                followed_by=followed_by,
                **fields,
            )

        return apply

    def _persist(self, run_id: str) -> PersistFn:
        queue_records = self.store.queue_records

        def persist(
            rows: RecordRows,
            *,
            lazy: bool,
            urgent: bool,
            on_done: Callable[[BaseException | None], None],
            followed: bool = False,
        ) -> None:
            if rows.steps and failpoints.ENABLED:
                on_done = failpoints.after(on_done, "after_step_record")
            queue_records(
                run_id, rows, lazy=lazy, urgent=urgent, on_done=on_done, followed=followed
            )

        return persist

    async def _settled_worker(self, run_id: str, limit: float = 5.0) -> _Active | None:
        """The run's worker, once it is past starting (pending) or finishing (paused).

        A worker that was just handed the run is still `pending` for a few milliseconds, and
        one that is landing a pause is already `paused` while it winds down: a control sent
        in those windows waits for the worker to settle instead of being refused.
        """
        deadline = asyncio.get_running_loop().time() + limit
        while True:
            active = self._active.get(run_id)
            if active is None or active.stop_requested:
                return active
            status = active.recorder.current_status
            if status not in (TaskStatus.PENDING, TaskStatus.PAUSED, TaskStatus.CRASHED):
                return active
            if active.task is not None and active.task.done():
                return None
            if asyncio.get_running_loop().time() > deadline:
                return active
            await asyncio.sleep(0.005)

    async def pause(self, run_id: str) -> RunRecord:
        """Ask a running run to pause at its next superstep boundary."""
        active = await self._settled_worker(run_id)
        if active is None or active.recorder.current_status is not TaskStatus.RUNNING:
            record = await self.store.get_run(run_id)
            raise InvalidTransition(record.status, TaskStatus.PAUSED)
        if active.pause_requested or active.stop_requested:
            raise ConflictError(f"run {run_id!r} is already pausing or stopping")
        active.pause_requested = True
        active.control.request_drain("pause")
        return await self.store.get_run(run_id)

    async def adopt(self, run_id: str) -> None:
        """Take over a run that a clean shutdown drained (running, owned by nobody) and queue it.

        Raises:
            InvalidTransition: the run is not such a run.
        """
        async with self._lock(run_id):
            record = await self.store.get_run(run_id)
            if record.status is not TaskStatus.RUNNING or record.owner is not None:
                raise InvalidTransition(record.status, TaskStatus.RUNNING)
            await self.store.update_run(run_id, owner=self.owner)
            # Before new runs, like any resumed run.
            self._enqueue(run_id, 11, thread_id=record.thread_id)

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
                check_depth(value, "the resume value")
                # A bad answer to a human node is refused here (E001); the run stays paused.
                await check_answer(await self._compiled(record), record, value)
            fields: dict[str, Any] = {"owner": self.owner}
            if record.status is TaskStatus.CRASHED:
                # A new attempt after a dead process; a human's answer to a pause is not one.
                fields["attempts"] = record.attempts + 1
            await recorder.transition(
                TaskStatus.RUNNING, "resumed", apply=self._apply(run_id, expected, **fields)
            )
            # A resumed run goes before new ones.
            self._enqueue(run_id, 11, value, thread_id=record.thread_id)
            return await self.store.get_run(run_id)

    async def _compiled(self, record: RunRecord) -> CompiledWorkflow:
        definition = await self._definition_of(record)
        return self.compiler.compile(definition, input_keys=_input_keys(record))

    async def _definition_of(self, record: RunRecord) -> WorkflowDefinition:
        # A stored version never changes, so a parsed one is reused without a read.
        hit = self._definitions.get((record.workflow_id, record.workflow_version))
        if hit is not None and record.workflow_version is not None:
            return hit
        stored = await self.store.get_workflow(record.workflow_id, record.workflow_version)
        return self.definition(stored.workflow_id, stored.version, stored.definition)

    async def stop(self, run_id: str) -> RunRecord:
        """Stop a run: cancel it if pending, cut it if running, end it if paused."""
        async with self._lock(run_id):
            active = await self._settled_worker(run_id)
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
        end: dict[str, Any] | None = None
        if target.is_terminal:
            end = {"status": target.value}
            if code is not None:
                end.update(error_code=code.value, error=message)
            if target is TaskStatus.COMPLETED:
                end["result"] = result
        # The end event commits with the final status: a reader that sees the run finished
        # finds the whole event stream in the store.
        await recorder.transition(
            target,
            message,
            apply=self._apply(recorder.run_id, (expected,), **fields),
            end=end,
            **extra,
        )

    # -- the worker -----------------------------------------------------------------------------

    async def _execute(
        self, run_id: str, payload: Any, started: tuple[_Active, RunRecord] | None = None
    ) -> None:
        """A run's task: run it; after a database outage, again from its last checkpoint.

        (The run's frames are few and inline: every frame here is re-entered at each resume
        of the run's task.)
        """
        outages = 0
        while True:
            try:
                if started is not None and not outages:
                    # A run submit stored running (see _start_now): no step recorded, no
                    # checkpoint yet.
                    active, record = started
                    try:
                        definition = await self._definition_of(record)
                    except BaseException:
                        self._active.pop(record.run_id, None)
                        raise
                    active.recorder.current_status = TaskStatus.RUNNING
                    given, fresh = _NO_VALUE, True
                else:
                    loaded = await self._load(run_id)
                    if loaded is None:
                        return  # cancelled or stopped while it waited in the queue
                    active, record, definition = loaded
                    given, fresh = payload, False
                try:
                    prepared = await self._prepare(
                        active, record, definition, given, outages > 0, fresh
                    )
                    if prepared is not None:
                        await self._stream(active, definition, *prepared)
                except asyncio.CancelledError:
                    if not active.stop_requested:
                        raise  # shutdown: the run stays `running`, recovered on the next start
                    await self._stopped(active.recorder)
                except Exception as exc:
                    await self._failed_outside(active.recorder, exc)
                finally:
                    self._active.pop(run_id, None)
                return
            except StorageOutage as outage:
                outages += 1
                logger.warning(
                    "run %s: the database refused a write (%s); it resumes from its last "
                    "checkpoint once the database takes writes again",
                    run_id,
                    outage,
                    extra={"action": "storage_outage", "run_id": run_id},
                )
                if self._closing:
                    return  # stays running: the next start resumes it
                if outages > 1:
                    # It failed again right after the database took a check write: back
                    # off, so a cut node is not re-executed in a tight loop.
                    await asyncio.sleep(min(0.05 * 2**outages, self.storage_retry_seconds))
                await wait_for_store(self.store, self.storage_retry_seconds)

    async def _load(self, run_id: str) -> tuple[_Active, RunRecord, WorkflowDefinition] | None:
        """A queued (or resumed) run's record, definition and recorder; None: it ended."""
        record = await self.store.get_run(run_id)
        if record.status not in (TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.CRASHED):
            return None
        definition = await self._definition_of(record)
        seen_keys: set[tuple[str, int]] = set()
        last_seq = 0
        if record.status is not TaskStatus.PENDING:
            # A pending run never started: no step of it was recorded yet.
            seen_keys = await self.store.step_keys(run_id)
            last_seq = await self.store.last_step_seq(run_id)
        recorder = EventRecorder(
            run_id,
            last_event_id=await self.store.last_event_id(run_id),
            status=record.status,
            persist=self._persist(run_id),
            publish=self.bus.publish,
            keep_steps=False,
            seen_keys=seen_keys,
            last_seq=last_seq,
            await_steps=not self.shared_commits,
        )
        active = _Active(run_id=run_id, recorder=recorder, task=asyncio.current_task())  # type: ignore[arg-type]
        self._active[run_id] = active
        return active, record, definition

    async def _stopped(self, recorder: EventRecorder) -> None:
        """End a run its stop request cancelled (or that ended while stopping)."""
        await recorder.flush()
        await self._end(
            recorder,
            TaskStatus.STOPPING,
            TaskStatus.STOPPED,
            "stopped by request",
            ErrorCode.CANCELLED_ERROR,
        )

    async def _failed_outside(self, recorder: EventRecorder, exc: Exception) -> None:
        """A run's failure outside its graph; raises ``StorageOutage`` for a database fault."""
        if is_storage_fault(exc):
            raise StorageOutage(str(exc)) from exc
        # A bug or a store failure outside the graph: never leave the run running.
        logger.exception(
            "run %s failed outside its graph",
            recorder.run_id,
            extra={"action": "run_error", "run_id": recorder.run_id},
        )
        await self._fail_safely(recorder, exc)

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

    async def _prepare(
        self,
        active: _Active,
        record: RunRecord,
        definition: WorkflowDefinition,
        payload: Any,
        retry: bool,
        fresh: bool,
    ) -> tuple[CompiledWorkflow, StartPlan, RunnableConfig, float | None] | None:
        """Compile, start the run, and plan its ``astream`` call (None: it ended already).

        ``fresh``: the run is known to have no checkpoint yet. Returns the compiled graph,
        the plan, the thread's config and the run's timeout.
        """
        recorder = active.recorder
        run_id = record.run_id
        try:
            compiled = self.compiler.compile(definition, input_keys=_input_keys(record))
        except GraphRuntimeError as exc:
            await self._start(recorder, record)
            await self._end(recorder, TaskStatus.RUNNING, TaskStatus.FAILED, exc.message, exc.code)
            return None
        recorder.expected_steps = compiled.expected_steps
        config = compiled.config(record.thread_id)
        if retry and payload is not _NO_VALUE and payload is not None:
            # After an outage: the answer to an interrupt is given again only if the thread
            # still waits at it (its use may have been checkpointed before the outage).
            snapshot = await compiled.graph.aget_state(config)
            if not snapshot.interrupts:
                payload = _NO_VALUE
        launch = RunLaunch.of(record.metadata)
        if launch is not None:
            # A run on a thread: input, command, checkpoint and breakpoints from its launch.
            plan = await launch.plan(
                compiled,
                config,
                first=record.status is TaskStatus.PENDING,
                resume=None if payload is _NO_VALUE else payload,
            )
            await self._start(recorder, record)
        else:
            # A pending run on its own thread never reached astream (it goes to running
            # first), so the thread has no checkpoint yet: no need to ask the checkpointer.
            own_thread = record.thread_id == run_id
            fresh = (
                fresh
                or (record.status is TaskStatus.PENDING and own_thread)
                or await self._fresh(compiled, config)
            )
            await self._start(recorder, record)
            if fresh:
                graph_input: Any = compiled.initial_input(record.input)
            elif payload is not _NO_VALUE and payload is not None:
                graph_input = Command(resume=payload)
            else:
                graph_input = None
            plan = StartPlan(
                graph_input=graph_input,
                config=config,
                stream_modes=list(compiled.stream_modes),
                durability=definition.settings.durability,
            )
        return compiled, plan, config, record.timeout_seconds or definition.settings.timeout_seconds

    async def _stream(
        self,
        active: _Active,
        definition: WorkflowDefinition,
        compiled: CompiledWorkflow,
        plan: StartPlan,
        config: RunnableConfig,
        timeout: float | None,
    ) -> None:
        """Run the graph as planned, record what it streams, and end the run."""
        recorder = active.recorder
        run_id = recorder.run_id
        context = RunContext(
            run_id=run_id,
            workflow_id=definition.id,
            version=definition.version,
            recorder=recorder,
            services=self.services,
            writes_saved=plan.durability != "exit",
        )
        error: tuple[ErrorCode, str] | None = None
        drained: str | None = None
        subgraphs = compiled.streams_subgraphs
        if timeout:
            # A step the timeout cuts is recorded as such (E002), not as a stop.
            recorder.deadline = asyncio.get_running_loop().time() + timeout
        run_config = _with_final_values(plan, recorder)
        try:
            async with asyncio.timeout(timeout):
                async for item in compiled.graph.astream(
                    plan.graph_input,
                    run_config,
                    context=context,
                    stream_mode=plan.stream_modes,
                    subgraphs=subgraphs,
                    durability=plan.durability,
                    control=active.control,
                    interrupt_before=plan.interrupt_before,
                    interrupt_after=plan.interrupt_after,
                ):
                    # A list of modes: (mode, chunk), or (namespace, mode, chunk) with
                    # subgraphs=True.
                    ns, mode, chunk = item if subgraphs else ((), *item)
                    recorder.on_chunk(ns, mode, chunk)  # type: ignore[arg-type]
                    if mode in plan.recorded:
                        recorder.emit(EventType.STREAM, stream_event_data(ns, mode, chunk))
                    # Before pulling on (astream is pull-driven: the next superstep starts
                    # only when we pull), this chunk's records are durable or queued ahead
                    # of the next checkpoint on the same writer (see EventRecorder.settle).
                    # Waiting here for a commit would split the superstep's transaction.
                    # (A ``values`` chunk records nothing, unless it is streamed.)
                    if mode != "values" or mode in plan.recorded:
                        await recorder.settle()
        except GraphDrained as exc:
            drained = exc.reason
        except TimeoutError:
            error = (ErrorCode.TIMEOUT_ERROR, f"the run passed its {timeout:g}s timeout")
        except Exception as exc:
            if is_storage_fault(exc):
                # A checkpoint or record the database refused: not the run's fault.
                raise StorageOutage(str(exc)) from exc
            error = _error_of(exc, run_id)
        await recorder.flush()
        await self._finish(active, compiled, config, error, drained)

    async def _final_state(self, compiled: CompiledWorkflow, config: Any) -> tuple[bool, Any]:
        """Whether the graph waits at a breakpoint, and its public state once it finished."""
        graph = compiled.graph
        saver = graph.checkpointer
        if isinstance(saver, BaseCheckpointSaver) and not (
            graph.interrupt_before_nodes or graph.interrupt_after_nodes
        ):
            # No interrupt was reported and no breakpoint exists: the graph ran to its end,
            # and its last checkpoint holds the final values (a few indexed reads, against
            # aget_state rebuilding the channels and the next tasks).
            saved = await saver.aget_tuple(config)
            if saved is not None:
                values = saved.checkpoint["channel_values"]
                return False, {k: v for k, v in values.items() if k in compiled.state_keys}
        snapshot = await graph.aget_state(config)
        values = {k: v for k, v in snapshot.values.items() if not k.startswith("__")}
        return bool(snapshot.next), values

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
            await self._stopped(recorder)
            return
        if drained is not None:
            if drained == "shutdown":
                # Stays running, owned by nobody: the next start resumes it from this
                # checkpoint without calling it crashed. This attempt ended cleanly, so it
                # gives its count back: `attempts` then counts the processes that died
                # running it, which is what start-up's poison check reads.
                recorder.log("info", "drained at shutdown; the next start resumes it")
                await recorder.flush()
                record = await self.store.get_run(recorder.run_id)
                await self.store.update_run(
                    recorder.run_id, attempts=max(record.attempts - 1, 0), owner=None
                )
                return
            await self._end(
                recorder, TaskStatus.RUNNING, TaskStatus.PAUSED, "paused at a superstep boundary"
            )
            return
        if error is not None:
            code, message = error
            target = TaskStatus.TIMED_OUT if code is ErrorCode.TIMEOUT_ERROR else TaskStatus.FAILED
            await self._end(recorder, TaskStatus.RUNNING, target, message, code)
            return
        # LangGraph reports every interrupt that ends a run, breakpoints included, as an
        # `__interrupt__` update; without one the graph ran to its end.
        waiting = recorder.interrupted
        result = recorder.output
        if not recorder.has_output and not waiting:
            if recorder.values is not None:
                # The state after the last superstep, as the last checkpoint holds it.
                keys = compiled.state_keys
                result = {k: v for k, v in recorder.values.items() if k in keys}
            else:
                waiting, result = await self._final_state(compiled, config)
        if waiting:
            await self._end(
                recorder, TaskStatus.RUNNING, TaskStatus.PAUSED, "waiting at an interrupt"
            )
            return
        from graph_runtime.expressions import to_view  # noqa: PLC0415 -- keep the hot path lean

        await self._end(
            recorder, TaskStatus.RUNNING, TaskStatus.COMPLETED, "completed", result=to_view(result)
        )


def _error_of(exc: Exception, run_id: str) -> tuple[ErrorCode, str]:
    """The error code and message a run ends with after its graph raised ``exc``."""
    if isinstance(exc, GraphRuntimeError):
        return exc.code, exc.message
    if isinstance(exc, GraphRecursionError):
        return ErrorCode.EXECUTION_ERROR, f"recursion limit reached: {exc}"
    logger.exception("run failed", extra={"action": "run_failed", "run_id": run_id})
    return ErrorCode.EXECUTION_ERROR, f"{type(exc).__name__}: {exc}"


def _with_final_values(plan: StartPlan, recorder: EventRecorder) -> Any:
    """The plan's config, with callbacks that hand the recorder the graph's final state.

    Unless the run streams ``values`` anyway: its last chunk carries that state.
    """
    if "values" in plan.stream_modes:
        return plan.config
    return {**plan.config, "callbacks": recorder.final_values_callbacks()}


def _input_keys(record: RunRecord) -> frozenset[str]:
    # A workflow without a `state` block takes its input keys as state: on a thread, every
    # run compiles with the keys of all its runs, so they all read the same channels.
    launch = RunLaunch.of(record.metadata)
    keys = frozenset(record.input)
    return keys | frozenset(launch.input_keys) if launch is not None else keys

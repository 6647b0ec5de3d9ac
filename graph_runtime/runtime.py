"""The ``Runtime`` facade: storage + compiler + run manager, in one async context manager.

::

    async with Runtime("runs.db") as rt:
        response = await rt.run("examples/routing.json", {"ticket": "refund please"})
        async for event in rt.stream(workflow, {"ticket": "..."}):
            print(event.type, event.data)

The HTTP server wraps one ``Runtime``; notebooks and scripts use it directly (or its blocking
twin ``SyncRuntime``). Every run is stored: its workflow version, status, steps, logs and events
live in the same SQLite file as the LangGraph checkpoints.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import Any

from checkpoints.factory import CheckpointerKind
from checkpoints.storage import open_runtime_storage
from checkpoints.store import LogRecord, RunRecord, RunStore, StoredWorkflow
from graph_runtime._integrations import (
    StoreWorkflowRunner,
    check_references,
    load_tools,
    prepare_services,
    reference_names,
)
from graph_runtime.compiler import CompiledWorkflow, Compiler
from graph_runtime.config import RuntimeConfig
from graph_runtime.errors import InputValidationError, WorkflowNotFound
from graph_runtime.events import EventBus, replay_then_live
from graph_runtime.models import (
    ErrorCode,
    Event,
    EventType,
    TaskResponse,
    TaskStatus,
    TaskStepResult,
)
from graph_runtime.run_manager import RunManager
from graph_runtime.schema import WorkflowDefinition
from graph_runtime.validation import load_workflow
from nodes.registry import NodeRegistry, default_registry

__all__ = ["Runtime", "WorkflowSource"]

logger = logging.getLogger(__name__)

#: A workflow given as a definition, a document, JSON text, a file path, or a stored id.
WorkflowSource = WorkflowDefinition | Mapping[str, Any] | str | Path
_SETTLED = frozenset({TaskStatus.PAUSED, TaskStatus.CRASHED})
#: The wire values of the statuses a run waits in.
_WAITING_VALUES = frozenset(s.value for s in _SETTLED)
#: The wire values of every status a run waits or ends in (what ``wait`` returns at).
_SETTLED_VALUES = frozenset(s.value for s in TaskStatus if s.is_terminal or s in _SETTLED)
#: The only events that can tell a waiter its run settled.
_STATUS_TYPES = frozenset({EventType.STATUS, EventType.END})
#: Events read from the store at once when a stream replays a run's history.
_REPLAY_PAGE = 1000


class Runtime:
    """Runs workflows in this process, durably, on an embedded SQLite database."""

    def __init__(
        self,
        db_path: str | Path | None = None,
        *,
        config: RuntimeConfig | None = None,
        registry: NodeRegistry | None = None,
        services: Mapping[str, Any] | None = None,
        checkpointer: CheckpointerKind | None = None,
        max_concurrent_runs: int | None = None,
    ) -> None:
        config = config or RuntimeConfig()
        updates: dict[str, Any] = {}
        if db_path is not None:
            updates["db"] = Path(db_path)
        if checkpointer is not None:
            updates["checkpointer"] = checkpointer
        if max_concurrent_runs is not None:
            updates["max_concurrent_runs"] = max_concurrent_runs
        self.config = config.model_copy(update=updates)
        self.registry = registry or default_registry
        services = dict(services or {})
        if self.config.http_allow_hosts or self.config.http_only_allow_hosts:
            # The operator's settings, under what the embedding code passed for `http`.
            http = dict(services.get("http") or {})
            http.setdefault("allow_hosts", self.config.http_allow_hosts)
            http.setdefault("only_allow_hosts", self.config.http_only_allow_hosts)
            services["http"] = http
        if self.config.tools:
            services["tools"] = load_tools(self.config.tools, services.get("tools"))
        self.services = prepare_services(services)
        self.services.setdefault("workflows", StoreWorkflowRunner(self))
        self._stack: AsyncExitStack | None = None
        self._store: RunStore | None = None
        self._manager: RunManager | None = None
        self._exclusive = False
        # (workflow id, content hash) → document, for definitions already checked.
        self._checked: dict[tuple[str, str], dict[str, Any]] = {}
        self.bus = EventBus(max_queue=self.config.sse_queue_size)

    # -- lifecycle ------------------------------------------------------------------------------

    async def __aenter__(self) -> Runtime:
        stack = AsyncExitStack()
        try:
            # One writer for the run store and the checkpointer (FastSqliteSaver): a
            # superstep's step records commit with its checkpoint. See checkpoints.storage.
            storage = await stack.enter_async_context(
                open_runtime_storage(
                    self.config.db,
                    checkpointer=self.config.checkpointer,
                    busy_timeout=self.config.busy_timeout_seconds,
                    synchronous=self.config.sqlite_synchronous,
                )
            )
            store = storage.store
            compiler = Compiler(
                storage.checkpointer,
                registry=self.registry,
                registries=reference_names(self.services),
            )
            manager = RunManager(
                store,
                compiler,
                self.bus,
                max_concurrent_runs=self.config.max_concurrent_runs,
                services=self.services,
                shared_commits=storage.shared_commits,
                storage_retry_seconds=self.config.storage_retry_seconds,
            )
            self._store, self._manager = store, manager
            self._exclusive = storage.exclusive
            await self._recover()
            await manager.start()
            stack.push_async_callback(manager.close, self.config.shutdown_grace_seconds)
        except BaseException:
            await stack.aclose()
            raise
        self._stack = stack
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        stack, self._stack = self._stack, None
        if stack is not None:
            await stack.aclose()
        self._store = self._manager = None

    async def _recover(self) -> None:
        # The store's process lock guarantees no other process owns these runs: whoever left
        # them running is dead, or drained them at a clean shutdown (owner cleared). Stops in
        # flight are finished; drained runs resume; the rest resume (or are marked) as crashed.
        manager = self.manager
        orphans = await self.store.list_runs(
            status=[TaskStatus.RUNNING, TaskStatus.STOPPING], limit=1_000_000
        )
        for record in orphans:
            if record.status is TaskStatus.RUNNING and record.owner is None:
                # Drained by a clean shutdown at a superstep boundary: not a crash.
                await manager.adopt(record.run_id)
                logger.info("resumed run", extra={"action": "recover", "run_id": record.run_id})
                continue
            recorder, _ = await manager._recorder_for(record.run_id)
            if record.status is TaskStatus.STOPPING:
                await manager._end(
                    recorder, TaskStatus.STOPPING, TaskStatus.STOPPED, "stopped (process exited)"
                )
                continue
            await recorder.transition(
                TaskStatus.CRASHED,
                "the process running it exited",
                apply=manager._apply(record.run_id, (TaskStatus.RUNNING,), owner=None),
            )
            if record.attempts >= self.config.max_run_attempts:
                # A poison run: each attempt so far ended with its process dead. Resuming it
                # again would likely take this process down too, and the queue with it.
                message = (
                    f"crash loop: the process died {record.attempts} times while running it "
                    f"(max_run_attempts={self.config.max_run_attempts}); not resumed again"
                )
                await manager._end(
                    recorder,
                    TaskStatus.CRASHED,
                    TaskStatus.FAILED,
                    message,
                    ErrorCode.RETRY_EXHAUSTED,
                )
                logger.warning(
                    "poison run failed", extra={"action": "recover", "run_id": record.run_id}
                )
                continue
            if self.config.recovery == "resume":
                await manager.resume(record.run_id)
            logger.info("recovered run", extra={"action": "recover", "run_id": record.run_id})

    @property
    def store(self) -> RunStore:
        """The run store (inside ``async with`` only)."""
        if self._store is None:
            raise RuntimeError("use the Runtime inside `async with Runtime(...) as rt:`")
        return self._store

    @property
    def manager(self) -> RunManager:
        """The run manager (inside ``async with`` only)."""
        if self._manager is None:
            raise RuntimeError("use the Runtime inside `async with Runtime(...) as rt:`")
        return self._manager

    @property
    def compiler(self) -> Compiler:
        """The compiler bound to this runtime's checkpointer."""
        return self.manager.compiler

    # -- workflows ------------------------------------------------------------------------------

    def load(
        self, workflow: WorkflowSource, *, workflow_id: str | None = None
    ) -> WorkflowDefinition:
        """Parse and check a workflow given as a definition, a document, JSON text or a file.

        Raises:
            WorkflowValidationError: with every problem and its JSON pointer.
        """
        if isinstance(workflow, WorkflowDefinition):
            return workflow
        if isinstance(workflow, Path) or (
            isinstance(workflow, str) and not workflow.lstrip().startswith("{")
        ):
            path = Path(workflow)
            return load_workflow(
                path.read_text(), workflow_id=workflow_id or path.stem, registry=self.registry
            )
        return load_workflow(workflow, workflow_id=workflow_id, registry=self.registry)

    def compile(
        self, workflow: WorkflowSource, input_keys: frozenset[str] = frozenset()
    ) -> CompiledWorkflow:
        """Compile (or fetch from the cache) a workflow."""
        return self.compiler.compile(self.load(workflow), input_keys=input_keys)

    async def save_workflow(
        self, workflow: WorkflowSource, *, workflow_id: str | None = None
    ) -> StoredWorkflow:
        """Validate and store a workflow; an unchanged document keeps its version."""
        definition = self.load(workflow, workflow_id=workflow_id)
        content_hash = self.compiler.content_hash(definition)
        document = self._checked.get((definition.id, content_hash))
        if document is None:
            await check_references(self, self.services, definition)
            document = definition.to_document()
            document.pop("version", None)
            if not any(n.type == "subgraph" for n in definition.nodes):
                # Without workflow references its checks depend only on this runtime's
                # registries, which never change: a re-submitted document is not checked
                # again. (The store still decides its version.)
                if len(self._checked) >= 1024:
                    self._checked.clear()
                self._checked[(definition.id, content_hash)] = document
        return await self.store.put_workflow(definition.id, document, content_hash)

    async def get_workflow(self, workflow_id: str, version: int | None = None) -> StoredWorkflow:
        """A stored workflow version (the latest when ``version`` is None)."""
        return await self.store.get_workflow(workflow_id, version)

    async def list_workflows(self) -> list[StoredWorkflow]:
        """The latest version of every stored workflow."""
        return await self.store.list_workflows()

    async def _resolve(self, workflow: WorkflowSource, version: int | None) -> StoredWorkflow:
        if isinstance(workflow, str) and _looks_like_id(workflow):
            try:
                return await self.store.get_workflow(workflow, version)
            except WorkflowNotFound:
                if not Path(workflow).exists():
                    raise
        return await self.save_workflow(workflow)

    # -- runs -----------------------------------------------------------------------------------

    async def submit(
        self,
        workflow: WorkflowSource,
        input: Mapping[str, Any] | None = None,
        *,
        run_id: str | None = None,
        priority: int = 5,
        timeout_seconds: float | None = None,
        version: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> RunRecord:
        """Start a run in the background. Idempotent on ``run_id``.

        Returns it ``running`` when a worker was free and no run waited (its start was
        stored with it), else ``pending``, queued.
        """
        record, _ = await self._submit(
            workflow,
            input,
            run_id=run_id,
            priority=priority,
            timeout_seconds=timeout_seconds,
            version=version,
            metadata=metadata,
        )
        return record

    async def _submit(
        self,
        workflow: WorkflowSource,
        input: Mapping[str, Any] | None,
        *,
        run_id: str | None,
        priority: int = 5,
        timeout_seconds: float | None = None,
        version: int | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> tuple[RunRecord, bool]:
        """``submit``, and whether this call created the run."""
        input = dict(input or {})
        if not all(isinstance(k, str) for k in input):
            raise InputValidationError("input keys must be strings")
        if not 1 <= priority <= 10:
            raise InputValidationError("priority must be between 1 and 10")
        stored = await self._resolve(workflow, version)
        return await self.manager.submit(
            workflow_id=stored.workflow_id,
            version=stored.version,
            input=input,
            run_id=run_id,
            priority=priority,
            timeout_seconds=timeout_seconds,
            metadata=metadata,
        )

    async def run(
        self, workflow: WorkflowSource, input: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> TaskResponse:
        """Run a workflow until it finishes or waits; return its ``TaskResponse``."""
        record = await self.submit(workflow, input, **kwargs)
        return await self.wait(record.run_id)

    def stream(
        self, workflow: WorkflowSource, input: Mapping[str, Any] | None = None, **kwargs: Any
    ) -> AsyncIterator[Event]:
        """Run a workflow and yield its events until it finishes or waits.

        The run is submitted when the first event is asked for.
        """
        run_id = kwargs.pop("run_id", None) or uuid.uuid4().hex

        async def submit() -> bool:
            _, created = await self._submit(workflow, input, run_id=run_id, **kwargs)
            return created

        return self._events(run_id, 0, follow=False, check=False, submit=submit)

    def events(self, run_id: str, after: int = 0, *, follow: bool = False) -> AsyncIterator[Event]:
        """The run's events after ``after``: stored, then live, with no gap and no duplicate.

        Ends at the ``end`` event; also when the run waits (paused, crashed) unless ``follow``.
        Raises ``RunNotFound`` (at the first step) for an unknown run.
        """
        return self._events(run_id, after, follow=follow, check=True)

    async def _events(
        self,
        run_id: str,
        after: int,
        *,
        follow: bool,
        check: bool,
        submit: Callable[[], Awaitable[bool]] | None = None,
    ) -> AsyncIterator[Event]:
        """The events of :meth:`events`, after ``submit()`` if given (whether it created the run).

        ``submit`` runs subscribed: a run it creates publishes every event to this
        subscription, and its stream needs no read of the store. (A run that existed
        already is replayed from the store first.)
        """
        if check:
            await self.store.get_run(run_id)  # RunNotFound early
        async with self.bus.subscribe(run_id) as subscription:
            replay = submit is None or not await submit()
            # A tick makes a stream that does not follow ask the store whether its run
            # settled, in case the event saying so was published elsewhere. A run this
            # subscription saw created, on a database this process alone runs, publishes
            # every event to it; a stream that follows ignores ticks. Neither arms the timer
            # (while one is armed, every turn of the event loop reads the clock).
            quiet = follow or (not replay and self._exclusive)
            stream = replay_then_live(
                self.bus,
                run_id,
                after,
                partial(self.store.events_after, limit=_REPLAY_PAGE),
                is_finished=lambda: self._finished(run_id),
                heartbeat=None if quiet else self.config.heartbeat_seconds,
                page=_REPLAY_PAGE,
                subscription=subscription,
                replay=replay,
            )
            async for event in stream:
                if event is None:
                    if not follow and await self._settled(run_id):
                        return
                    continue
                yield event
                if event.type is EventType.END:
                    return
                if (
                    not follow
                    and event.type is EventType.STATUS
                    and event.data.get("new") in _WAITING_VALUES
                    and await self._waits_at(run_id, event)
                ):
                    return

    async def _waits_at(self, run_id: str, event: Event) -> bool:
        # A replayed `paused` that was later resumed is history, not the end of the stream.
        record = await self.store.get_run(run_id)
        return record.status in _SETTLED and await self.store.last_event_id(run_id) == event.id

    async def _finished(self, run_id: str) -> bool:
        return (await self.store.run_status(run_id)).is_terminal

    async def _settled(self, run_id: str) -> bool:
        return _is_settled(await self.store.run_status(run_id))

    async def wait(self, run_id: str, timeout: float | None = None) -> TaskResponse:
        """Wait until the run finishes or waits; return its ``TaskResponse``."""
        return self._response(await self.settle(run_id, timeout))

    async def settle(self, run_id: str, timeout: float | None = None) -> RunRecord:
        """Wait until the run finishes or waits; return its stored record at that point.

        The store is read once at the start and then only when the run's events say it may
        have settled (a status event into a settled status, or ``end``): a run's other
        events (steps, logs, its own start) cannot settle it, and are not even delivered.
        """
        waits_for = self.bus.subscribe(run_id, types=_STATUS_TYPES)
        async with asyncio.timeout(timeout), waits_for as sub:
            record = await self.store.get_run(run_id)
            while not _is_settled(record.status):
                if sub.dropped:
                    # A dropped subscription gets no more events: poll the store instead.
                    await asyncio.sleep(0.05)
                else:
                    item = await sub.queue.get()
                    if item is not None and not _may_settle(item):
                        continue
                record = await self.store.get_run(run_id)
        return record

    async def pause(self, run_id: str) -> RunRecord:
        """Pause a running run at its next superstep boundary."""
        return await self.manager.pause(run_id)

    async def resume(self, run_id: str, value: Any = None) -> RunRecord:
        """Continue a paused run; ``value`` answers a waiting ``interrupt()``."""
        return await self.manager.resume(run_id, value)

    async def stop(self, run_id: str) -> RunRecord:
        """Stop a run (cancel it if it has not started)."""
        return await self.manager.stop(run_id)

    async def cancel(self, run_id: str) -> RunRecord:
        """Cancel a run that has not started."""
        return await self.manager.cancel(run_id)

    async def get_run(self, run_id: str) -> RunRecord:
        """The stored run (``RunNotFound`` if none)."""
        return await self.store.get_run(run_id)

    async def status(self, run_id: str) -> TaskResponse:
        """The run's ``TaskResponse``, with live progress while it runs."""
        return self._response(await self.store.get_run(run_id))

    def _response(self, record: RunRecord) -> TaskResponse:
        run_id = record.run_id
        response = record.to_response(message=f"run {record.status.value}")
        recorder = self.manager.active_recorder(run_id)
        if recorder is not None and not record.status.is_terminal:
            response = response.model_copy(update={"progress": recorder.progress})
        return response

    def current_node(self, run_id: str, record: RunRecord) -> str | None:
        """The node the run is at (live while it runs)."""
        recorder = self.manager.active_recorder(run_id)
        return recorder.current_node if recorder is not None else record.current_node

    async def steps(self, run_id: str) -> list[TaskStepResult]:
        """The run's step records, in order."""
        await self.store.get_run(run_id)
        return await self.store.steps(run_id)

    async def logs(
        self, run_id: str, *, level: str | None = None, limit: int = 100, after: int = 0
    ) -> list[LogRecord]:
        """The run's log lines (``level`` is a minimum level)."""
        await self.store.get_run(run_id)
        return await self.store.logs(run_id, level=level, limit=limit, after=after)


def _is_settled(status: TaskStatus) -> bool:
    return status.is_terminal or status in _SETTLED


def _may_settle(event: Event) -> bool:
    """Whether ``event`` may mark the run settling (worth reading its record again)."""
    if event.type is EventType.END:
        return True
    return event.type is EventType.STATUS and event.data.get("new") in _SETTLED_VALUES


def _looks_like_id(value: str) -> bool:
    return not value.lstrip().startswith("{") and "/" not in value and not value.endswith(".json")

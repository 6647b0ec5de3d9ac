"""Threads: records, their status, and their state read from LangGraph's checkpoints.

A thread is a LangGraph thread of one workflow. Its values, pending tasks, interrupts and
history come from the checkpointer through the workflow's compiled graph (``aget_state``,
``aget_state_history``, ``aupdate_state``), so they are what LangGraph itself would answer.

Its status is derived on every read, never stored, so it cannot go stale (the reference
server keeps ``interrupted`` after an ``update_state`` that skipped the interrupt,
agent-protocol.md §2.6): ``busy`` while a run is pending or running; ``error`` when the last
run failed and no update came after; ``interrupted`` at an interrupt, a breakpoint, or after
a cancelled run; else ``idle``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.types import StateSnapshot
from starlette.exceptions import HTTPException

from checkpoints.store import RunRecord, StoredWorkflow
from checkpoints.threads import ThreadRecord, ThreadStore
from graph_runtime.compiler import CompiledWorkflow
from graph_runtime.errors import (
    ConflictError,
    InvalidTransition,
    NotFoundError,
    WorkflowNotFound,
)
from graph_runtime.models import TaskStatus
from graph_runtime.runtime import Runtime
from server.agent_protocol.assistants import Assistants, assistant_id_for, matches
from server.agent_protocol.models import (
    CheckpointRef,
    HistoryRequest,
    StateUpdate,
    StateUpdateResponse,
    Thread,
    ThreadCreate,
    ThreadSearch,
)
from server.agent_protocol.state import empty_state, interrupt_list, public_values, state_view

__all__ = ["ACTIVE", "Threads", "thread_not_found"]

#: Our statuses in which a run holds its thread (the protocol's pending/running).
ACTIVE = frozenset({TaskStatus.PENDING, TaskStatus.RUNNING, TaskStatus.STOPPING})
_FAILED = frozenset({TaskStatus.FAILED, TaskStatus.TIMED_OUT, TaskStatus.CRASHED})
#: Stored workflow versions kept by ``Threads.compiled``.
_MAX_VERSIONS = 256
_ERROR_NAME = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]*): ")


def thread_not_found(thread_id: str) -> NotFoundError:
    """The 404 of a missing thread (the reference's wording)."""
    return NotFoundError(f"Thread with ID {thread_id} not found")


class Threads:
    """Thread operations on one runtime."""

    def __init__(self, runtime: Runtime, assistants: Assistants, store: ThreadStore) -> None:
        self.runtime = runtime
        self.assistants = assistants
        self.store = store
        self._locks: dict[str, asyncio.Lock] = {}
        self._versions: dict[tuple[str, int], StoredWorkflow] = {}

    def lock(self, thread_id: str) -> asyncio.Lock:
        """The lock that makes "look at the thread's runs, then act" atomic per thread."""
        return self._locks.setdefault(thread_id, asyncio.Lock())

    # -- records --------------------------------------------------------------------------------

    async def get(self, thread_id: str) -> ThreadRecord:
        """The thread's record.

        Raises:
            NotFoundError: no such thread.
        """
        record = await self.store.get_thread(thread_id)
        if record is None:
            raise thread_not_found(thread_id)
        return record

    async def create(self, body: ThreadCreate) -> ThreadRecord:
        """Create a thread (``if_exists``: 409 or the existing one)."""
        record, _ = await self._create(body)
        return record

    async def create_view(self, body: ThreadCreate) -> Thread:
        """Create a thread as :meth:`create` does; its view (a new thread has no runs to read)."""
        record, created = await self._create(body)
        return await self.view(record, runs=[] if created else None)

    async def _create(self, body: ThreadCreate) -> tuple[ThreadRecord, bool]:
        thread_id = body.thread_id or str(uuid.uuid4())
        metadata = dict(body.metadata or {})
        graph_id = body.graph_id or metadata.get("graph_id")
        if graph_id is not None:
            stored = await self.assistants.resolve(str(graph_id))
            graph_id = stored.workflow_id
            metadata.update(graph_id=graph_id, assistant_id=assistant_id_for(graph_id))
        record, created = await self.store.create_thread(
            ThreadRecord(thread_id=thread_id, graph_id=graph_id, metadata=metadata)
        )
        if not created:
            if body.if_exists == "do_nothing":
                return record, False
            raise ConflictError(f"Thread {thread_id} already exists")
        if body.supersteps:
            await self._apply_supersteps(record, body.supersteps)
        return record, True

    async def patch(self, thread_id: str, metadata: dict[str, Any]) -> ThreadRecord:
        """Merge ``metadata`` into the thread's (``threads.update``)."""
        record = await self.get(thread_id)
        updated = await self.store.update_thread(
            thread_id, metadata={**record.metadata, **metadata}
        )
        if updated is None:
            raise thread_not_found(thread_id)
        return updated

    async def bind(self, record: ThreadRecord, stored: StoredWorkflow, input_keys: Any) -> None:
        """Tie the thread to the workflow of its first run; remember the input keys."""
        keys = tuple(sorted(set(record.input_keys) | {str(k) for k in input_keys}))
        if record.graph_id == stored.workflow_id and keys == record.input_keys:
            return
        metadata = dict(record.metadata)
        metadata.update(
            graph_id=stored.workflow_id, assistant_id=assistant_id_for(stored.workflow_id)
        )
        await self.store.update_thread(
            record.thread_id, graph_id=stored.workflow_id, metadata=metadata, input_keys=keys
        )

    async def delete(self, thread_id: str) -> None:
        """Delete a thread: stop its runs, drop them, its checkpoints and its record."""
        await self.get(thread_id)
        async with self.lock(thread_id):
            runs = await self.runs_of(thread_id)
            for run in runs:
                if run.status in ACTIVE or run.status is TaskStatus.PAUSED:
                    try:
                        await self.runtime.stop(run.run_id)
                    except InvalidTransition:
                        pass  # stopping or ended meanwhile
            for run in runs:
                await self.runtime.wait(run.run_id)  # a stopped run settles in a moment
                await self.runtime.store.delete_run(run.run_id)
            saver = self.runtime.compiler.checkpointer
            if saver is not None:
                await saver.adelete_thread(thread_id)
            await self.store.delete_thread(thread_id)
        self._locks.pop(thread_id, None)

    async def runs_of(self, thread_id: str) -> list[RunRecord]:
        """The thread's runs, newest first."""
        runs = await self.runtime.store.list_runs(thread_id=thread_id, limit=10**9)
        runs.reverse()
        return runs

    # -- views ----------------------------------------------------------------------------------

    async def view(self, record: ThreadRecord, runs: list[RunRecord] | None = None) -> Thread:
        """The protocol's ``Thread``: the record plus status, values and interrupts.

        ``runs``: the thread's runs, newest first, when the caller knows them already.
        """
        if runs is None:
            runs = await self.runs_of(record.thread_id)
        snapshot = await self.snapshot(record, runs=runs)
        status, error = self._status(runs, snapshot)
        has_state = snapshot is not None and snapshot.created_at is not None
        interrupts: dict[str, list[dict[str, Any]]] = {}
        if snapshot is not None:
            for task in snapshot.tasks:
                if task.interrupts:
                    interrupts[task.id] = interrupt_list(task.interrupts)
        state_at = None
        if snapshot is not None and snapshot.created_at is not None:
            state_at = dt.datetime.fromisoformat(snapshot.created_at)
        return Thread(
            thread_id=record.thread_id,
            created_at=record.created_at,
            updated_at=max(record.updated_at, runs[0].updated_at) if runs else record.updated_at,
            state_updated_at=state_at,
            metadata=record.metadata,
            status=status,
            values=public_values(snapshot.values) if has_state and snapshot else None,
            error=error,
            interrupts=interrupts,
        )

    def _status(
        self, runs: list[RunRecord], snapshot: StateSnapshot | None
    ) -> tuple[Any, dict[str, Any] | None]:
        if any(r.status in ACTIVE for r in runs):
            return "busy", None
        source = (snapshot.metadata or {}).get("source") if snapshot is not None else None
        latest = runs[0] if runs else None
        if latest is not None and source != "update":
            if latest.status in _FAILED:
                return "error", _error_view(latest)
            if latest.status is TaskStatus.STOPPED:
                return "interrupted", {"error": "UserInterrupt", "message": latest.error or ""}
        if snapshot is not None and (
            snapshot.interrupts or (snapshot.next and source in ("loop", "fork", "input"))
        ):
            return "interrupted", None
        return "idle", None

    async def search(self, query: ThreadSearch) -> tuple[list[Thread], int]:
        """One page of the threads matching ``query``, and how many match in all."""
        records = await self.store.list_threads(
            [i for i in query.ids if i] if query.ids is not None else None
        )
        found = []
        for record in records:
            if query.metadata and not matches(record.metadata, query.metadata):
                continue
            thread = await self.view(record)
            if query.status is not None and thread.status != query.status:
                continue
            if query.values and not (
                isinstance(thread.values, dict) and matches(thread.values, query.values)
            ):
                continue
            found.append(thread)
        key = query.sort_by or "created_at"
        found.sort(key=lambda t: getattr(t, key), reverse=(query.sort_order or "desc") == "desc")
        return found[query.offset : query.offset + query.limit], len(found)

    # -- state ----------------------------------------------------------------------------------

    async def compiled(
        self, record: ThreadRecord, runs: list[RunRecord] | None = None
    ) -> CompiledWorkflow | None:
        """The compiled graph the thread's state is read with (None before it has a graph)."""
        if record.graph_id is None:
            return None
        version = None
        for run in runs or ():
            if run.workflow_id == record.graph_id and run.workflow_version is not None:
                version = run.workflow_version
                break
        stored = self._versions.get((record.graph_id, version)) if version is not None else None
        if stored is None:
            try:
                stored = await self.runtime.get_workflow(record.graph_id, version)
            except WorkflowNotFound:
                return None
            if version is not None:
                # A stored version never changes (new content gets a new version), so a
                # thread's state is read without a store round trip for its workflow.
                if len(self._versions) >= _MAX_VERSIONS:
                    self._versions.pop(next(iter(self._versions)))
                self._versions[(record.graph_id, version)] = stored
        return self.assistants.compiled(stored, frozenset(record.input_keys))

    async def snapshot(
        self,
        record: ThreadRecord,
        checkpoint: CheckpointRef | None = None,
        *,
        runs: list[RunRecord] | None = None,
        subgraphs: bool = False,
    ) -> StateSnapshot | None:
        """The thread's state at ``checkpoint`` (its head by default)."""
        compiled = await self.compiled(record, runs)
        if compiled is None:
            return None
        config = _config(record.thread_id, checkpoint)
        return await compiled.graph.aget_state(config, subgraphs=subgraphs)

    async def state(
        self, thread_id: str, checkpoint: CheckpointRef | None = None, *, subgraphs: bool = False
    ) -> dict[str, Any]:
        """The ``ThreadState`` at a checkpoint (the head by default)."""
        record = await self.get(thread_id)
        snapshot = await self.snapshot(
            record, checkpoint, runs=await self.runs_of(thread_id), subgraphs=subgraphs
        )
        if snapshot is None:
            return empty_state(thread_id)
        if checkpoint is not None and checkpoint.checkpoint_id and snapshot.created_at is None:
            raise NotFoundError(f"Checkpoint {checkpoint.checkpoint_id} not found")
        return state_view(snapshot, thread_id)

    async def history(self, thread_id: str, query: HistoryRequest) -> list[dict[str, Any]]:
        """Past states, newest first."""
        record = await self.get(thread_id)
        compiled = await self.compiled(record, await self.runs_of(thread_id))
        if compiled is None:
            return []
        before = query.before
        if isinstance(before, str):
            before = CheckpointRef(checkpoint_id=before)
        states = []
        async for snapshot in compiled.graph.aget_state_history(
            _config(thread_id, query.checkpoint),
            filter=query.metadata or None,
            before=_config(thread_id, before) if before is not None else None,
            limit=query.limit,
        ):
            states.append(state_view(snapshot, thread_id))
        return states

    async def update_state(self, thread_id: str, body: StateUpdate) -> StateUpdateResponse:
        """Write a new checkpoint with ``values`` applied as ``as_node`` (a fork if given one).

        Raises:
            HTTPException: 400 when the thread has no graph yet or LangGraph refuses the update.
            ConflictError: a run is pending or running on the thread.
        """
        record = await self.get(thread_id)
        async with self.lock(thread_id):
            runs = await self.runs_of(thread_id)
            if any(r.status in ACTIVE for r in runs):
                raise ConflictError(f"Thread {thread_id} is busy: a run is pending or running")
            compiled = await self.compiled(record, runs)
            if compiled is None:
                raise HTTPException(400, f"Thread {thread_id} has no graph: start a run first")
            checkpoint = body.checkpoint
            if body.checkpoint_id is not None:
                checkpoint = CheckpointRef(checkpoint_id=body.checkpoint_id)
            try:
                config = await compiled.graph.aupdate_state(
                    _config(thread_id, checkpoint), body.values, as_node=body.as_node
                )
            except (ValueError, KeyError, TypeError) as exc:
                # InvalidUpdateError (a ValueError): unknown node, ambiguous update...
                raise HTTPException(400, f"{type(exc).__name__}: {exc}") from exc
            await self.store.update_thread(thread_id)
        conf = dict(config.get("configurable") or {})
        ref = {
            "thread_id": thread_id,
            "checkpoint_ns": conf.get("checkpoint_ns", ""),
            "checkpoint_id": conf["checkpoint_id"],
        }
        return StateUpdateResponse(
            checkpoint=ref, configurable=ref, checkpoint_id=conf["checkpoint_id"]
        )

    async def _apply_supersteps(self, record: ThreadRecord, supersteps: list[Any]) -> None:
        compiled = await self.compiled(record)
        if compiled is None:
            raise HTTPException(400, "supersteps need a graph_id")
        config: RunnableConfig = _config(record.thread_id, None)
        for superstep in supersteps:
            for update in superstep.get("updates") or ():
                if not isinstance(update, Mapping):
                    raise HTTPException(422, "each superstep update must be an object")
                config = await compiled.graph.aupdate_state(
                    config, update.get("values"), as_node=update.get("as_node")
                )


def _config(thread_id: str, checkpoint: CheckpointRef | None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint is not None:
        configurable["checkpoint_ns"] = checkpoint.checkpoint_ns or ""
        if checkpoint.checkpoint_id:
            configurable["checkpoint_id"] = checkpoint.checkpoint_id
    return {"configurable": configurable}


def _error_view(run: RunRecord) -> dict[str, Any]:
    message = run.error or "the run failed"
    match = _ERROR_NAME.match(message)
    name = match.group(1) if match else type_name(run)
    view: dict[str, Any] = {"error": name, "message": message}
    if run.error_code is not None:
        view["code"] = run.error_code.value
    return view


def type_name(run: RunRecord) -> str:
    """A name for the error of a failed run that does not start with one."""
    if run.status is TaskStatus.TIMED_OUT:
        return "TimeoutError"
    return "GraphRuntimeError"

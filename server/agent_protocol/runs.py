"""Runs on threads: validation, multitask strategies, and the ``Run`` view of our runs.

A protocol run is one of our runs (``RunManager.submit`` with the thread's id and a
:class:`~graph_runtime.launch.RunLaunch`), so it has step records, events, a status in our
state machine (shown through ``AGENT_PROTOCOL_STATUS``, DESIGN.md §3) and survives restarts.
What only the protocol needs (assistant id, kwargs, strategy) rides in the run's metadata
under :data:`AP_KEY`; clients see their own metadata only.

``multitask_strategy`` is decided under the thread's lock, so two requests racing for one
thread see each other: ``reject`` answers 409 while a run is pending or running, ``interrupt``
stops it, ``rollback`` stops it and deletes it with its checkpoints before the new run is
queued, ``enqueue`` (default) queues the new run behind it (the run manager runs one run per
thread at a time).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from langgraph.checkpoint.base.id import uuid6
from starlette.exceptions import HTTPException

from checkpoints.store import RunRecord
from checkpoints.threads import ThreadRecord
from graph_runtime.errors import (
    ConflictError,
    InputValidationError,
    InvalidTransition,
    NotFoundError,
    Problem,
    RunNotFound,
)
from graph_runtime.launch import RunLaunch
from graph_runtime.models import TaskStatus
from graph_runtime.runtime import Runtime
from graph_runtime.state_machine import AGENT_PROTOCOL_STATUS
from server.agent_protocol.assistants import Assistants, assistant_id_for, canonical_uuid
from server.agent_protocol.models import CancelMany, Run, RunCreate, ThreadCreate
from server.agent_protocol.state import interrupt_list, public_values
from server.agent_protocol.streaming import error_payload, langgraph_modes, parse_stream_modes
from server.agent_protocol.threads import ACTIVE, Threads

__all__ = ["AP_KEY", "Kind", "Runs", "Started"]

#: Key of ``RunRecord.metadata`` with the protocol's view of a run.
AP_KEY = "__agent_protocol__"
#: Configurable keys that are the server's to set.
_RESERVED_CONFIGURABLE = frozenset(
    {"thread_id", "checkpoint_id", "checkpoint_ns", "checkpoint_map", "run_id"}
)
_FAILED = frozenset({TaskStatus.FAILED, TaskStatus.TIMED_OUT, TaskStatus.CRASHED})
_BUSY = (
    "Thread is already running a task. Wait for it to finish or choose a different "
    "multitask strategy."
)

Kind = Literal["create", "stream", "wait"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Started:
    """A run just queued, and how its creator streams it."""

    record: RunRecord
    """The pending run."""
    thread_id: str
    """Its thread."""
    modes: tuple[str, ...]
    """The protocol stream modes asked for."""
    subgraphs: bool
    """Stream subgraph events too."""
    temporary: bool
    """A stateless run's thread, deleted when the run ends (``on_completion``)."""


class Runs:
    """Run operations on one runtime."""

    def __init__(self, runtime: Runtime, assistants: Assistants, threads: Threads) -> None:
        self.runtime = runtime
        self.assistants = assistants
        self.threads = threads

    # -- create -----------------------------------------------------------------------------

    async def start(self, thread_id: str | None, body: RunCreate, kind: Kind) -> Started:
        """Validate a run request, apply the multitask strategy and queue the run."""
        stored = await self._workflow(body.assistant_id)
        modes = _modes(body, kind)
        configurable = dict((body.config or {}).get("configurable") or {})
        if configurable and body.context:
            raise HTTPException(400, "Cannot specify both configurable and context.")
        if body.input is not None and body.command is not None:
            raise InputValidationError("give either input or command, not both")
        command = body.command.model_dump(exclude_none=True) if body.command else None
        temporary = thread_id is None
        if temporary and command is not None and "resume" in command:
            raise HTTPException(400, "You must provide a thread_id when resuming.")
        recursion_limit = _recursion_limit(body.config)
        thread = await self._thread_for(thread_id, body, stored.workflow_id)
        thread_id = thread.thread_id
        run_id = str(uuid6())
        assistant_id = assistant_id_for(stored.workflow_id)
        checkpoint = body.checkpoint
        launch = RunLaunch(
            input=body.input,
            command=command,
            checkpoint_id=body.checkpoint_id or (checkpoint.checkpoint_id if checkpoint else None),
            checkpoint_ns=(checkpoint.checkpoint_ns if checkpoint else "") or "",
            interrupt_before=_breakpoints(body.interrupt_before),
            interrupt_after=_breakpoints(body.interrupt_after),
            stream_modes=langgraph_modes(modes),
            durability=body.durability or ("exit" if body.checkpoint_during is False else None),
            recursion_limit=recursion_limit,
            configurable={k: v for k, v in configurable.items() if k not in _RESERVED_CONFIGURABLE},
            # LangGraph copies these into every checkpoint's metadata (the reference does too).
            metadata={
                "run_id": run_id,
                "thread_id": thread_id,
                "graph_id": stored.workflow_id,
                "assistant_id": assistant_id,
            },
            delay_seconds=body.after_seconds or None,
            input_keys=tuple(sorted(set(thread.input_keys) | set(body.input or {}))),
        )
        protocol_view = {
            "assistant_id": assistant_id,
            "multitask_strategy": body.multitask_strategy,
            "kwargs": _kwargs(body, modes, command, temporary),
        }
        async with self.threads.lock(thread_id):
            await self._make_room(thread_id, body.multitask_strategy)
            record, _ = await self.runtime.manager.submit(
                workflow_id=stored.workflow_id,
                version=stored.version,
                input=body.input or {},
                run_id=run_id,
                metadata={**(body.metadata or {}), AP_KEY: protocol_view},
                thread_id=thread_id,
                launch=launch,
            )
            # Re-read under the lock: another run may have added input keys meanwhile.
            current = await self.threads.store.get_thread(thread_id)
            await self.threads.bind(current or thread, stored, launch.input_keys)
        return Started(
            record=record,
            thread_id=thread_id,
            modes=tuple(modes),
            subgraphs=body.stream_subgraphs,
            temporary=temporary and body.on_completion != "keep",
        )

    async def _thread_for(
        self, thread_id: str | None, body: RunCreate, graph_id: str
    ) -> ThreadRecord:
        """The run's thread: a new temporary one, the existing one, or a new one.

        Raises:
            NotFoundError: no such thread and ``if_not_exists`` is ``reject``.
            ConflictError: the thread belongs to another graph.
        """
        if thread_id is None:
            return await self.threads.create(
                ThreadCreate(thread_id=str(uuid6()), graph_id=graph_id)
            )
        thread = await self.threads.store.get_thread(thread_id)
        if thread is None:
            if body.if_not_exists != "create":
                raise NotFoundError("Thread or assistant not found.")
            thread = await self.threads.create(
                ThreadCreate(thread_id=thread_id, if_exists="do_nothing")
            )
        if thread.graph_id not in (None, graph_id):
            # One thread, one graph: its checkpoints are read with that graph's channels.
            raise ConflictError(
                f"Thread {thread_id} belongs to graph {thread.graph_id!r}, not {graph_id!r}"
            )
        return thread

    async def _workflow(self, assistant_id: str) -> Any:
        try:
            return await self.assistants.resolve(assistant_id)
        except NotFoundError:
            if canonical_uuid(assistant_id) is not None:
                raise NotFoundError("Thread or assistant not found.") from None
            problem = Problem(path="/assistant_id", message="no such assistant or graph")
            raise InputValidationError(
                f"Invalid assistant: {assistant_id!r}", problems=[problem]
            ) from None

    async def _make_room(self, thread_id: str, strategy: str) -> None:
        # Called under the thread's lock: nothing can start on the thread meanwhile.
        if strategy == "enqueue":
            return  # queued behind whatever runs: no need to read the thread's runs
        active = [r for r in await self.threads.runs_of(thread_id) if r.status in ACTIVE]
        if not active:
            return
        if strategy == "reject":
            raise ConflictError(_BUSY)
        for run in active:
            await self._stop(run.run_id)
        if strategy == "rollback":
            for run in active:
                await self._drop(run.run_id)

    async def _stop(self, run_id: str) -> None:
        try:
            await self.runtime.stop(run_id)
        except InvalidTransition:
            pass  # already stopping or ended: nothing left to stop

    async def _drop(self, run_id: str) -> None:
        """Delete a stopped run with the checkpoints it wrote (rollback)."""
        await self.runtime.wait(run_id, timeout=30)
        saver = self.runtime.compiler.checkpointer
        if saver is not None:
            await saver.adelete_for_runs([run_id])
        await self.runtime.store.delete_run(run_id)

    # -- read -------------------------------------------------------------------------------

    def view(self, record: RunRecord) -> Run:
        """The protocol's ``Run`` of one of our runs."""
        ap = record.metadata.get(AP_KEY) or {}
        status = AGENT_PROTOCOL_STATUS[record.status]
        return Run(
            run_id=record.run_id,
            thread_id=record.thread_id,
            assistant_id=ap.get("assistant_id") or assistant_id_for(record.workflow_id),
            metadata={k: v for k, v in record.metadata.items() if not k.startswith("__")},
            status=status,  # type: ignore[arg-type]
            kwargs=ap.get("kwargs") or {},
            multitask_strategy=ap.get("multitask_strategy") or "enqueue",
            created_at=record.created_at,
            updated_at=record.updated_at,
            cancel_reason=record.error
            if record.status in (TaskStatus.STOPPED, TaskStatus.CANCELLED)
            else None,
        )

    async def get(self, thread_id: str, run_id: str) -> RunRecord:
        """A run of a thread.

        Raises:
            NotFoundError: no such run on this thread.
        """
        try:
            record = await self.runtime.get_run(run_id)
        except RunNotFound:
            record = None
        if record is None or record.thread_id != thread_id:
            raise NotFoundError(f"Run {run_id} not found")
        return record

    async def list(
        self, thread_id: str, *, limit: int, offset: int, status: str | None
    ) -> list[Run]:
        """The thread's runs, newest first."""
        await self.threads.get(thread_id)
        views = [self.view(r) for r in await self.threads.runs_of(thread_id)]
        if status is not None:
            views = [v for v in views if v.status == status]
        return views[offset : offset + limit]

    async def final_values(self, record: RunRecord) -> dict[str, Any]:
        """The wait/join body: the thread's values (with ``__interrupt__``), or ``__error__``.

        The values are read with the graph of the run's workflow version, as the thread's
        view reads them after its newest run.
        """
        if record.status in _FAILED:
            return {"__error__": error_payload(record.status, record.error)}
        thread = await self.threads.store.get_thread(record.thread_id)
        if thread is None:
            return {}
        snapshot = await self.threads.snapshot(thread, runs=[record])
        if snapshot is None or snapshot.created_at is None:
            return {}
        values = public_values(snapshot.values)
        if not isinstance(values, dict):
            return {"values": values}
        if snapshot.interrupts:
            values["__interrupt__"] = interrupt_list(snapshot.interrupts)
        return values

    # -- cancel and delete ------------------------------------------------------------------

    async def cancel(self, thread_id: str, run_id: str, action: str) -> RunRecord:
        """Stop a run (``interrupt``), or stop and delete it with its checkpoints (``rollback``).

        Raises:
            ConflictError: the run already ended.
        """
        record = await self.get(thread_id, run_id)
        if record.status.is_terminal:
            raise ConflictError(f"Run {run_id} already ended ({record.status.value})")
        async with self.threads.lock(thread_id):
            await self.runtime.stop(run_id)
            if action == "rollback":
                await self._drop(run_id)
        return record

    async def cancel_many(self, body: CancelMany, action: str) -> None:
        """``POST /runs/cancel``: by thread and ids, or every run in a status."""
        if body.status is not None and (body.thread_id or body.run_ids):
            raise InputValidationError("give a status, or a thread and run ids, not both")
        if body.status is not None:
            wanted = {
                "pending": {TaskStatus.PENDING},
                "running": {TaskStatus.RUNNING},
                "all": {TaskStatus.PENDING, TaskStatus.RUNNING},
            }[body.status]
            runs = await self.runtime.store.list_runs(status=wanted, limit=10**9)
            targets = [r for r in runs if AP_KEY in r.metadata]
        elif body.thread_id is not None:
            thread_id = canonical_uuid(body.thread_id) or body.thread_id
            targets = [
                r
                for r in await self.threads.runs_of(thread_id)
                if r.status in ACTIVE and (body.run_ids is None or r.run_id in body.run_ids)
            ]
        else:
            raise InputValidationError("give a thread_id (with run_ids) or a status")
        for run in targets:
            await self._stop(run.run_id)
            if action == "rollback":
                await self._drop(run.run_id)

    async def delete(self, thread_id: str, run_id: str) -> None:
        """Delete a run that is not pending or running.

        Raises:
            ConflictError: it is still active.
        """
        record = await self.get(thread_id, run_id)
        if record.status in ACTIVE:
            raise ConflictError(f"Run {run_id} is {record.status.value}: cancel it first")
        await self.runtime.store.delete_run(run_id)

    async def forget_thread(self, started: Started) -> None:
        """Delete a stateless run's temporary thread (and the run) once it ended."""
        if started.temporary:
            try:
                await self.threads.delete(started.thread_id)
            except NotFoundError:
                pass


def _modes(body: RunCreate, kind: Kind) -> list[str]:
    if body.stream_mode is None:
        # /wait streams nothing, so it records nothing beyond our own events.
        return [] if kind == "wait" else ["values"]
    return parse_stream_modes([body.stream_mode])


def _breakpoints(value: Any) -> Any:
    if value is None or value == "*":
        return value
    return tuple(value)


def _recursion_limit(config: dict[str, Any] | None) -> int | None:
    limit = (config or {}).get("recursion_limit")
    if limit is None:
        return None
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InputValidationError("config.recursion_limit must be a positive integer")
    return limit


def _kwargs(
    body: RunCreate, modes: list[str], command: dict[str, Any] | None, temporary: bool
) -> dict[str, Any]:
    return {
        "input": body.input,
        "command": command,
        "config": body.config or {},
        "context": body.context or {},
        "stream_mode": modes,
        "interrupt_before": body.interrupt_before,
        "interrupt_after": body.interrupt_after,
        "webhook": body.webhook,
        "feedback_keys": None,
        "temporary": temporary,
        "subgraphs": body.stream_subgraphs,
        "resumable": True,
        "checkpoint_during": body.checkpoint_during,
        "durability": body.durability,
    }

"""The run store: the ``RunStore`` protocol and the records and row mapping its backends share.

A backend (``sqlite.py`` now, ``postgres.py`` later) implements :class:`RunStore`; the run
manager, the event recorder and the server only ever see this protocol. Values crossing it are
frozen dataclasses (:class:`RunRecord`, :class:`StoredWorkflow`, :class:`LogRecord`) and the
domain models (``Event``, ``TaskStepResult``). The ``*_row`` helpers (from ``_rows.py``,
re-exported here) turn them into flat rows (JSON text, ISO-8601 UTC text) and back, so every
backend stores the same shapes.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

from checkpoints._rows import (
    LOG_LEVELS,
    NO_ROWS,
    RecordRows,
    canonical_level,
    dt_from_db,
    dt_required,
    dt_to_db,
    event_from_row,
    event_to_row,
    json_dumps,
    json_loads,
    log_level_no,
    record_rows,
    step_from_row,
    step_row,
    step_to_row,
    step_view_and_row,
    step_view_of,
)
from graph_runtime.models import ErrorCode, Event, TaskResponse, TaskStatus, TaskStepResult, utcnow

__all__ = [
    "LOG_LEVELS",
    "NO_ROWS",
    "LogRecord",
    "RecordRows",
    "RunRecord",
    "RunRow",
    "RunStore",
    "StoreHealth",
    "StoredWorkflow",
    "canonical_level",
    "dt_from_db",
    "dt_to_db",
    "event_from_row",
    "event_to_row",
    "json_dumps",
    "json_loads",
    "log_level_no",
    "record_rows",
    "run_column_changes",
    "step_from_row",
    "step_row",
    "step_to_row",
    "step_view_and_row",
    "step_view_of",
]

#: Fields that ``transition``/``update_run`` refuse in ``**fields``: identity and the
#: bookkeeping the store itself owns.
_FROZEN_RUN_FIELDS = frozenset({"run_id", "status", "created_at", "updated_at"})


class RunRow(TypedDict):
    """One raw row of the ``runs`` table, as bound into and read out of SQL."""

    run_id: str
    workflow_id: str
    workflow_version: int | None
    thread_id: str
    status: str
    priority: int
    input: str
    result: str | None
    error: str | None
    error_code: str | None
    current_node: str | None
    progress: float
    timeout_seconds: float | None
    attempts: int
    owner: str | None
    metadata: str
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RunRecord:
    """One run: a row of ``runs``."""

    run_id: str
    """The run id (the seed API's ``execution_id``); an idempotency key on create."""
    workflow_id: str
    """The workflow it runs."""
    workflow_version: int | None
    """The stored workflow version, or None for an unstored definition."""
    thread_id: str
    """The LangGraph thread its checkpoints live under."""
    status: TaskStatus
    """Its state-machine status; changed only by ``RunStore.transition``."""
    priority: int
    """1 (lowest) to 10 (first)."""
    input: dict[str, Any]
    """The workflow input."""
    result: Any = None
    """The output once completed."""
    error: str | None = None
    """Why it failed, timed out or stopped."""
    error_code: ErrorCode | None = None
    """E001-E007 when it failed."""
    current_node: str | None = None
    """The node running now, for status displays."""
    progress: float = 0.0
    """0.0 to 1.0."""
    timeout_seconds: float | None = None
    """Bound on the whole run."""
    attempts: int = 0
    """How many times a process started executing it (crash recovery)."""
    owner: str | None = None
    """Id of the process running it (crash recovery)."""
    metadata: dict[str, Any] = field(default_factory=dict)
    """Free-form client metadata."""
    created_at: dt.datetime
    """When it was submitted."""
    updated_at: dt.datetime
    """Last change of any field."""
    started_at: dt.datetime | None = None
    """When it first went to running."""
    finished_at: dt.datetime | None = None
    """When it reached a terminal status."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunRecord:
        """Build a record from a ``runs`` row (a mapping of column name to value)."""
        code = row["error_code"]
        result = row["result"]
        return cls(
            run_id=row["run_id"],
            workflow_id=row["workflow_id"],
            workflow_version=row["workflow_version"],
            thread_id=row["thread_id"],
            status=TaskStatus(row["status"]),
            priority=int(row["priority"]),
            input=json_loads(row["input"]),
            result=None if result is None else json_loads(result),
            error=row["error"],
            error_code=None if code is None else ErrorCode(code),
            current_node=row["current_node"],
            progress=float(row["progress"]),
            timeout_seconds=row["timeout_seconds"],
            attempts=int(row["attempts"]),
            owner=row["owner"],
            metadata=json_loads(row["metadata"]),
            created_at=dt_required(row["created_at"]),
            updated_at=dt_required(row["updated_at"]),
            started_at=dt_from_db(row["started_at"]),
            finished_at=dt_from_db(row["finished_at"]),
        )

    def to_row(self) -> RunRow:
        """The ``runs`` row for this record (JSON and timestamps as text)."""
        return RunRow(
            run_id=self.run_id,
            workflow_id=self.workflow_id,
            workflow_version=self.workflow_version,
            thread_id=self.thread_id,
            status=TaskStatus(self.status).value,  # fields may pass plain strings
            priority=self.priority,
            input=json_dumps(self.input),
            result=None if self.result is None else json_dumps(self.result),
            error=self.error,
            error_code=None if self.error_code is None else ErrorCode(self.error_code).value,
            current_node=self.current_node,
            progress=self.progress,
            timeout_seconds=self.timeout_seconds,
            attempts=self.attempts,
            owner=self.owner,
            metadata=json_dumps(self.metadata),
            created_at=dt_to_db(self.created_at) or "",
            updated_at=dt_to_db(self.updated_at) or "",
            started_at=dt_to_db(self.started_at),
            finished_at=dt_to_db(self.finished_at),
        )

    def to_response(self, message: str = "") -> TaskResponse:
        """The task API's view of this run."""
        return TaskResponse(
            task_id=self.run_id,
            status=self.status,
            progress=min(max(self.progress, 0.0), 1.0),
            result=self.result,
            error=self.error,
            error_code=self.error_code,
            created_at=self.created_at,
            updated_at=self.updated_at,
            message=message,
        )


#: How a run field that ``transition``/``update_run`` may set becomes its ``runs`` column.
_RUN_COLUMN_ENCODERS: dict[str, Callable[[Any], Any]] = {
    "workflow_id": lambda v: v,
    "workflow_version": lambda v: v,
    "thread_id": lambda v: v,
    "priority": lambda v: v,
    "input": json_dumps,
    "result": lambda v: None if v is None else json_dumps(v),
    "error": lambda v: v,
    "error_code": lambda v: None if v is None else ErrorCode(v).value,
    "current_node": lambda v: v,
    "progress": lambda v: v,
    "timeout_seconds": lambda v: v,
    "attempts": lambda v: v,
    "owner": lambda v: v,
    "metadata": json_dumps,
    "started_at": dt_to_db,
    "finished_at": dt_to_db,
}


def run_column_changes(
    fields: Mapping[str, Any],
    *,
    now: dt.datetime,
    new_status: TaskStatus | None = None,
    first_start: bool = False,
) -> dict[str, Any]:
    """The ``runs`` columns a ``transition`` or ``update_run`` changes, encoded as ``to_row`` does.

    Always ``updated_at``; on a transition (``new_status``) also ``started_at`` the first time
    the run goes to running (``first_start``: it has none yet) and ``finished_at`` when it
    reaches a terminal status, unless ``fields`` sets them. A store writes only these columns:
    the run's input and metadata are neither decoded nor encoded again.

    Raises:
        TypeError: a field a caller may not set (identity, status, the store's timestamps)
            or that runs do not have, so a typo never passes silently.
    """
    refused = _FROZEN_RUN_FIELDS.intersection(fields)
    if refused:
        raise TypeError(f"these run fields cannot be set here: {sorted(refused)}")
    unknown = set(fields).difference(_RUN_COLUMN_ENCODERS)
    if unknown:
        raise TypeError(f"runs have no fields {sorted(unknown)}")
    stamp = dt_to_db(now)
    columns: dict[str, Any] = {"updated_at": stamp}
    if new_status is not None:
        columns["status"] = TaskStatus(new_status).value
        if new_status is TaskStatus.RUNNING and first_start:
            columns["started_at"] = stamp
        if new_status.is_terminal:
            columns["finished_at"] = stamp
    for name, value in fields.items():
        columns[name] = _RUN_COLUMN_ENCODERS[name](value)
    return columns


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredWorkflow:
    """One stored version of a workflow definition."""

    workflow_id: str
    """The workflow id."""
    version: int
    """1, 2, 3... per workflow id."""
    definition: dict[str, Any]
    """The workflow JSON document."""
    content_hash: str
    """Hash of the canonical definition; an unchanged definition keeps its version."""
    created_at: dt.datetime
    """When this version was stored."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredWorkflow:
        """Build from a ``workflows`` row."""
        return cls(
            workflow_id=row["workflow_id"],
            version=int(row["version"]),
            definition=json_loads(row["definition"]),
            content_hash=row["content_hash"],
            created_at=dt_required(row["created_at"]),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class LogRecord:
    """One log line of a run."""

    run_id: str
    """The run it belongs to."""
    id: int = 0
    """Store-assigned, increasing; 0 before insert (a non-zero id makes a replay idempotent)."""
    level: str
    """debug, info, warning, error or critical."""
    message: str
    """The log message."""
    node_id: str | None = None
    """The node that logged it, if any."""
    created_at: dt.datetime = field(default_factory=utcnow)
    """When it was logged."""

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> LogRecord:
        """Build from a ``logs`` row."""
        return cls(
            run_id=row["run_id"],
            id=int(row["id"]),
            level=row["level"],
            message=row["message"],
            node_id=row["node_id"],
            created_at=dt_required(row["created_at"]),
        )

    def to_row(self) -> dict[str, Any]:
        """The ``logs`` row (``id`` None when not yet assigned)."""
        return {
            "id": self.id or None,
            "run_id": self.run_id,
            "level": canonical_level(self.level),
            "level_no": log_level_no(self.level),
            "message": self.message,
            "node_id": self.node_id,
            "created_at": dt_to_db(self.created_at),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class StoreHealth:
    """Whether the database takes writes, and what waits for it."""

    writable: bool
    """False when the last write was refused (locked, full, read-only...)."""
    error: str | None = None
    """Why it was refused."""
    journaled: int = 0
    """Rows (events, steps, logs) waiting in the write-failure journal."""

    @property
    def ok(self) -> bool:
        """Writable with nothing waiting."""
        return self.writable and not self.journaled


class RunStore(Protocol):
    """Durable storage for workflows, runs and each run's steps, logs and events.

    Every write is durable when its call returns (:meth:`record_nowait`: when its future
    resolves). Every status change is one call, :meth:`transition`, that writes the status
    and its event in one transaction. Writes of one caller commit in the order it made them.
    Backend errors surface as ``StoreError`` (E006).
    """

    async def put_workflow(
        self, workflow_id: str, definition: dict[str, Any], content_hash: str
    ) -> StoredWorkflow:
        """Store a new version (latest + 1), or return the latest if its hash is the same."""
        ...

    async def get_workflow(self, workflow_id: str, version: int | None = None) -> StoredWorkflow:
        """One version (the latest when ``version`` is None); ``WorkflowNotFound``."""
        ...

    async def list_workflows(self) -> list[StoredWorkflow]:
        """The latest version of every workflow, by workflow id."""
        ...

    async def workflow_versions(self, workflow_id: str) -> list[int]:
        """The stored versions of a workflow, ascending (empty if none)."""
        ...

    async def create_run(
        self, run: RunRecord, event: Event, *, started: Event | None = None
    ) -> tuple[RunRecord, bool]:
        """Insert a pending run and its first event; ``(existing, False)`` if the id exists.

        ``started``: the run starts at once: it is inserted ``running`` (owned, first attempt)
        and ``started`` (its ``pending`` → ``running`` event) follows ``event``, in the same
        transaction: one commit where a pending run and its start take two.
        """
        ...

    async def get_run(self, run_id: str) -> RunRecord:
        """One run; ``RunNotFound``."""
        ...

    async def run_status(self, run_id: str) -> TaskStatus:
        """One run's status, without the rest of it; ``RunNotFound``."""
        ...

    async def list_runs(
        self,
        *,
        status: Collection[TaskStatus] | None = None,
        workflow_id: str | None = None,
        thread_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunRecord]:
        """Runs in creation order, optionally filtered by status, workflow and thread."""
        ...

    async def count_runs(self) -> dict[TaskStatus, int]:
        """How many runs the store holds in each status (statuses with none are left out)."""
        ...

    async def transition(
        self,
        run_id: str,
        new: TaskStatus,
        event: Event,
        *,
        expected: Collection[TaskStatus] | None = None,
        followed_by: Sequence[Event] = (),
        **fields: Any,
    ) -> RunRecord:
        """Compare-and-set the status, update ``fields`` and insert ``event``, atomically.

        ``followed_by`` events (a terminal status's ``end``) are inserted after ``event`` in
        the same transaction. Raises ``RunNotFound``; ``InvalidTransition`` if the current
        status is not in ``expected`` or the move is illegal; ``ConflictError`` if an event
        id is taken.
        """
        ...

    async def update_run(self, run_id: str, **fields: Any) -> None:
        """Change fields other than the status (progress, current_node...); ``RunNotFound``."""
        ...

    async def record(
        self,
        run_id: str,
        *,
        events: Sequence[Event] = (),
        steps: Sequence[TaskStepResult] = (),
        logs: Sequence[LogRecord] = (),
    ) -> None:
        """Durably store events, steps and logs of a run; a replay never duplicates them."""
        ...

    def record_nowait(
        self,
        run_id: str,
        *,
        events: Sequence[Event] = (),
        steps: Sequence[TaskStepResult] = (),
        logs: Sequence[LogRecord] = (),
        lazy: bool = False,
        on_done: Callable[[BaseException | None], None] | None = None,
        urgent: bool = False,
    ) -> asyncio.Future[None]:
        """Queue what :meth:`record` writes before returning; the future resolves once durable.

        Writes queued one after another commit in that order; with nothing to write, the
        future resolves once everything queued before committed. ``lazy``: the write may
        wait a moment for other writes to share its commit. ``on_done(error)`` is called
        as soon as the write committed or failed (the future already resolved), before
        whatever waits for the same commit resumes. ``urgent``: the caller waits for the
        commit next, so a backend may commit at once rather than wait for company (the
        future may then be done on return). Must be called on the event loop.
        """
        ...

    def queue_records(
        self,
        run_id: str,
        rows: RecordRows,
        *,
        on_done: Callable[[BaseException | None], None],
        lazy: bool = False,
        urgent: bool = False,
        followed: bool = False,
    ) -> None:
        """:meth:`record_nowait` for rows already built (:func:`record_rows`), no future.

        ``on_done(error)`` is called once the write committed (``None``) or failed; with
        nothing to write and ``lazy``, at once. The run's recorder writes through this.
        ``followed`` (with ``lazy``): a commit of the checkpointer is known to follow,
        which the write may count on to join rather than keep a timer of its own.
        """
        ...

    async def events_after(self, run_id: str, after: int = 0, limit: int = 1000) -> list[Event]:
        """Events with ``id > after``, ascending, at most ``limit``."""
        ...

    async def last_event_id(self, run_id: str) -> int:
        """The highest event id of a run, 0 when it has none."""
        ...

    async def last_step_seq(self, run_id: str) -> int:
        """The highest step ``seq`` of a run, 0 when it has none."""
        ...

    async def steps(self, run_id: str) -> list[TaskStepResult]:
        """The step records of a run, by ``seq``."""
        ...

    async def step_keys(self, run_id: str) -> set[tuple[str, int]]:
        """The ``(task_id, attempt)`` keys already recorded for a run."""
        ...

    async def logs(
        self, run_id: str, *, level: str | None = None, limit: int = 100, after: int = 0
    ) -> list[LogRecord]:
        """Log lines with ``id > after`` at ``level`` or above, ascending, at most ``limit``."""
        ...

    async def delete_run(self, run_id: str) -> None:
        """Delete a run with its steps, logs and events; ``RunNotFound``."""
        ...

    def health(self) -> StoreHealth:
        """Whether the last write was refused and what waits in the write-failure journal."""
        ...

    async def probe(self) -> None:
        """Commit an empty write (replaying the journal first); ``StoreError`` if refused."""
        ...

    async def close(self) -> None:
        """Flush pending writes and release the database."""
        ...

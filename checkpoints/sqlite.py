"""SQLite backend of the run store: WAL, one group-committing writer, one reader.

``SqliteRunStore.open(path)`` takes an OS-level lock on ``<path>.lock`` (one process per
database file; the kernel drops it when the process dies, even by kill -9), opens a writer
connection (WAL, ``synchronous=NORMAL``, ``busy_timeout``, foreign keys) and a separate
read-only connection, and applies the migrations. Every write is a job on the
:class:`~checkpoints._store_writer.GroupCommitWriter`: it returns once committed, and
concurrent writes share one transaction. The LangGraph checkpointer lives in the same file
with its own tables; this module only touches ``workflows``, ``runs``, ``steps``, ``logs``,
``events`` and ``graph_runtime_migrations``.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Literal, LiteralString, TypeVar

import aiosqlite

from checkpoints import _sqlite_store_sql as sql
from checkpoints._store_writer import GroupCommitWriter, Job, WriterStats
from checkpoints.migrate import migrate
from checkpoints.store import (
    LogRecord,
    RunRecord,
    StoredWorkflow,
    apply_run_changes,
    dt_to_db,
    event_from_row,
    event_to_row,
    json_dumps,
    log_level_no,
    step_from_row,
    step_to_row,
)
from graph_runtime.errors import (
    ConflictError,
    InvalidTransition,
    RunNotFound,
    StoreError,
    WorkflowNotFound,
)
from graph_runtime.models import Event, TaskStatus, TaskStepResult, utcnow
from graph_runtime.state_machine import check_transition

__all__ = ["SqliteRunStore"]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")
Row = dict[str, Any]


def _lock(db: Path) -> int:
    """Take the OS-level exclusive lock on ``<db>.lock``; the kernel drops it if we die."""
    lock_path = db.with_name(db.name + ".lock")
    try:
        # os.open descriptors are not inherited by child processes (O_CLOEXEC since 3.4),
        # so a subprocess we spawn never keeps the lock alive after we exit.
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StoreError(f"cannot create the lock file {lock_path}: {exc}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise StoreError(
            f"another graph-runtime process is using {db}; stop it or use another --db"
        ) from exc
    # The pid is for people reading the file; the flock is the lock. The file is never
    # deleted: unlinking it would let a third process lock a fresh inode beside ours.
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


async def _connect(db: Path, busy_timeout_ms: int) -> aiosqlite.Connection:
    # isolation_level=None: no implicit BEGIN; every transaction is an explicit BEGIN IMMEDIATE.
    # timeout= is sqlite3_busy_timeout: lock waits retry for that long before SQLITE_BUSY.
    conn = await aiosqlite.connect(db, timeout=busy_timeout_ms / 1000, isolation_level=None)
    conn.row_factory = sqlite3.Row
    return conn


class SqliteRunStore:
    """The :class:`~checkpoints.store.RunStore` on a SQLite file. Open with :meth:`open`."""

    def __init__(
        self,
        *,
        path: Path,
        writer: aiosqlite.Connection,
        reader: aiosqlite.Connection,
        lock_fd: int | None,
    ) -> None:
        self.path = path
        self._writer = writer
        self._reader = reader
        self._lock_fd = lock_fd
        self._closed = False
        self._writes = GroupCommitWriter(
            writer, insert_records=_insert_records, name=f"run-store-writer:{path}"
        )

    @property
    def stats(self) -> WriterStats:
        """Counters of the group-committing writer."""
        return self._writes.stats

    @classmethod
    async def connect(
        cls,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 5000,
        lock: bool = True,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> SqliteRunStore:
        """Open the store (create, lock, migrate); call :meth:`close` when done.

        Args:
            path: the database file; parent folders are created.
            busy_timeout_ms: how long a statement waits for another connection's lock.
            lock: take the process lock on ``<path>.lock`` (off only for tools and tests).
            synchronous: ``NORMAL`` survives a killed process (kill -9); ``FULL`` also
                survives power loss, at the price of an fsync per commit.

        Raises:
            StoreError: another process holds the lock, or the database cannot be opened or
                migrated.
        """
        db = Path(path)
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of {db}: {exc}") from exc
        lock_fd = _lock(db) if lock else None
        writer: aiosqlite.Connection | None = None
        reader: aiosqlite.Connection | None = None
        try:
            writer = await _connect(db, busy_timeout_ms)
            rows = await writer.execute_fetchall(sql.PRAGMA_WAL)
            if next(iter(rows))[0] != "wal":
                logger.warning("SQLite refused WAL mode for %s", db, extra={"action": "open"})
            sync = sql.PRAGMA_SYNC_FULL if synchronous == "FULL" else sql.PRAGMA_SYNC_NORMAL
            await writer.execute(sync)
            await writer.execute(sql.PRAGMA_FOREIGN_KEYS)
            await migrate(writer)
            reader = await _connect(db, busy_timeout_ms)
            # query_only: a bug that writes through the reader fails instead of racing the writer.
            await reader.execute(sql.PRAGMA_QUERY_ONLY)
        except BaseException as exc:
            for conn in (reader, writer):
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
            if lock_fd is not None:
                os.close(lock_fd)
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open the run store {db}: {exc}") from exc
            raise
        return cls(path=db, writer=writer, reader=reader, lock_fd=lock_fd)

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 5000,
        lock: bool = True,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
    ) -> AsyncIterator[SqliteRunStore]:
        """Open the store for the ``async with`` block; see :meth:`connect` for the arguments."""
        store = await cls.connect(
            path, busy_timeout_ms=busy_timeout_ms, lock=lock, synchronous=synchronous
        )
        try:
            yield store
        finally:
            await store.close()

    async def close(self) -> None:
        """Commit every queued write, close both connections and release the lock."""
        if self._closed:
            return
        self._closed = True  # From here new writes are refused; queued ones still commit.
        try:
            await self._writes.close()
        finally:
            try:
                await self._reader.close()
                await self._writer.close()
            except sqlite3.Error as exc:
                raise StoreError(f"closing the run store failed: {exc}") from exc
            finally:
                if self._lock_fd is not None:
                    os.close(self._lock_fd)  # releases the flock
                    self._lock_fd = None

    # -- workflows -------------------------------------------------------------------------

    async def put_workflow(
        self, workflow_id: str, definition: dict[str, Any], content_hash: str
    ) -> StoredWorkflow:
        row = dict(
            workflow_id=workflow_id, definition=json_dumps(definition), content_hash=content_hash
        )

        async def body(conn: aiosqlite.Connection) -> StoredWorkflow:
            # Inside the write transaction, so two puts cannot both take version max+1.
            latest = list(await conn.execute_fetchall(sql.SELECT_WORKFLOW_LATEST, (workflow_id,)))
            if latest and latest[0]["content_hash"] == content_hash:
                return StoredWorkflow.from_row(dict(latest[0]))
            new = {**row, "version": latest[0]["version"] + 1 if latest else 1}
            new["created_at"] = dt_to_db(utcnow())
            await conn.execute(sql.INSERT_WORKFLOW, new)
            return StoredWorkflow.from_row(new)

        return await self._write(body)

    async def get_workflow(self, workflow_id: str, version: int | None = None) -> StoredWorkflow:
        if version is None:
            rows = await self._read(sql.SELECT_WORKFLOW_LATEST, (workflow_id,))
        else:
            rows = await self._read(sql.SELECT_WORKFLOW_VERSION, (workflow_id, version))
        if not rows:
            which = "" if version is None else f" version {version}"
            raise WorkflowNotFound(f"no workflow {workflow_id!r}{which}")
        return StoredWorkflow.from_row(rows[0])

    async def list_workflows(self) -> list[StoredWorkflow]:
        return [StoredWorkflow.from_row(r) for r in await self._read(sql.LIST_WORKFLOWS, ())]

    async def workflow_versions(self, workflow_id: str) -> list[int]:
        rows = await self._read(sql.SELECT_WORKFLOW_VERSIONS, (workflow_id,))
        return [int(r["version"]) for r in rows]

    # -- runs ------------------------------------------------------------------------------

    async def create_run(self, run: RunRecord, event: Event) -> tuple[RunRecord, bool]:
        if run.status is not TaskStatus.PENDING:
            raise ValueError(f"a new run must be pending, not {run.status.value}")
        _check_run_id(run.run_id, [event])
        row, event_row = run.to_row(), event_to_row(event)

        async def body(conn: aiosqlite.Connection) -> tuple[RunRecord, bool]:
            cursor = await conn.execute(sql.INSERT_RUN, row)
            if cursor.rowcount == 0:
                # The id is an idempotency key: a repeated create returns the first run and
                # writes nothing. Serialised by the writer, so exactly one create wins.
                return await _load_run(conn, run.run_id), False
            await _insert_event(conn, event_row)
            return RunRecord.from_row(row), True

        return await self._write(body)

    async def get_run(self, run_id: str) -> RunRecord:
        rows = await self._read(sql.SELECT_RUN, (run_id,))
        if not rows:
            raise RunNotFound(f"no run {run_id!r}")
        return RunRecord.from_row(rows[0])

    async def list_runs(
        self,
        *,
        status: Collection[TaskStatus] | None = None,
        workflow_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunRecord]:
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be >= 0")
        statuses = None if status is None else json_dumps([TaskStatus(s).value for s in status])
        params = dict(statuses=statuses, workflow_id=workflow_id, limit=limit, offset=offset)
        return [RunRecord.from_row(r) for r in await self._read(sql.LIST_RUNS, params)]

    async def transition(
        self,
        run_id: str,
        new: TaskStatus,
        event: Event,
        *,
        expected: Collection[TaskStatus] | None = None,
        **fields: Any,
    ) -> RunRecord:
        _check_run_id(run_id, [event])
        new = TaskStatus(new)  # a plain "running" works too
        allowed = None if expected is None else frozenset(TaskStatus(s) for s in expected)
        event_row = event_to_row(event)

        async def body(conn: aiosqlite.Connection) -> RunRecord:
            # Read and write in the same write transaction: nothing can change the status
            # between the check and the update (compare-and-set).
            current = await _load_run(conn, run_id)
            if allowed is not None and current.status not in allowed:
                wanted = " or ".join(sorted(s.value for s in allowed))
                raise InvalidTransition(
                    current.status, new, f"the run is {current.status.value}, not {wanted}"
                )
            check_transition(current.status, new)
            row = apply_run_changes(current, fields, now=utcnow(), new_status=new).to_row()
            await conn.execute(sql.UPDATE_RUN, row)
            await _insert_event(conn, event_row)
            return RunRecord.from_row(row)

        return await self._write(body)

    async def update_run(self, run_id: str, **fields: Any) -> None:
        async def body(conn: aiosqlite.Connection) -> None:
            current = await _load_run(conn, run_id)
            await conn.execute(
                sql.UPDATE_RUN, apply_run_changes(current, fields, now=utcnow()).to_row()
            )

        await self._write(body)

    async def delete_run(self, run_id: str) -> None:
        async def body(conn: aiosqlite.Connection) -> None:
            # foreign_keys=ON: the steps, logs and events go with the run (ON DELETE CASCADE).
            cursor = await conn.execute(sql.DELETE_RUN, (run_id,))
            if cursor.rowcount == 0:
                raise RunNotFound(f"no run {run_id!r}")

        await self._write(body)

    # -- steps, logs, events ---------------------------------------------------------------

    async def record(
        self,
        run_id: str,
        *,
        events: Sequence[Event] = (),
        steps: Sequence[TaskStepResult] = (),
        logs: Sequence[LogRecord] = (),
    ) -> None:
        """Store events, steps and logs of a run; durable (committed) when it returns.

        Idempotent: an event is keyed ``(run_id, id)``, a step ``(run_id, task_id, attempt)``
        (``(run_id, seq)`` without a task id), a log with a non-zero ``id`` by that id.
        Concurrent calls share one transaction. A call whose caller is cancelled while it
        waits is still committed: a queued record is never dropped.

        Raises:
            RunNotFound: the run does not exist.
            ValueError: a record belongs to another run.
            StoreError: the database failed.
        """
        _check_run_id(run_id, [*events, *steps, *logs])
        if not (events or steps or logs):
            return
        # Rows are built here, in the caller's task, to keep JSON encoding off the writer.
        job = Job(
            future=asyncio.get_running_loop().create_future(),
            run_id=run_id,
            events=[event_to_row(e) for e in events],
            steps=[step_to_row(run_id, s) for s in steps],
            logs=[log.to_row() for log in logs],
        )
        await self._writes.record(job)

    async def events_after(self, run_id: str, after: int = 0, limit: int = 1000) -> list[Event]:
        rows = await self._read(sql.SELECT_EVENTS_AFTER, (run_id, after, limit))
        return [event_from_row(r) for r in rows]

    async def last_event_id(self, run_id: str) -> int:
        return int((await self._read(sql.SELECT_LAST_EVENT_ID, (run_id,)))[0]["id"])

    async def steps(self, run_id: str) -> list[TaskStepResult]:
        return [step_from_row(r) for r in await self._read(sql.SELECT_STEPS, (run_id,))]

    async def step_keys(self, run_id: str) -> set[tuple[str, int]]:
        rows = await self._read(sql.SELECT_STEP_KEYS, (run_id,))
        return {(str(r["task_id"]), int(r["attempt"])) for r in rows}

    async def logs(
        self, run_id: str, *, level: str | None = None, limit: int = 100, after: int = 0
    ) -> list[LogRecord]:
        minimum = 0 if level is None else log_level_no(level)
        rows = await self._read(sql.SELECT_LOGS, (run_id, after, minimum, limit))
        return [LogRecord.from_row(r) for r in rows]

    # -- plumbing --------------------------------------------------------------------------

    async def _read(self, statement: LiteralString, params: Sequence[Any] | Row) -> list[Row]:
        if self._closed:
            raise StoreError("the run store is closed")
        try:
            # execute_fetchall steps the statement to the end, which ends its read
            # transaction; a half-read cursor would pin an old WAL snapshot.
            rows = await self._reader.execute_fetchall(statement, params)
        except sqlite3.Error as exc:
            raise StoreError(f"reading the run store failed: {exc}") from exc
        return [dict(r) for r in rows]

    async def _write(self, body: Callable[[aiosqlite.Connection], Awaitable[_T]]) -> _T:
        if self._closed:
            raise StoreError("the run store is closed")
        return await self._writes.run(body)


def _check_run_id(run_id: str, records: Sequence[Event | TaskStepResult | LogRecord]) -> None:
    for rec in records:
        if rec.run_id is not None and rec.run_id != run_id:
            raise ValueError(f"a record of run {rec.run_id!r} was given for run {run_id!r}")


async def _load_run(conn: aiosqlite.Connection, run_id: str) -> RunRecord:
    rows = list(await conn.execute_fetchall(sql.SELECT_RUN, (run_id,)))
    if not rows:
        raise RunNotFound(f"no run {run_id!r}")
    return RunRecord.from_row(dict(rows[0]))


async def _insert_event(conn: aiosqlite.Connection, row: Row) -> None:
    try:
        await conn.execute(sql.INSERT_EVENT, row)
    except sqlite3.IntegrityError as exc:
        if "UNIQUE" not in str(exc):
            raise
        raise ConflictError(f"event {row['id']} of run {row['run_id']!r} already exists") from exc


async def _insert_records(conn: aiosqlite.Connection, group: list[Job]) -> None:
    events = [row for job in group for row in job.events]
    steps = [row for job in group for row in job.steps]
    logs = [row for job in group for row in job.logs]
    # One executemany per table for the whole group: a handful of thread hops per batch
    # instead of one per row.
    if events:
        await conn.executemany(sql.INSERT_EVENT_IDEMPOTENT, events)
    if steps:
        await conn.executemany(sql.INSERT_STEP, steps)
    if logs:
        await conn.executemany(sql.INSERT_LOG, logs)

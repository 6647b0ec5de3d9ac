"""SQLite backend of the run store: WAL, one group-committing writer, one reader.

``SqliteRunStore.connect(path)`` takes an OS-level lock on ``<path>.lock`` (one process per
database file; the kernel drops it when the process dies, even by kill -9), applies the
migrations, and opens a read-only connection for reads. Every write is a job (a plain
``sqlite3`` function, see :mod:`checkpoints._sqlite_store_ops`) on a
:class:`~checkpoints._sqlite_writer.GroupCommitWriter`; it returns once committed, and
concurrent writes share one transaction. The writer is either

* **shared** (``writer=saver.writer``, what :func:`checkpoints.storage.open_runtime_storage` does
  with ``FastSqliteSaver``): the store's jobs go into the checkpointer's own queue and
  transactions, on its one connection. A superstep's step records (queued by the node, before
  LangGraph saves the task's writes) commit in the same transaction as its checkpoint, or
  an earlier one; no second connection competes for the write lock; or
* **its own** (no ``writer``): its own connection, committing on the event loop (``NORMAL``)
  or on a writer thread (``FULL``), e.g. beside LangGraph's ``AsyncSqliteSaver``.

Reads run on the event loop with the stdlib driver: small indexed lookups that in WAL mode
never wait for a writer. The checkpointer's tables live in the same file; this module only
touches ``workflows``, ``runs``, ``steps``, ``logs``, ``events``, ``threads`` (the
:class:`~checkpoints.threads.ThreadStore` of the LangGraph Server API) and
``graph_runtime_migrations``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any, Literal, LiteralString, TypeVar, cast

from checkpoints import _sqlite_store_ops as ops
from checkpoints import _sqlite_store_setup as setup
from checkpoints import _sqlite_store_sql as sql
from checkpoints._rows import RecordRows, dt_required, record_rows, step_event_from_row
from checkpoints._sqlite_store_journal import JournalKeeper
from checkpoints._sqlite_store_setup import WriterStats, lock_database, unlock_database
from checkpoints._sqlite_writer import (
    GroupCommitWriter,
    OnDone,
    When,
    WriteFn,
    WriterClosedError,
)
from checkpoints.journal import WriteJournal, journal_path
from checkpoints.store import (
    LogRecord,
    RunRecord,
    StoredWorkflow,
    StoreHealth,
    event_from_row,
    event_to_row,
    json_dumps,
    log_level_no,
    step_from_row,
)
from checkpoints.threads import ThreadRecord
from graph_runtime.errors import RunNotFound, StoreError, WorkflowNotFound
from graph_runtime.models import Event, TaskStatus, TaskStepResult

__all__ = ["SqliteRunStore", "WriterStats", "lock_database", "unlock_database"]

_T = TypeVar("_T")
Row = dict[str, Any]


class SqliteRunStore:
    """The :class:`~checkpoints.store.RunStore` on a SQLite file. Open with :meth:`open`."""

    def __init__(
        self,
        *,
        path: Path,
        writer: GroupCommitWriter,
        reader: sqlite3.Connection,
        own_connection: sqlite3.Connection | None,
        lock_fd: int | None,
        journal: WriteJournal | None = None,
    ) -> None:
        self.path = path
        self._writer = writer
        # Record writes the database refuses wait here until it takes them (E006 outage).
        self._journal = None if journal is None else JournalKeeper(journal, writer)
        self._reader = reader
        self._own_connection = own_connection
        self._lock_fd = lock_fd
        self._closed = False
        self._stats = WriterStats()
        # run id → thread id of the runs this process writes for. The writer commits a
        # checkpoint at once when every queued operation is of its thread, so our jobs carry
        # the run's thread id as their key (the run id when not known: the runtime uses it
        # as the thread id).
        self._threads: dict[str, str] = {}
        # workflow id → (content hash, version, created_at) of its latest stored version.
        # Versions are only ever added, and only by this process (the database is locked
        # to it), so a head seen or written here stays the latest until we add another.
        self._heads: dict[str, tuple[str, int, dt.datetime]] = {}

    @property
    def stats(self) -> WriterStats:
        """Counters of the writer (``transactions`` includes a sharing checkpointer's)."""
        self._stats.transactions = self._writer.commits
        return self._stats

    @property
    def shares_writer(self) -> bool:
        """True when the store commits in the checkpointer's transactions."""
        return self._own_connection is None

    @classmethod
    async def connect(
        cls,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 5000,
        lock: bool = True,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        writer: GroupCommitWriter | None = None,
        journal: bool = True,
    ) -> SqliteRunStore:
        """Open the store (create, lock, migrate); call :meth:`close` when done.

        Args:
            path: the database file; parent folders are created.
            busy_timeout_ms: how long a write or a read waits for another connection's lock.
            lock: take the process lock on ``<path>.lock`` (off for tools, tests, and
                :func:`checkpoints.storage.open_runtime_storage`, which takes it itself).
                The store assumes no other process writes workflows while it is open: it
                keeps the latest version of each workflow it saw.
            synchronous: ``NORMAL`` survives a killed process (kill -9); ``FULL`` also
                survives power loss, at the price of an fsync per commit. Ignored with a
                shared ``writer``: its connection's setting applies.
            writer: commit through this writer (``FastSqliteSaver.writer``) instead of a
                connection of the store's own; the store does not close it.
            journal: keep record writes the database refuses (locked, full, read-only) in
                ``<path>.journal.jsonl`` and replay them once it takes writes again; a
                journal left by an earlier process is replayed by the first write.

        Raises:
            StoreError: another process holds the lock, or the database cannot be opened or
                migrated.
        """
        db = Path(path)
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of {db}: {exc}") from exc
        lock_fd = setup.lock_database(db) if lock else None
        own: sqlite3.Connection | None = None
        reader: sqlite3.Connection | None = None
        try:
            if writer is None:
                own = setup.connect(db, busy_timeout_ms)
                setup.prepare(own, db, synchronous)
                # From here the writer never sleeps inside SQLite: the group-commit writer
                # does its own waiting for the lock, and only off the event loop.
                own.execute(sql.PRAGMA_NO_BUSY_TIMEOUT)
                writer = GroupCommitWriter(
                    own,
                    mode="thread" if synchronous == "FULL" else "loop",
                    busy_timeout=busy_timeout_ms / 1000,
                    wal_checkpoint=partial(setup.connect, db, 0),
                )
            else:
                # The shared connection has no busy timeout (see above): migrate on one that
                # waits, then switch foreign keys on for our jobs.
                with contextlib.closing(setup.connect(db, busy_timeout_ms)) as migrating:
                    setup.prepare(migrating, db, None)
                writer.run_outside_transaction(setup.enable_foreign_keys)
            reader = setup.connect(db, busy_timeout_ms)
            reader.row_factory = sqlite3.Row
            # query_only: a bug that writes through the reader fails instead of racing the writer.
            reader.execute(sql.PRAGMA_QUERY_ONLY)
            kept = WriteJournal(journal_path(db)) if journal else None
        except BaseException as exc:
            if own is not None and writer is not None:
                writer.close()
            for conn in (reader, own):
                if conn is not None:
                    conn.close()
            if lock_fd is not None:
                setup.unlock_database(lock_fd)
            if isinstance(exc, sqlite3.Error | WriterClosedError | OSError):
                raise StoreError(f"cannot open the run store {db}: {exc}") from exc
            raise
        return cls(
            path=db,
            writer=writer,
            reader=reader,
            own_connection=own,
            lock_fd=lock_fd,
            journal=kept,
        )

    @classmethod
    @asynccontextmanager
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        busy_timeout_ms: int = 5000,
        lock: bool = True,
        synchronous: Literal["NORMAL", "FULL"] = "NORMAL",
        writer: GroupCommitWriter | None = None,
        journal: bool = True,
    ) -> AsyncIterator[SqliteRunStore]:
        """Open the store for the ``async with`` block; see :meth:`connect` for the arguments."""
        store = await cls.connect(
            path,
            busy_timeout_ms=busy_timeout_ms,
            lock=lock,
            synchronous=synchronous,
            writer=writer,
            journal=journal,
        )
        try:
            yield store
        finally:
            await store.close()

    async def close(self) -> None:
        """Commit every queued write, close the connections and release the lock."""
        if self._closed:
            return
        self._closed = True  # From here new writes are refused; queued ones still commit.
        try:
            with contextlib.suppress(WriterClosedError):
                await self._writer.wait_idle()
            if self._journal is not None:
                self._journal.close()
            if self._own_connection is not None:
                self._writer.close()
                self._own_connection.close()
            self._reader.close()
        except sqlite3.Error as exc:
            raise StoreError(f"closing the run store failed: {exc}") from exc
        finally:
            if self._lock_fd is not None:
                setup.unlock_database(self._lock_fd)
                self._lock_fd = None

    # -- workflows -------------------------------------------------------------------------

    async def put_workflow(
        self, workflow_id: str, definition: dict[str, Any], content_hash: str
    ) -> StoredWorkflow:
        # Most puts re-save an unchanged definition (every submit of a document does): look
        # at the latest stored version first (known here, or read), and write only when it
        # differs. Versions are never changed once stored, so a matching latest is the
        # answer the write would give. The definition is not read back: with the same hash
        # it is the one given.
        head = self._heads.get(workflow_id)
        if head is None:
            latest = self._read(sql.SELECT_WORKFLOW_LATEST_HEAD, (workflow_id,))
            if latest:
                row = latest[0]
                head = (row["content_hash"], int(row["version"]), dt_required(row["created_at"]))
                self._heads[workflow_id] = head
        if head is not None and head[0] == content_hash:
            return StoredWorkflow(
                workflow_id=workflow_id,
                version=head[1],
                definition=definition,
                content_hash=content_hash,
                created_at=head[2],
            )
        body = partial(
            ops.put_workflow,
            workflow_id=workflow_id,
            definition=json_dumps(definition),
            content_hash=content_hash,
        )
        stored = await self._write(body)
        self._heads[workflow_id] = (stored.content_hash, stored.version, stored.created_at)
        return stored

    async def get_workflow(self, workflow_id: str, version: int | None = None) -> StoredWorkflow:
        if version is None:
            rows = self._read(sql.SELECT_WORKFLOW_LATEST, (workflow_id,))
        else:
            rows = self._read(sql.SELECT_WORKFLOW_VERSION, (workflow_id, version))
        if not rows:
            which = "" if version is None else f" version {version}"
            raise WorkflowNotFound(f"no workflow {workflow_id!r}{which}")
        return StoredWorkflow.from_row(rows[0])

    async def list_workflows(self) -> list[StoredWorkflow]:
        return [StoredWorkflow.from_row(r) for r in self._read(sql.LIST_WORKFLOWS, ())]

    async def workflow_versions(self, workflow_id: str) -> list[int]:
        rows = self._read(sql.SELECT_WORKFLOW_VERSIONS, (workflow_id,))
        return [int(r["version"]) for r in rows]

    # -- runs ------------------------------------------------------------------------------

    async def create_run(
        self, run: RunRecord, event: Event, *, started: Event | None = None
    ) -> tuple[RunRecord, bool]:
        wanted = TaskStatus.PENDING if started is None else TaskStatus.RUNNING
        if run.status is not wanted:
            raise ValueError(f"a new run must be {wanted.value}, not {run.status.value}")
        events = [event] if started is None else [event, started]
        ops.check_run_id(run.run_id, events)
        body = partial(
            ops.create_run, row=run.to_row(), event_rows=[event_to_row(e) for e in events]
        )
        stored, created = await self._write(body, run.run_id)
        self._threads[stored.run_id] = stored.thread_id
        return stored, created

    async def run_status(self, run_id: str) -> TaskStatus:
        rows = self._read(sql.SELECT_RUN_STATUS, (run_id,))
        if not rows:
            raise RunNotFound(f"no run {run_id!r}")
        return TaskStatus(rows[0]["status"])

    async def get_run(self, run_id: str) -> RunRecord:
        rows = self._read(sql.SELECT_RUN, (run_id,))
        if not rows:
            raise RunNotFound(f"no run {run_id!r}")
        return RunRecord.from_row(rows[0])

    async def list_runs(
        self,
        *,
        status: Collection[TaskStatus] | None = None,
        workflow_id: str | None = None,
        thread_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[RunRecord]:
        if limit < 0 or offset < 0:
            raise ValueError("limit and offset must be >= 0")
        statuses = None if status is None else json_dumps([TaskStatus(s).value for s in status])
        params = dict(statuses=statuses, workflow_id=workflow_id, limit=limit, offset=offset)
        if thread_id is not None:
            rows = self._read(sql.LIST_THREAD_RUNS, {**params, "thread_id": thread_id})
        else:
            rows = self._read(sql.LIST_RUNS, params)
        return [RunRecord.from_row(r) for r in rows]

    async def count_runs(self) -> dict[TaskStatus, int]:
        rows = self._read(sql.COUNT_RUNS, ())
        return {TaskStatus(r["status"]): int(r["n"]) for r in rows}

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
        ops.check_run_id(run_id, [event, *followed_by])
        new = TaskStatus(new)  # a plain "running" works too
        allowed = None if expected is None else frozenset(TaskStatus(s) for s in expected)
        body = partial(
            ops.transition,
            run_id=run_id,
            new=new,
            allowed=allowed,
            fields=fields,
            event_rows=[event_to_row(e) for e in (event, *followed_by)],
        )
        # The job is queued before this coroutine first suspends: a caller that awaits it
        # right after queuing other writes of the run gets them committed first, in order.
        record = await self._write(body, run_id)
        if record.status.is_terminal:
            self._threads.pop(run_id, None)
        else:
            self._threads[run_id] = record.thread_id
        return record

    async def update_run(self, run_id: str, **fields: Any) -> None:
        await self._write(partial(ops.update_run, run_id=run_id, fields=fields), run_id)

    async def delete_run(self, run_id: str) -> None:
        await self._write(partial(ops.delete_run, run_id=run_id), run_id)
        self._threads.pop(run_id, None)

    # -- threads (ThreadStore) -------------------------------------------------------------

    async def create_thread(self, record: ThreadRecord) -> tuple[ThreadRecord, bool]:
        # Keyed by the thread id: the writer groups it with that thread's checkpoints.
        body = partial(ops.create_thread, row=record.to_row())
        return await self._write(body, record.thread_id)

    async def get_thread(self, thread_id: str) -> ThreadRecord | None:
        rows = self._read(sql.SELECT_THREAD, (thread_id,))
        return ThreadRecord.from_row(rows[0]) if rows else None

    async def update_thread(self, thread_id: str, **fields: Any) -> ThreadRecord | None:
        if "input_keys" in fields:
            fields["input_keys"] = tuple(fields["input_keys"])
        body = partial(ops.update_thread, thread_id=thread_id, fields=fields)
        return await self._write(body, thread_id)

    async def delete_thread(self, thread_id: str) -> bool:
        return await self._write(partial(ops.delete_thread, thread_id=thread_id), thread_id)

    async def list_threads(self, ids: Collection[str] | None = None) -> list[ThreadRecord]:
        params = {"ids": None if ids is None else json_dumps(list(ids))}
        return [ThreadRecord.from_row(r) for r in self._read(sql.LIST_THREADS, params)]

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
        if events or steps or logs:
            await self.record_nowait(run_id, events=events, steps=steps, logs=logs, urgent=True)

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
        """Queue what :meth:`record` writes, now; the future resolves once it committed.

        Writes queued one after another commit in that order (and with a shared writer, no
        later than a checkpoint queued after them). With nothing to write it is a barrier:
        the future resolves once everything queued before it committed. Must be called on
        the event loop.

        Args:
            run_id: The run.
            events: Its events.
            steps: Its step records.
            logs: Its log lines.
            lazy: Ask for no commit of its own: join the next one (a node's step record
                joins its superstep's checkpoint), or commit after a short delay.
            on_done: Called with ``None`` or the error as soon as the write committed or
                failed, with the future already resolved, before anything that waits for
                the same commit resumes (e.g. a run waiting for its checkpoint).
            urgent: The caller waits for the commit next: when nothing of another run is
                queued, commit at once, on the loop (the future is then done on return),
                as the writer does for a lone run's checkpoint; else join the next batch.

        Raises:
            ValueError: a record belongs to another run (at once).
            StoreError: the store is closed (at once); the database failed (the future).
        """
        ops.check_run_id(run_id, [*events, *steps, *logs])
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Rows are built here, in the caller's task: the transaction only runs SQL.
        rows = record_rows(run_id, events, steps, logs)
        self.queue_records(
            run_id, rows, lazy=lazy, urgent=urgent, on_done=partial(setup.resolve, done, on_done)
        )
        return done

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
        """:meth:`record_nowait` for rows already built, reporting to ``on_done`` only.

        ``rows`` (:func:`~checkpoints.store.record_rows`) must all be of run ``run_id``.
        ``followed`` (with ``lazy``): a commit of the checkpointer is known to follow (the
        writes of the task that recorded them), so no timer backs the wait for it.
        ``on_done(error)`` is called once the write committed (``None``) or failed, before
        whatever waits for the same commit resumes; with nothing to write and ``lazy``, at
        once. Must be called on the event loop.

        Raises:
            StoreError: the store is closed (at once).
        """
        when: When = ("next" if followed else "later") if lazy else "now" if urgent else "soon"
        if rows:
            # A write the database refuses as a whole goes to the journal; its on_done is
            # called once the journal is replayed (its events are published then, in order).
            write = setup.RecordWrite(run_id, rows, on_done, self._journal)
            self._stats.record_calls += 1
            self._submit(write, run_id, write.done, when)
        elif lazy:
            on_done(None)
        else:
            self._submit(None, run_id, partial(setup.report, on_done), when)

    def health(self) -> StoreHealth:
        """Whether the last write was refused, and how many rows wait in the journal."""
        fault = self._writer.fault
        return StoreHealth(
            writable=fault is None,
            error=None if fault is None else f"{type(fault).__name__}: {fault}",
            journaled=0 if self._journal is None else self._journal.journal.records,
        )

    async def probe(self) -> None:
        """Check that the database takes writes (replaying the journal first, if need be).

        Writes 64 KiB in a transaction and takes it back, so that a database with no room
        left fails the check as a real write would.

        Raises:
            StoreError: the database refuses writes (its cause tells why).
        """
        await self._write(ops.write_probe)

    async def events_after(self, run_id: str, after: int = 0, limit: int = 1000) -> list[Event]:
        rows = self._read(sql.SELECT_EVENTS_AFTER, (run_id, after, limit))
        # A NULL data is a step whose row holds its event.
        return [step_event_from_row(r) if r["data"] is None else event_from_row(r) for r in rows]

    async def last_event_id(self, run_id: str) -> int:
        return int(self._read(sql.SELECT_LAST_EVENT_ID, (run_id,))[0]["id"])

    async def last_step_seq(self, run_id: str) -> int:
        return int(self._read(sql.SELECT_LAST_STEP_SEQ, (run_id,))[0]["seq"])

    async def steps(self, run_id: str) -> list[TaskStepResult]:
        return [step_from_row(r) for r in self._read(sql.SELECT_STEPS, (run_id,))]

    async def step_keys(self, run_id: str) -> set[tuple[str, int]]:
        rows = self._read(sql.SELECT_STEP_KEYS, (run_id,))
        return {(str(r["task_id"]), int(r["attempt"])) for r in rows}

    async def logs(
        self, run_id: str, *, level: str | None = None, limit: int = 100, after: int = 0
    ) -> list[LogRecord]:
        minimum = 0 if level is None else log_level_no(level)
        rows = self._read(sql.SELECT_LOGS, (run_id, after, minimum, limit))
        return [LogRecord.from_row(r) for r in rows]

    # -- plumbing --------------------------------------------------------------------------

    def _read(self, statement: LiteralString, params: Sequence[Any] | Row) -> list[Row]:
        if self._closed:
            raise StoreError("the run store is closed")
        try:
            # fetchall steps the statement to the end, which ends its read transaction; a
            # half-read cursor would pin an old WAL snapshot.
            rows = self._reader.execute(statement, params).fetchall()
        except sqlite3.Error as exc:
            raise StoreError(f"reading the run store failed: {exc}") from exc
        return [dict(r) for r in rows]

    def _submit(
        self, fn: WriteFn | None, run_id: str, on_done: OnDone, when: When = "soon"
    ) -> None:
        if self._closed:
            raise StoreError("the run store is closed")
        self._stats.jobs += fn is not None
        try:
            self._writer.submit_callback(
                fn, on_done, key=self._threads.get(run_id, run_id), when=when
            )
        except WriterClosedError as exc:
            raise StoreError("the run store is closed") from exc

    async def _write(self, body: Callable[[sqlite3.Connection], _T], run_id: str = "") -> _T:
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        # Queued before the first suspension, so writes keep the order of the calls. If the
        # caller is cancelled while it waits, the job stays queued and is still committed.
        # "now": the caller waits for the commit, so when nothing of another run is queued
        # it commits at once, on the loop, and the await below does not suspend (as for a
        # lone run's checkpoint); otherwise it joins the next batch.
        self._submit(ops.job(body, run_id), run_id, partial(setup.settle, done), "now")
        return cast(_T, await done)

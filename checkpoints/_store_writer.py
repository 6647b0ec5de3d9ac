"""Group commit for the SQLite run store: one writer task, one transaction per batch.

Every write of :class:`checkpoints.sqlite.SqliteRunStore` is a *job* on this writer. A job is
either a transaction body (a coroutine function of the connection: ``transition``,
``create_run``...) or the rows of one ``record()`` call. The writer task takes everything
queued (up to ``MAX_BATCH_JOBS``), runs it in one ``BEGIN IMMEDIATE`` transaction, each job
(or run of consecutive ``record()`` jobs) inside its own savepoint, commits once and only
then resolves the callers' futures. So a call returns only once its rows are committed, and
concurrent calls share one commit: in WAL mode the commit, not the row, is what costs.
While one batch commits the next piles up in the queue; no timer delays a lone write.

The writer task is the only user of the writer connection, so transactions never interleave
and a caller's cancellation can never cut one in half.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, LiteralString, TypeVar, cast

import aiosqlite

from graph_runtime.errors import RunNotFound, StoreError

__all__ = ["MAX_BATCH_JOBS", "GroupCommitWriter", "Job", "WriterStats"]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

MAX_BATCH_JOBS = 512
"""Most jobs committed by one transaction; bounds how long the write lock is held."""

BEGIN_IMMEDIATE: LiteralString = "BEGIN IMMEDIATE"
COMMIT: LiteralString = "COMMIT"
ROLLBACK: LiteralString = "ROLLBACK"
SAVEPOINT: LiteralString = "SAVEPOINT job"
RELEASE: LiteralString = "RELEASE job"
ROLLBACK_TO: LiteralString = "ROLLBACK TO job"

Body = Callable[[aiosqlite.Connection], Awaitable[Any]]


@dataclass(slots=True)
class WriterStats:
    """Counters of the group-committing writer (for tests, benchmarks and metrics)."""

    jobs: int = 0
    """Write calls queued (record, transition, create_run...)."""
    record_calls: int = 0
    """``record()`` calls queued."""
    transactions: int = 0
    """Write transactions committed; ``jobs / transactions`` is the batching factor."""


@dataclass(slots=True)
class Job:
    """One queued write: a transaction ``body``, or the rows of one ``record()`` call."""

    future: asyncio.Future[Any]
    body: Body | None = None
    run_id: str = ""
    events: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    logs: list[dict[str, Any]] = field(default_factory=list)
    result: Any = None
    error: BaseException | None = None


RecordInserter = Callable[[aiosqlite.Connection, list[Job]], Awaitable[None]]
"""Writes the rows of several ``record()`` jobs (one executemany per table)."""


class GroupCommitWriter:
    """Owns the writer connection; runs queued jobs in shared transactions."""

    def __init__(
        self, conn: aiosqlite.Connection, *, insert_records: RecordInserter, name: str
    ) -> None:
        self.stats = WriterStats()
        self._conn = conn
        self._insert_records = insert_records
        self._queue: asyncio.Queue[Job | None] = asyncio.Queue()
        self._closing = False
        # Created here, so on the loop that opened the store; close() awaits it.
        self._task = asyncio.create_task(self._loop(), name=name)

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called or the writer task ended."""
        return self._closing or self._task.done()

    async def run(self, body: Callable[[aiosqlite.Connection], Awaitable[_T]]) -> _T:
        """Run ``body`` in the next batch's transaction; its result once committed."""
        job = Job(future=asyncio.get_running_loop().create_future(), body=body)
        return cast(_T, await self._submit(job))

    async def record(self, job: Job) -> None:
        """Commit the rows of one ``record()`` call (a job without a body)."""
        await self._submit(job)

    async def close(self) -> None:
        """Commit everything queued so far, then stop the writer task."""
        if not self._closing:
            self._closing = True
            self._queue.put_nowait(None)
        await self._task

    async def _submit(self, job: Job) -> Any:
        if self.closed:
            raise StoreError("the run store is closed")
        self.stats.jobs += 1
        self.stats.record_calls += job.body is None
        self._queue.put_nowait(job)
        # If the caller is cancelled while it waits, the job stays queued and is still
        # committed (a queued step is never dropped); _settle skips the cancelled future.
        return await job.future

    async def _loop(self) -> None:
        queue = self._queue
        batch: list[Job] = []
        try:
            while True:
                first = await queue.get()
                if first is None:
                    return
                # One yield lets writers woken in the same loop pass join this batch.
                await asyncio.sleep(0)
                batch, stop = [first], False
                while len(batch) < MAX_BATCH_JOBS and not queue.empty():
                    job = queue.get_nowait()
                    if job is None:
                        stop = True  # close(): finish this batch, then stop
                        break
                    batch.append(job)
                await self._commit(batch)
                batch = []
                if stop:
                    return
        finally:
            # Jobs are left only if this task failed or was cancelled: fail them rather than
            # leave their callers waiting forever.
            while not queue.empty():
                job = queue.get_nowait()
                if job is not None:
                    batch.append(job)
            for job in batch:
                job.error = StoreError("the run store writer stopped")
                _settle(job)

    async def _commit(self, batch: list[Job]) -> None:
        conn = self._conn
        alone = len(batch) == 1
        try:
            # IMMEDIATE takes the write lock up front: the LangGraph checkpointer writes the
            # same file, and a deferred transaction that reads then writes would get
            # SQLITE_BUSY at once (no busy_timeout retry) if it committed in between.
            await conn.execute(BEGIN_IMMEDIATE)
            if alone:
                # Alone in its transaction a job needs no savepoint (two thread hops fewer):
                # its failure rolls back everything, which is only its own rows.
                await self._run(batch[0])
            else:
                for group in _groups(batch):
                    await self._apply(group)
            await conn.execute(COMMIT)
        except Exception as exc:
            # Nothing of the batch is committed, so every job fails, with the cause attached.
            if isinstance(exc, sqlite3.Error):
                logger.error("run store write failed: %s", exc, extra={"action": "store.commit"})
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    await conn.execute(ROLLBACK)
            for job in batch:
                job.error = _job_error(job, exc) if alone else _store_error(exc)
        else:
            self.stats.transactions += 1
        for job in batch:
            _settle(job)

    async def _run(self, job: Job) -> None:
        if job.body is not None:
            job.result = await job.body(self._conn)
        else:
            await self._insert_records(self._conn, [job])

    async def _apply(self, group: list[Job]) -> None:
        conn = self._conn
        # A savepoint per group: a failing job rolls back only its own rows.
        await conn.execute(SAVEPOINT)
        try:
            if len(group) == 1:
                await self._run(group[0])
            else:
                await self._insert_records(conn, group)
        except Exception as exc:
            if not conn.in_transaction:
                raise  # SQLite already rolled the whole transaction back (I/O, busy): fail all
            await conn.execute(ROLLBACK_TO)
            await conn.execute(RELEASE)
            if len(group) > 1:
                # One bad record() must not fail the calls merged with it: retry each alone.
                for job in group:
                    await self._apply([job])
            else:
                group[0].error = _job_error(group[0], exc)
            return
        await conn.execute(RELEASE)


def _groups(batch: list[Job]) -> Iterator[list[Job]]:
    """Consecutive ``record()`` jobs merge into one group; every other job is alone.

    Only consecutive ones merge, so jobs still apply in queue order.
    """
    group: list[Job] = []
    for job in batch:
        if job.body is None:
            group.append(job)
            continue
        if group:
            yield group
            group = []
        yield [job]
    if group:
        yield group


def _settle(job: Job) -> None:
    if job.future.done():  # its caller was cancelled; the write itself went ahead
        return
    if job.error is not None:
        job.future.set_exception(job.error)
    else:
        job.future.set_result(job.result)


def _store_error(exc: BaseException) -> StoreError:
    error = StoreError(f"writing to the run store failed: {exc}")
    error.__cause__ = exc
    return error


def _job_error(job: Job, exc: Exception) -> BaseException:
    if not isinstance(exc, sqlite3.Error):
        return exc  # a domain error (InvalidTransition, RunNotFound...) or a caller's bug
    if isinstance(exc, sqlite3.IntegrityError) and "FOREIGN KEY" in str(exc) and job.run_id:
        error = RunNotFound(f"no run {job.run_id!r}")
        error.__cause__ = exc
        return error
    return _store_error(exc)

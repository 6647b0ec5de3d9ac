"""LangGraph's ``AsyncSqliteSaver`` and the run store on one SQLite connection.

``AsyncSqliteSaver`` drives an aiosqlite connection: a ``sqlite3`` connection used from a
worker thread, always under the saver's ``asyncio.Lock``. The run store, if it opened a
connection of its own on the same file, would pay a commit per step record, and each
connection would find its page cache stale after every write of the other. Instead the
store's :class:`~checkpoints._sqlite_writer.GroupCommitWriter` uses the saver's
``sqlite3`` connection directly from the event loop, while the saver's lock is free (the
connection is then idle); and each commit of the saver runs what the writer has queued
(a node's step record, queued before LangGraph saves the task's writes) in the same
transaction, on the saver's worker thread: the record is durable with the task's writes,
as with ``FastSqliteSaver``'s shared writer, and costs the event loop no statement.
Nothing here changes what the saver stores or how.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import aiosqlite
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from checkpoints._sqlite_writer import GroupCommitWriter, run_taken

__all__ = ["SaverGate", "SharedConnection", "open_async_sqlite_saver", "writer_for"]

BUSY_TIMEOUT_MS = 5000
"""The saver connection's busy timeout (its worker thread may wait; the loop never does)."""


class SharedConnection(aiosqlite.Connection):
    """An aiosqlite connection whose commits take the run store's queued writes along.

    The saver commits under its lock, after its own statements: what the store's writer
    has queued by then (a node's step record, queued before LangGraph saves the task's
    writes) runs in the same transaction, on the worker thread, and is durable with it.
    The writer hears of the outcome before the saver's caller resumes.
    """

    writer: GroupCommitWriter | None = None

    async def commit(self) -> None:
        writer = self.writer
        taken = writer.take_queued() if writer is not None else []
        if not taken:
            await super().commit()
            return
        try:
            # As aiosqlite's own commit does: one call on its worker thread.
            await self._execute(partial(_run_and_commit, self._conn, taken))  # type: ignore[no-untyped-call]
        except BaseException as exc:
            assert writer is not None
            writer.finish_taken(taken, exc)
            raise
        assert writer is not None
        writer.finish_taken(taken, None)


def _run_and_commit(conn: sqlite3.Connection, taken: list[Any]) -> None:
    run_taken(conn, taken)
    conn.commit()


class SaverGate:
    """The :class:`~checkpoints._sqlite_writer.ConnectionGate` of an ``AsyncSqliteSaver``."""

    def __init__(self, saver: AsyncSqliteSaver, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self._lock = saver.lock
        self._restore = f"PRAGMA busy_timeout={int(busy_timeout_ms)}"

    def in_use(self) -> bool:
        # Every use the saver makes of its connection is under this lock.
        return self._lock.locked()

    def hold(self) -> AbstractAsyncContextManager[Any]:
        return self._lock

    def enter(self, conn: sqlite3.Connection) -> None:
        # The writer runs on the event loop: it must never sleep in SQLite.
        conn.execute("PRAGMA busy_timeout=0")

    def leave(self, conn: sqlite3.Connection) -> None:
        conn.execute(self._restore)


@asynccontextmanager
async def open_async_sqlite_saver(
    path: str | Path,
) -> AsyncIterator[tuple[AsyncSqliteSaver, sqlite3.Connection]]:
    """Open an ``AsyncSqliteSaver`` on ``path`` (WAL, synchronous NORMAL, set up).

    Yields the saver and its ``sqlite3`` connection, which may be used from the event loop
    while the saver's lock is free (:class:`SaverGate`); set ``saver.conn.writer`` to the
    writer that does, so that it hears of the saver's commits.
    """
    opened: list[sqlite3.Connection] = []

    def connector() -> sqlite3.Connection:
        # Opened on aiosqlite's worker thread, used from the loop too: not thread-bound.
        conn = sqlite3.connect(str(path), check_same_thread=False)
        opened.append(conn)
        return conn

    conn = SharedConnection(connector, 64)
    await conn
    try:
        # WAL lets readers run beside the writer; busy_timeout absorbs short lock waits.
        await conn.execute("PRAGMA journal_mode=WAL")
        await conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        await conn.execute("PRAGMA synchronous=NORMAL")
        saver = AsyncSqliteSaver(conn)
        await saver.setup()
        yield saver, opened[0]
    finally:
        conn.writer = None
        await conn.close()


def writer_for(
    saver: AsyncSqliteSaver, raw: sqlite3.Connection, *, busy_timeout: float
) -> GroupCommitWriter:
    """The run store's writer on the saver's connection (see the module docstring)."""
    writer = GroupCommitWriter(raw, mode="loop", busy_timeout=busy_timeout, gate=SaverGate(saver))
    conn = saver.conn
    if isinstance(conn, SharedConnection):
        conn.writer = writer
    return writer

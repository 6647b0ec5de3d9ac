"""LangGraph's ``AsyncSqliteSaver`` and the run store on one SQLite connection.

``AsyncSqliteSaver`` drives an aiosqlite connection: a ``sqlite3`` connection used from a
worker thread, always under the saver's ``asyncio.Lock``. The run store, if it opened a
connection of its own on the same file, would pay a commit per step record, and each
connection would find its page cache stale after every write of the other. Instead the
store's :class:`~checkpoints._sqlite_writer.GroupCommitWriter` uses the saver's
``sqlite3`` connection directly from the event loop, while the saver's lock is free (the
connection is then idle), and a step record queued by a node runs at once in the
connection's open transaction: the saver's next commit (the task's writes) makes it
durable with them, as ``FastSqliteSaver``'s shared writer does. Nothing here changes what
the saver stores or how.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

from checkpoints._sqlite_writer import GroupCommitWriter

__all__ = ["SaverGate", "SharedConnection", "open_async_sqlite_saver", "writer_for"]

BUSY_TIMEOUT_MS = 5000
"""The saver connection's busy timeout (its worker thread may wait; the loop never does)."""


class SharedConnection(aiosqlite.Connection):
    """An aiosqlite connection that tells the run store's writer about its commits.

    Rows the writer ran in the open transaction are durable once a commit returns: the
    writer hears of it (``take_open`` before, ``finish_open`` after) before the saver's
    caller resumes.
    """

    writer: GroupCommitWriter | None = None

    async def commit(self) -> None:
        writer = self.writer
        taken = writer.take_open() if writer is not None else []
        try:
            await super().commit()
        except BaseException as exc:
            if writer is not None:
                writer.finish_open(taken, exc)
            raise
        if writer is not None:
            writer.finish_open(taken, None)


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

"""The runtime's storage: the run store and the LangGraph checkpointer on one SQLite file.

With the default checkpointer (``FastSqliteSaver``) there is ONE writer connection: the run
store submits its jobs to the saver's group-commit writer (:attr:`FastSqliteSaver.writer`).
A superstep's step records are queued by the node before LangGraph queues the task's writes
and the next checkpoint, and the writer commits in queue order, so they land in the same
transaction as that checkpoint (or an earlier one): a checkpoint is never durable without
the step records of the superstep it moves past. No second connection competes for
the write lock, and nothing hops to a thread. With ``"langgraph-sqlite"``
(``AsyncSqliteSaver``) the store's writer uses the saver's own connection from the event
loop while the saver leaves it idle, and a step record joins the open transaction that the
saver's next commit (the task's writes) closes: again one connection, and a checkpoint
never durable without its superstep's records (see :mod:`checkpoints._aiosqlite_shared`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from checkpoints._aiosqlite_shared import open_async_sqlite_saver, writer_for
from checkpoints.factory import CheckpointerKind
from checkpoints.sqlite import SqliteRunStore, lock_database, unlock_database
from checkpoints.sqlite_saver import FastSqliteSaver, Synchronous
from graph_runtime.errors import StoreError

__all__ = ["Storage", "open_runtime_storage"]


@dataclass(frozen=True, slots=True)
class Storage:
    """An open run store and checkpointer on the same database file."""

    store: SqliteRunStore
    """The run store."""
    checkpointer: BaseCheckpointSaver[Any]
    """The LangGraph checkpointer."""

    @property
    def shared_commits(self) -> bool:
        """True when step records commit in the checkpointer's transactions (in order)."""
        return self.store.shares_writer

    @property
    def exclusive(self) -> bool:
        """True: this process alone runs the database's runs (it holds the process lock).

        So every event of every run in it is published on this process's event bus.
        """
        return True


@asynccontextmanager
async def open_runtime_storage(
    path: str | Path,
    *,
    checkpointer: CheckpointerKind = "sqlite",
    busy_timeout: float = 5.0,
    synchronous: Synchronous = "NORMAL",
) -> AsyncIterator[Storage]:
    """Open the run store and the checkpointer on ``path``; close both on exit.

    The process lock (``<path>.lock``) is taken before anything touches the file, and
    released after both are closed. A write-failure journal left by an earlier process
    (``<path>.journal.jsonl``) is replayed before this returns. On exit the store's queued
    writes commit, then the checkpointer's, then the lock goes.

    Args:
        path: the database file (created with its parent folders).
        checkpointer: ``"sqlite"`` (``FastSqliteSaver``, shared writer) or
            ``"langgraph-sqlite"`` (``AsyncSqliteSaver``; the store writes on its own).
        busy_timeout: seconds a write waits for another connection's lock before it is
            refused (E006).
        synchronous: ``PRAGMA synchronous`` of the ``FastSqliteSaver`` writer: ``"NORMAL"``
            survives a killed process, ``"FULL"`` a power loss too.

    Raises:
        StoreError: another process holds the database, it cannot be opened, or it
            refuses writes (read-only, full).
    """
    db = Path(path)
    async with AsyncExitStack() as stack:
        if checkpointer == "sqlite":
            try:
                db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create the folder of {db}: {exc}") from exc
            # Lock first: a second process must fail before it writes anything to the file.
            stack.callback(unlock_database, lock_database(db))
            saver = await stack.enter_async_context(
                FastSqliteSaver.from_path(db, busy_timeout=busy_timeout, synchronous=synchronous)
            )
            # Entered after the saver, so closed before it: the store's queued jobs commit
            # while the saver's writer still runs.
            store = await stack.enter_async_context(
                SqliteRunStore.open(
                    db, lock=False, writer=saver.writer, busy_timeout_ms=_ms(busy_timeout)
                )
            )
            await _replay_journal(store)
            yield Storage(store, saver)
            return
        # AsyncSqliteSaver: the store shares the saver's connection (see
        # checkpoints._aiosqlite_shared), so step records commit with the task's writes.
        try:
            db.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of {db}: {exc}") from exc
        stack.callback(unlock_database, lock_database(db))
        try:
            saver_and_conn = await stack.enter_async_context(open_async_sqlite_saver(db))
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the checkpointer on {db}: {exc}") from exc
        other, raw = saver_and_conn
        writer = writer_for(other, raw, busy_timeout=busy_timeout)
        # Closed after the store (which commits its queued jobs first), before the saver.
        stack.callback(writer.close)
        store = await stack.enter_async_context(
            SqliteRunStore.open(db, lock=False, writer=writer, busy_timeout_ms=_ms(busy_timeout))
        )
        await _replay_journal(store)
        yield Storage(store, other)


def _ms(seconds: float) -> int:
    return max(0, round(seconds * 1000))


async def _replay_journal(store: SqliteRunStore) -> None:
    # One empty write: a database that refuses writes (read-only, full) stops the start-up
    # with a clear message instead of failing the first run; and a journal left by an
    # earlier process goes in before anything reads the store (recovery reads each run's
    # last event id and step keys).
    try:
        await store.probe()
    except StoreError as exc:
        pending = store.health().journaled
        also = f" ({pending} journaled rows wait for it)" if pending else ""
        raise StoreError(f"the database {store.path} refuses writes{also}: {exc.message}") from exc

"""Opening the SQLite run store: the process lock, connections, pragmas, migrations.

Also the store's write counters, :class:`RecordWrite`, and :func:`settle`, which turns a
job's outcome (reported by the group-commit writer) into the result or error of the store
call.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from checkpoints import _sqlite_store_ops as ops
from checkpoints import _sqlite_store_sql as sql
from checkpoints._sqlite_faults import is_storage_fault
from checkpoints.migrate import migrate
from graph_runtime.errors import StoreError

if TYPE_CHECKING:
    from checkpoints._rows import RecordRows
    from checkpoints._sqlite_store_journal import JournalKeeper

__all__ = [
    "RecordWrite",
    "WriterStats",
    "connect",
    "enable_foreign_keys",
    "lock_database",
    "outcome",
    "prepare",
    "report",
    "resolve",
    "settle",
    "unlock_database",
]

logger = logging.getLogger("checkpoints.sqlite")


@dataclass(slots=True)
class WriterStats:
    """Counters of the store's writes (for tests, benchmarks and metrics)."""

    jobs: int = 0
    """Write calls queued (record, transition, create_run...)."""
    record_calls: int = 0
    """``record()``/``record_nowait()`` calls queued."""
    transactions: int = 0
    """Transactions the writer committed; with a shared writer, the checkpointer's too."""


def lock_database(db: Path) -> int:
    """Take the OS-level exclusive lock on ``<db>.lock``; the kernel drops it if we die.

    Returns:
        The lock file's descriptor; :func:`unlock_database` releases it.

    Raises:
        StoreError: another process (or another store of this one) holds the lock.
    """
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


def unlock_database(fd: int) -> None:
    """Release a lock taken by :func:`lock_database`."""
    os.close(fd)  # closing the descriptor releases the flock


def connect(db: Path, busy_timeout_ms: int) -> sqlite3.Connection:
    # isolation_level=None: no implicit BEGIN; every transaction is an explicit BEGIN IMMEDIATE.
    # check_same_thread=False: a thread-mode writer commits on its own thread.
    return sqlite3.connect(
        db, timeout=busy_timeout_ms / 1000, isolation_level=None, check_same_thread=False
    )


def prepare(
    conn: sqlite3.Connection, db: Path, synchronous: Literal["NORMAL", "FULL"] | None
) -> None:
    """WAL, the pragmas and the migrations, on a connection with a busy timeout."""
    if conn.execute(sql.PRAGMA_WAL).fetchone()[0] != "wal":
        logger.warning("SQLite refused WAL mode for %s", db, extra={"action": "open"})
    if synchronous is not None:
        conn.execute(sql.PRAGMA_SYNC_FULL if synchronous == "FULL" else sql.PRAGMA_SYNC_NORMAL)
    conn.execute(sql.PRAGMA_FOREIGN_KEYS)
    migrate(conn)


def enable_foreign_keys(conn: sqlite3.Connection) -> None:
    # Harmless to the checkpointer's tables (none has a foreign key); ours need it for the
    # RunNotFound of a record() and for ON DELETE CASCADE.
    conn.execute(sql.PRAGMA_FOREIGN_KEYS)


def outcome(result: object, error: BaseException | None) -> BaseException | None:
    """The error a store call reports for its job's outcome (None: it committed)."""
    if isinstance(error, sqlite3.Error):
        # An outage (locked, full, read-only) is reported once by whoever handles it.
        level = logging.DEBUG if is_storage_fault(error) else logging.ERROR
        logger.log(level, "run store write failed: %s", error, extra={"action": "store.commit"})
        return ops.store_error(error)
    if error is None and isinstance(result, ops.Failed):
        return result.error
    return error


def settle(done: asyncio.Future[Any], result: object, error: BaseException | None) -> None:
    """Resolve a store call's future from its job's outcome (called by the writer)."""
    resolve(done, None, outcome(result, error), result)


def report(
    on_done: Callable[[BaseException | None], None], result: object, error: BaseException | None
) -> None:
    """Hand a queued record write's outcome to its ``on_done`` (called by the writer)."""
    on_done(outcome(result, error))


def resolve(
    done: asyncio.Future[Any],
    on_done: Callable[[BaseException | None], None] | None,
    error: BaseException | None,
    result: object = None,
) -> None:
    """Resolve a store call's future (unless its awaiter was cancelled), then ``on_done``."""
    if not done.done():  # else its awaiter was cancelled; the write itself went ahead
        if error is not None:
            done.set_exception(error)
        else:
            done.set_result(result)
    if on_done is not None:
        on_done(error)


class RecordWrite:
    """One queued write of record rows: its job and the handler of its outcome, one object.

    ``write(conn)`` inserts the rows (:func:`~checkpoints._sqlite_store_ops.insert_records`)
    without a savepoint: a record write nearly never fails, and a savepoint costs two
    statements in every transaction that holds one (with a shared writer, every
    superstep's). So on failure it does not roll back its own rows: it raises the error its
    caller gets, and the writer rolls the whole batch back and runs each of its operations
    again, each in a transaction of its own; run alone, this one then fails alone. A storage
    fault, or a transaction SQLite already ended, escapes unchanged (the writer fails the
    batch). One row is one statement: the write is ``atomic``.

    ``write.done(result, error)`` is what the writer calls once the transaction ended. A
    write the database refused as a whole goes to ``journal`` (when there is one), and
    ``on_done`` hears of it once the journal is replayed; otherwise ``on_done`` gets the
    store call's outcome (``None`` once committed). A step record is queued on every step
    of every run: one object here instead of a closure and three partials per write.
    """

    __slots__ = ("atomic", "journal", "on_done", "rows", "run_id")

    def __init__(
        self,
        run_id: str,
        rows: RecordRows,
        on_done: Callable[[BaseException | None], None],
        journal: JournalKeeper | None,
    ) -> None:
        self.run_id = run_id
        self.rows = rows
        self.on_done = on_done
        self.journal = journal
        self.atomic = len(rows[0]) + len(rows[1]) + len(rows[2]) == 1

    def __call__(self, conn: sqlite3.Connection) -> None:
        rows = self.rows
        try:
            ops.insert_records(conn, rows[0], rows[1], rows[2])
        except Exception as exc:
            if not conn.in_transaction or is_storage_fault(exc):
                raise
            error = ops.job_error(exc, self.run_id)
            if error is exc:
                raise
            raise error from exc

    def done(self, result: object, error: BaseException | None) -> None:
        if (
            error is not None
            and self.journal is not None
            and is_storage_fault(error)
            and self.journal.keep(self.run_id, *self.rows, resolve=self._replayed)
        ):
            return
        self.on_done(outcome(result, error))

    def _replayed(self) -> None:
        self.on_done(None)

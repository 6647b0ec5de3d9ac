"""Background WAL checkpoints for the SQLite writer.

SQLite's auto-checkpoint would copy the WAL back into the database (and fsync it) inside
whichever commit crosses the threshold, i.e. on the event loop in loop mode. A ``PASSIVE``
checkpoint on another connection, on a thread of its own, does the same work off the loop
and never blocks the writer or readers. SQLite's auto-checkpoint stays the backstop.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

__all__ = ["WalCheckpointer"]

_WAL_CHECKPOINT_SQL = "PRAGMA wal_checkpoint(PASSIVE)"


class WalCheckpointer:
    """Runs at most one passive WAL checkpoint at a time, at most once per ``interval``."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], *, interval: float) -> None:
        self._connect = connect
        self._interval = interval
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._running = False
        self._last = time.monotonic()

    def after_commit(self) -> None:
        """Called after each commit: start a checkpoint if one is due."""
        if self._running:
            return
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        self._running = True
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="lg-sqlite-wal-checkpoint")
        self._executor.submit(self._checkpoint)

    def close(self) -> None:
        """Wait for a running checkpoint and close the connection."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _checkpoint(self) -> None:
        try:
            if self._conn is None:
                self._conn = self._connect()
            self._conn.execute(_WAL_CHECKPOINT_SQL).fetchall()
        except sqlite3.Error:
            pass  # best effort; SQLite's own auto-checkpoint is the backstop
        finally:
            self._running = False

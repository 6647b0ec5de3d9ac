"""The run store's side of the write-failure journal (see :mod:`checkpoints.journal`).

A record write (events, steps, logs) that the database refuses with a storage fault is
appended to the journal instead of failing; its caller's future stays pending. The journal is
replayed by the writer's *prelude*, ahead of the operations of the first transaction that
commits, so rows reach the database in the order they were written; then the parked futures
resolve (in that order, before the transaction's own operations complete) and the events are
published. While the journal holds anything, an empty write is retried with backoff, so the
replay does not wait for traffic.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable
from typing import Any

from checkpoints import _sqlite_store_ops as ops
from checkpoints._sqlite_faults import is_storage_fault
from checkpoints._sqlite_writer import GroupCommitWriter, WriterClosedError
from checkpoints.journal import JournalEntry, WriteJournal

__all__ = ["RETRY_MAX", "RETRY_MIN", "JournalKeeper"]

logger = logging.getLogger(__name__)

RETRY_MIN = 0.05
"""Seconds before the first retry of a journal replay."""
RETRY_MAX = 2.0
"""Longest wait between retries."""

_SAVEPOINT = "SAVEPOINT journal_entry"
_ROLLBACK_TO = "ROLLBACK TO journal_entry"
_RELEASE = "RELEASE journal_entry"

Token = tuple[asyncio.AbstractEventLoop, Callable[[], None]]


def _noop(_conn: sqlite3.Connection) -> None:
    return None


class JournalKeeper:
    """Keeps refused record writes in the journal and replays them through the writer."""

    def __init__(self, journal: WriteJournal, writer: GroupCommitWriter) -> None:
        self.journal = journal
        self._writer = writer
        self._retry: asyncio.TimerHandle | None = None
        self._delay = RETRY_MIN
        self._closed = False
        # Asked before every transaction: an empty journal costs a commit nothing.
        writer.set_prelude(self._prelude, due=self.journal.pending)

    def keep(
        self,
        run_id: str,
        events: list[Any],
        steps: list[Any],
        logs: list[Any],
        resolve: Callable[[], None],
    ) -> bool:
        """Journal a refused write; ``resolve`` is called once its rows are in the database.

        Must be called on the event loop. Returns ``False`` when the journal cannot be
        written either (e.g. the disk is really full): the caller then fails the write.
        """
        entry: JournalEntry = {"run_id": run_id, "events": events, "steps": steps, "logs": logs}
        loop = asyncio.get_running_loop()
        first = len(self.journal) == 0
        try:
            self.journal.append(entry, (loop, resolve))
        except OSError as exc:
            logger.error(
                "run %s: the database refused a write and the journal %s cannot take it: %s",
                run_id,
                self.journal.path,
                exc,
                extra={"action": "store.journal", "run_id": run_id},
            )
            return False
        if first:
            logger.warning(
                "the database refused a write (%s); journaling to %s until it accepts writes",
                self._writer.fault,
                self.journal.path,
                extra={"action": "store.journal", "run_id": run_id},
            )
        self._schedule(loop)
        return True

    def close(self) -> None:
        """Stop retrying and close the journal file (what it holds stays for the next start)."""
        self._closed = True
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        self._writer.set_prelude(None)
        self.journal.close()

    # -- replay ------------------------------------------------------------------------------

    def _prelude(self, conn: sqlite3.Connection) -> Callable[[], None] | None:
        # On the thread that commits, inside its transaction, before its operations.
        entries = self.journal.snapshot()
        if not entries:
            return None
        rows = 0
        for entry, _token in entries:
            conn.execute(_SAVEPOINT)
            try:
                ops.insert_records(
                    conn,
                    events=entry.get("events", []),
                    # A step journaled before 0005 has no event_id: its event row has it.
                    steps=[{"event_id": None, **r} for r in entry.get("steps", [])],
                    logs=entry.get("logs", []),
                )
            except (sqlite3.Error, KeyError) as exc:  # KeyError: a row short of a column
                if is_storage_fault(exc) or not conn.in_transaction:
                    raise
                # E.g. the run was deleted meanwhile: nothing to attach the rows to.
                conn.execute(_ROLLBACK_TO)
                logger.error(
                    "journal entry of run %s cannot be replayed (%s); dropped",
                    entry.get("run_id"),
                    exc,
                    extra={"action": "store.journal"},
                )
            else:
                rows += sum(len(entry.get(k, ())) for k in ("events", "steps", "logs"))
            conn.execute(_RELEASE)

        def committed() -> None:
            self.journal.drop(len(entries))
            logger.info(
                "replayed %d journaled rows into the database",
                rows,
                extra={"action": "store.journal"},
            )
            for _entry, token in entries:
                if isinstance(token, tuple):
                    _call_on(*token)

        return committed

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._retry is None and not self._closed:
            self._retry = loop.call_later(self._delay, self._retry_now, loop)

    def _retry_now(self, loop: asyncio.AbstractEventLoop) -> None:
        self._retry = None
        if self._closed or not len(self.journal):
            self._delay = RETRY_MIN
            return
        try:
            self._writer.submit_callback(_noop, lambda _r, e: self._retried(loop, e))
        except WriterClosedError:
            return

    def _retried(self, loop: asyncio.AbstractEventLoop, error: BaseException | None) -> None:
        if error is None and not len(self.journal):
            self._delay = RETRY_MIN
            return
        self._delay = min(self._delay * 2, RETRY_MAX)
        self._schedule(loop)


def _call_on(loop: asyncio.AbstractEventLoop, fn: Callable[[], None]) -> None:
    # Always through the loop's queue: the writer calls this with its connection lock held,
    # and the callbacks must not run (or write) under it. Scheduled before the committing
    # transaction's own operations complete, so whoever awaits one of those (a run waiting
    # for the database) resumes after the journaled events were published.
    try:
        loop.call_soon_threadsafe(fn)
    except RuntimeError:  # that loop is closed; nobody is waiting
        pass

"""Single-connection group-commit writer used by :class:`checkpoints.sqlite_saver.FastSqliteSaver`.

Every write the saver makes is an *operation*: a function of the writer connection that
runs inside a transaction. Operations are queued, and whoever flushes the queue runs
everything queued so far in ONE ``BEGIN IMMEDIATE … COMMIT``, then completes each
operation. A commit costs far more than the statements in it (a WAL commit is a dozen
system calls, an fsync with ``synchronous=FULL``), so batching is the whole point:

* one run's superstep (the ``aput_writes`` of its tasks, then the ``aput`` of the next
  checkpoint) is submitted within one event-loop iteration and lands in one commit;
* concurrent runs on the same loop share commits;
* an operation submitted with ``when="later"`` (e.g. a step record queued by the node that
  produced it, before LangGraph queues the task's writes) asks for no commit of its own: it
  joins the next one, normally its superstep's checkpoint, or commits alone after a short
  backstop delay if nothing follows.

Who flushes:

* **loop mode** (default): the SQL runs on the event loop itself with the stdlib
  driver; no thread hop at all. ``submit_async`` schedules a flush with
  ``loop.call_soon``, so everything submitted before the loop gets back to its ready
  queue joins the batch. A checkpoint (``when="now"``) of a run that is writing alone
  commits at once, together with its superstep's queued writes: nobody would join the
  batch, and under ``durability="sync"`` the run is waiting. The loop never waits on
  another process: ``BEGIN IMMEDIATE`` is tried without a busy timeout, and if another
  connection holds the write lock the batch is handed to the writer thread, which
  waits for it.
* **thread mode** (used for ``synchronous=FULL``/``EXTRA``): the flush runs on one
  dedicated writer thread, so the fsync of each commit does not stall the event loop.
  While it commits, new operations queue up and go in the next batch.
* **sync callers** (``put`` from ``graph.invoke`` worker threads) enqueue their operation
  and then take the connection lock; if their operation is still queued they flush the
  whole queue themselves (leader/follower group commit).

An operation's caller is told it succeeded only after COMMIT returned, so a checkpoint
whose ``aput`` returned is in the database. If a batch fails, it is rolled back and its
operations are retried one transaction each, so one bad operation fails alone.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol

from checkpoints._sqlite_faults import is_storage_fault
from checkpoints._sqlite_wal import WalCheckpointer

logger = logging.getLogger(__name__)

WriteFn = Callable[[sqlite3.Connection], object]
"""One operation: runs its statements on the writer connection, inside a transaction.

An operation with a true ``atomic`` attribute runs one statement that changes nothing when
it fails (:func:`run_taken` then runs it without a savepoint)."""

OnDone = Callable[[object, BaseException | None], None]
"""``(result, error)`` of an operation, called on its loop's thread as soon as it completed."""

Prelude = Callable[[sqlite3.Connection], Callable[[], None] | None]
"""Runs first in every transaction; returns what to call once that transaction committed."""

WriterMode = Literal["loop", "thread"]
When = Literal["soon", "now", "later", "next"]

LATER_DELAY = 0.002
"""Default seconds a ``when="later"`` operation waits for company before it commits alone."""

_MANY = object()
"""``_last_key`` of a commit that held several threads' operations."""

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_BEGIN_SQL = "BEGIN IMMEDIATE"
_COMMIT_SQL = "COMMIT"
_ROLLBACK_SQL = "ROLLBACK"


class ConnectionGate(Protocol):
    """Another user of the writer's connection that runs it from its own thread.

    ``AsyncSqliteSaver`` drives its aiosqlite connection from a worker thread, always under
    its ``asyncio.Lock``: while that lock is free, the connection is idle and the writer may
    use it from the event loop. See :mod:`checkpoints._aiosqlite_shared`.
    """

    def in_use(self) -> bool:
        """Whether the other user may be running the connection right now."""
        ...

    def hold(self) -> AbstractAsyncContextManager[Any]:
        """Wait until the other user is done with the connection, and keep it out."""
        ...

    def enter(self, conn: sqlite3.Connection) -> None:
        """Called before the writer runs statements (e.g. to switch the busy timeout off)."""
        ...

    def leave(self, conn: sqlite3.Connection) -> None:
        """Called once the writer is done with the connection for now."""
        ...


class WriterClosedError(RuntimeError):
    """Raised when an operation is submitted after the writer was closed."""


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return (code & 0xFF) in (_SQLITE_BUSY, _SQLITE_LOCKED)
    return "locked" in str(exc) or "busy" in str(exc)


class _Op:
    """A queued operation and, once run, its outcome."""

    __slots__ = ("done", "error", "fn", "future", "key", "loop", "on_done", "result")

    def __init__(
        self,
        fn: WriteFn | None,
        key: str | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        future: asyncio.Future[object] | None = None,
        on_done: OnDone | None = None,
    ) -> None:
        self.fn = fn
        self.key = key
        self.loop = loop
        self.future = future
        self.on_done = on_done
        self.done = False
        self.result: object = None
        self.error: BaseException | None = None


def _resolve(ops: list[_Op]) -> None:
    """Complete the futures of ``ops`` (on their event loop's thread)."""
    for op in ops:
        if op.on_done is not None:
            # Synchronously, in batch order, before any awaiter of the batch resumes.
            try:
                op.on_done(op.result, op.error)
            except Exception:
                logger.exception("an on_done callback of the SQLite writer failed")
        fut = op.future
        if fut is None or fut.done():  # the awaiting task was cancelled
            continue
        if op.error is not None:
            fut.set_exception(op.error)
        else:
            fut.set_result(op.result)


class GroupCommitWriter:
    """Owns the single writer connection and commits queued operations in batches.

    Args:
        conn: The writer connection, opened in autocommit mode (``isolation_level=None``)
            with a zero busy timeout; this object serialises all use of it.
        mode: ``"loop"`` to commit on the event loop, ``"thread"`` to commit on a
            dedicated writer thread.
        busy_timeout: Seconds to wait for another connection's write lock before an
            operation fails with ``database is locked``.
        wal_checkpoint: Opens a separate connection for background WAL checkpoints, or
            ``None`` to leave checkpointing to SQLite's auto-checkpoint.
        wal_checkpoint_interval: Minimum seconds between background WAL checkpoints.
        later_delay: Longest a ``when="later"`` operation waits for a commit to join.
        gate: Another user of ``conn`` on its own thread (loop mode only). The writer
            then uses the connection only while the gate is free, waits for it without
            blocking the loop, and retries a busy database from the loop; and the other
            user's commits take what is queued along (:meth:`take_queued`,
            :func:`run_taken`, :meth:`finish_taken`): a ``"later"`` operation (a step
            record) commits with the next write of the other user (the task's writes).
    """

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        mode: WriterMode,
        busy_timeout: float,
        wal_checkpoint: Callable[[], sqlite3.Connection] | None = None,
        wal_checkpoint_interval: float = 1.0,
        later_delay: float = LATER_DELAY,
        gate: ConnectionGate | None = None,
    ) -> None:
        if gate is not None and mode != "loop":
            raise ValueError("a writer sharing its connection commits on the event loop")
        self._conn = conn
        self._mode: WriterMode = mode
        self._busy_timeout = busy_timeout
        # Guards the connection and draining the queue: the operations of a batch leave
        # the queue and run under the same hold, so batches commit in queue order.
        self._conn_lock = threading.Lock()
        # Guards the scheduling flags below together with appends to the queue, so a
        # flusher that finds the queue empty and stands down cannot miss an operation
        # queued at the same moment.
        self._state_lock = threading.Lock()
        self._queue: deque[_Op] = deque()
        self._scheduled: set[asyncio.AbstractEventLoop] = set()
        # The pending backstop timer for "later" operations, per loop.
        self._later: dict[asyncio.AbstractEventLoop, asyncio.TimerHandle] = {}
        self._later_delay = later_delay
        self._thread_active = False
        self._closed = False
        # The thread (key) of the last commit if it held one thread's operations, else
        # _MANY: tells a lone run (commit right away) from concurrent runs (batch).
        self._last_key: object = None
        # Runs first in every transaction (the run store's journal replay), see set_prelude;
        # skipped (with its savepoint) while _prelude_due says there is nothing to do.
        self._prelude: Prelude | None = None
        self._prelude_due: Callable[[], object] | None = None
        self.fault: BaseException | None = None
        """The storage fault that failed the last transaction; ``None`` once one commits."""
        # Observability (and tests): batches committed and the operations they held.
        self.commits = 0
        self.operations = 0
        self._executor: ThreadPoolExecutor | None = None
        self._gate = gate
        self._gate_held = False  # the writer holds the gate (in _gated_flush)
        self._gate_waiter: asyncio.Task[None] | None = None
        self._busy_since: float | None = None  # gate mode: when the database got busy
        self._wal = (
            None
            if wal_checkpoint is None
            else WalCheckpointer(wal_checkpoint, interval=wal_checkpoint_interval)
        )

    def set_prelude(self, prelude: Prelude | None, due: Callable[[], object] | None = None) -> None:
        """Run ``prelude(conn)`` at the start of every transaction from now on.

        It runs inside a savepoint: a storage fault fails the transaction (and so the
        batch, like any of its operations would), another error drops what the prelude
        wrote and is logged, and the batch goes ahead. What it returns, if not ``None``, is
        called right after the transaction committed, before the batch's operations are
        completed. The run store uses it to replay its write-failure journal ahead of
        everything else, in the same transaction.

        ``due()``, if given, is asked first (on the committing thread): while its result is
        false the prelude and its savepoint are skipped, so a prelude that usually has
        nothing to do costs a transaction no statements.
        """
        with self._conn_lock:
            self._prelude = prelude
            self._prelude_due = due

    def _prelude_now(self) -> Prelude | None:
        prelude, due = self._prelude, self._prelude_due
        if prelude is None or (due is not None and not due()):
            return None
        return prelude

    # --- submitting -------------------------------------------------------------------

    def submit_async(
        self, fn: WriteFn | None, *, key: str | None = None, when: When = "soon"
    ) -> asyncio.Future[object]:
        """Queue ``fn`` and return a future resolved once its transaction committed.

        Must be called from a running event loop. ``fn=None`` is a barrier: it completes
        once everything queued before it committed.

        Args:
            fn: The operation.
            key: What the operation belongs to (the thread ID), for ``when="now"``.
            when: ``"soon"``: commit with whatever else is submitted before the loop
                comes around. ``"now"``: in loop mode, commit right away if everything
                queued belongs to ``key`` (the returned future is then already done and
                awaiting it does not suspend), else like ``"soon"``. ``"later"``: do not
                ask for a commit; join the next one (e.g. of the checkpoint that follows,
                which then still commits at once if everything queued belongs to its
                thread), or commit alone after ``later_delay`` seconds if none comes.
                ``"next"``: as ``"later"``, without the ``later_delay`` backstop: the
                caller knows a commit follows (the writes of the task that queued it).
        """
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[object] = loop.create_future()
        self._enqueue(_Op(fn, key, loop, fut), loop, when)
        return fut

    def submit_callback(
        self, fn: WriteFn | None, on_done: OnDone, *, key: str | None = None, when: When = "soon"
    ) -> None:
        """Queue ``fn`` like :meth:`submit_async`, reporting to ``on_done`` instead of a future.

        ``on_done(result, error)`` runs on the loop's thread as soon as the operation's
        transaction committed (or failed): synchronously, in queue order with the other
        operations of its batch, before any task awaiting one of them resumes. A caller
        can so act on the commit (e.g. publish what it made durable) before a run waiting
        for the same commit moves on.
        """
        loop = asyncio.get_running_loop()
        self._enqueue(_Op(fn, key, loop, None, on_done), loop, when)

    def _enqueue(self, op: _Op, loop: asyncio.AbstractEventLoop, when: When) -> None:
        key = op.key
        with self._state_lock:
            if self._closed:
                raise WriterClosedError("the checkpointer is closed")
            queue = self._queue
            if self._thread_active:
                queue.append(op)  # the writer thread drains the queue before it stops
                return
            # A run's checkpoint is the last thing of its superstep: its tasks' writes
            # are queued already, and under durability="sync" the run waits for it. If
            # this run is the only one writing, no other run would share the commit, so
            # waiting a loop turn for company would only add latency: commit now. It is
            # the only one if the previous commit was its own and nothing of another
            # thread is queued. Otherwise runs are executing concurrently: join the
            # scheduled flush and share its commit. (The bound keeps this O(1).)
            inline = (
                when == "now"
                and self._mode == "loop"
                and self._last_key in (key, None)
                and len(queue) <= 8
                and all(o.key == key for o in queue)
            )
            queue.append(op)
            if when == "later" or when == "next":
                # Queue order is commit order either way; only the moment differs. The
                # timer is a backstop so that nothing waits long for a commit to join.
                # (With a gate, the other user's next commit takes the queue along.)
                if when == "next" or loop in self._scheduled or loop in self._later:
                    return
                self._later[loop] = loop.call_later(self._later_delay, self._flush_later, loop)
                return
            if not inline:
                if loop in self._scheduled:
                    return
                self._scheduled.add(loop)
        if inline:
            self._flush_now(loop)
        else:
            # call_soon, not an immediate flush: LangGraph submits a superstep's
            # aput_writes and the following aput as tasks in the same loop iteration,
            # and concurrent runs do the same; deferring the flush by one turn of the
            # ready queue lets them share a commit.
            loop.call_soon(self._flush_from_loop, loop)

    # --- sharing the connection (gate) ------------------------------------------------

    def take_queued(self) -> list[_Op]:
        """Everything queued, for the gate's user to run and commit in its transaction.

        Called by the other user of the connection, holding the gate, just before it
        commits; it runs them with :func:`run_taken` in the same transaction, then hands
        them back to :meth:`finish_taken` with the commit's outcome. Nothing is taken
        while a prelude is due: the writer's own flush runs it first.
        """
        with self._conn_lock:
            if not self._queue:
                return []
            if self._prelude_now() is not None:
                # The writer's own flush runs the prelude, then the queue: an operation
                # queued "next" counted on this commit and has no backstop.
                loop = _running_loop()
                if loop is not None:
                    with self._state_lock:
                        if loop not in self._scheduled:
                            self._scheduled.add(loop)
                            loop.call_soon(self._flush_from_loop, loop)
                return []
            taken = self._drain()
        with self._state_lock:
            if not self._queue:
                # Their backstop timer has nothing left to commit.
                for timer in self._later.values():
                    timer.cancel()
                self._later.clear()
        return taken

    def finish_taken(self, ops: list[_Op], error: BaseException | None) -> None:
        """Complete operations :meth:`take_queued` handed out, once their commit ended.

        Operations :func:`run_taken` had to take back (one of them failed) go to the
        front of the queue, and a flush of the writer's own sorts them out.
        """
        if not ops:
            return
        loop = _running_loop()
        if error is None:
            again = [op for op in ops if not op.done]
            committed = [op for op in ops if op.done]
            if committed:
                self._committed(None)
                self.commits += 1
                self.operations += len(committed)
                keys = {op.key for op in committed if op.key is not None}
                if keys:
                    self._last_key = keys.pop() if len(keys) == 1 else _MANY
            self._complete(committed, loop)
            if again and loop is not None:
                with self._state_lock:
                    self._queue.extendleft(reversed(again))
                loop.call_soon(self._flush_from_loop, loop)
            return
        self._fail(ops, error)
        for op in ops:
            op.done = True
        self._complete(ops, loop)

    def _wait_for_gate(self, loop: asyncio.AbstractEventLoop) -> None:
        waiter = self._gate_waiter
        if waiter is None or waiter.done():
            self._gate_waiter = loop.create_task(self._gated_flush(loop))

    async def _gated_flush(self, loop: asyncio.AbstractEventLoop) -> None:
        gate = self._gate
        assert gate is not None
        # asyncio.Lock is first come, first served: this flush goes ahead of whatever the
        # other user is asked to do after this point (a run's next checkpoint).
        async with gate.hold():
            self._gate_held = True
            try:
                self._flush_now(loop)
            finally:
                self._gate_held = False

    def _retry_busy(self, loop: asyncio.AbstractEventLoop, batch: list[_Op]) -> list[_Op]:
        """Gate mode, write lock taken by another process: retry from the loop, later.

        Returns the operations to complete now: none while retrying, the batch (failed)
        once the busy timeout is over.
        """
        now = time.monotonic()
        if self._busy_since is None:
            self._busy_since = now
        waited = now - self._busy_since
        if waited >= self._busy_timeout:
            self._busy_since = None
            self._fail(batch, sqlite3.OperationalError("database is locked"))
            return batch
        self._queue.extendleft(reversed(batch))
        loop.call_later(min(0.0005 * 2 ** min(waited * 100, 7), 0.05), self._flush_from_loop, loop)
        return []

    def run_sync(self, fn: WriteFn | None) -> object:
        """Run ``fn`` in a committed transaction from any thread and return its result.

        Whatever else is queued at that moment is committed in the same transaction.
        """
        op = _Op(fn)
        with self._state_lock:
            if self._closed:
                raise WriterClosedError("the checkpointer is closed")
            self._queue.append(op)
        batch: list[_Op] = []
        with self._conn_lock:
            # Another flusher may have taken our operation from the queue and run it
            # while we waited for the lock; it marks operations done under the lock.
            if not op.done:
                batch = self._drain()
                self._execute_locked(batch, wait=True)
        self._complete(batch, _running_loop())
        if op.error is not None:
            raise op.error
        return op.result

    def run_outside_transaction(self, fn: WriteFn) -> object:
        """Run ``fn`` on the writer connection outside any transaction and return its result.

        For connection settings that are no-ops inside a transaction (``PRAGMA
        foreign_keys``) by another component sharing this writer. Blocks until the batch
        being committed, if any, is done; queued operations stay queued.
        """
        with self._state_lock:
            if self._closed:
                raise WriterClosedError("the checkpointer is closed")
        # Every transaction runs start to end under _conn_lock, so holding it means none
        # is open.
        with self._conn_lock:
            return fn(self._conn)

    async def wait_idle(self) -> None:
        """Wait until everything queued so far is committed (read-your-writes)."""
        if self._queue or self._thread_active:
            await self.submit_async(None)

    def sync_wait_idle(self) -> None:
        """Blocking :meth:`wait_idle` for sync callers on an event loop's thread.

        A sync caller's own writes (``run_sync``) are committed before they return, so
        only a thread that also submits async operations can have writes of its own still
        queued: the thread running the event loop (e.g. ``graph.get_state`` called inside
        a coroutine after a fire-and-forget save). Other threads read committed state and
        must not force the loop's pending operations into an early, smaller commit.
        """
        if (self._queue or self._thread_active) and _running_loop() is not None:
            self.run_sync(None)

    # --- flushing ---------------------------------------------------------------------

    def _drain(self) -> list[_Op]:
        # Caller holds _conn_lock. popleft is atomic, appends may race harmlessly: an
        # operation appended after this loop waits for the next flush.
        batch: list[_Op] = []
        queue = self._queue
        while queue:
            batch.append(queue.popleft())
        return batch

    def _flush_later(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._state_lock:
            self._later.pop(loop, None)
            if loop in self._scheduled:
                return  # a flush is due at the next turn anyway
        self._flush_from_loop(loop)

    def _flush_from_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._state_lock:
            self._scheduled.discard(loop)
            if self._thread_active or not self._queue:
                # The writer thread picks the queue up when it finishes; or an inline
                # commit already took everything.
                return
            to_thread = self._mode == "thread"
            if to_thread:
                self._thread_active = True
        if to_thread:
            self._start_thread()
        else:
            self._flush_now(loop)

    def _flush_now(self, loop: asyncio.AbstractEventLoop) -> None:
        gate = self._gate
        if gate is not None:
            if not self._queue:
                return  # the gate's user took it all along into its commit
            if not self._gate_held and gate.in_use():
                self._wait_for_gate(loop)
                return
            gate.enter(self._conn)
        batch: list[_Op] = []
        try:
            with self._conn_lock:
                batch = self._drain()
                if not batch:
                    return
                with self._state_lock:
                    # This batch takes every "later" operation queued on this loop (only
                    # the loop's thread queues them): their backstop timer would only
                    # commit the next superstep's first operation alone.
                    timer = self._later.pop(loop, None)
                if timer is not None:
                    timer.cancel()
                if not self._execute_locked(batch, wait=False):
                    if gate is not None:
                        # The loop must not wait, and no other thread may use the
                        # connection: try again from the loop in a moment.
                        batch = self._retry_busy(loop, batch)
                        return
                    # Another connection holds the write lock. Put the batch back in
                    # front (only flushers, all under _conn_lock, take from the queue,
                    # so nothing overtook it) and let the writer thread wait for the
                    # lock instead of the event loop.
                    self._queue.extendleft(reversed(batch))
                    batch = []
                    with self._state_lock:
                        start = not self._thread_active
                        self._thread_active = True
                    if start:
                        self._start_thread()
                self._busy_since = None
        finally:
            if gate is not None:
                gate.leave(self._conn)
            # Even if a BaseException escapes: every drained operation was marked done
            # with its outcome, and its waiter must hear about it.
            self._complete(batch, loop)

    def _start_thread(self) -> None:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(1, thread_name_prefix="lg-sqlite-writer")
        self._executor.submit(self._thread_main)

    def _thread_main(self) -> None:
        try:
            while True:
                batch: list[_Op] = []
                try:
                    with self._conn_lock:
                        batch = self._drain()
                        if batch:
                            self._execute_locked(batch, wait=True)
                finally:
                    self._complete(batch, None)
                with self._state_lock:
                    if not self._queue:
                        # Stand down under the same lock submitters append under: an
                        # operation queued from now on schedules its own flush.
                        self._thread_active = False
                        return
        except BaseException:
            with self._state_lock:
                self._thread_active = False
            raise

    def _begin(self, *, wait: bool) -> bool:
        delay = 0.0005
        deadline: float | None = None
        while True:
            try:
                self._conn.execute(_BEGIN_SQL)
                return True
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                if not wait:
                    return False
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self._busy_timeout
                if now >= deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def _execute_locked(self, batch: list[_Op], *, wait: bool) -> bool:
        """Run ``batch`` in one transaction; caller holds ``_conn_lock``.

        Returns ``False`` (and touches nothing) only when ``wait`` is false and the
        write lock is taken. Marks every operation done before returning ``True``: sync
        callers check ``done`` under the same lock.
        """
        if not batch:
            return True
        try:
            if not self._begin(wait=wait):
                return False
        except Exception as exc:
            self._fail(batch, exc)
            return True
        conn = self._conn
        committed: Callable[[], None] | None = None
        try:
            prelude = self._prelude_now()
            if prelude is not None:
                committed = self._run_prelude(prelude)
            for op in batch:
                if op.fn is not None:
                    op.result = op.fn(conn)
            conn.execute(_COMMIT_SQL)
        except BaseException as exc:
            self._rollback()
            if not isinstance(exc, Exception):
                self._fail(batch, exc)
                raise
            if len(batch) == 1 or is_storage_fault(exc):
                self._fail(batch, exc)
                return True
            # Isolate the failure: each operation in its own transaction.
            for op in batch:
                self._execute_one(op)
            self._after_commit()
            return True
        self._committed(committed)
        for op in batch:
            op.done = True
        self.commits += 1
        self.operations += len(batch)
        keys = {op.key for op in batch if op.key is not None}
        if keys:
            self._last_key = keys.pop() if len(keys) == 1 else _MANY
        self._after_commit()
        return True

    def _run_prelude(self, prelude: Prelude) -> Callable[[], None] | None:
        conn = self._conn
        conn.execute("SAVEPOINT writer_prelude")
        try:
            committed = prelude(conn)
        except Exception as exc:
            if is_storage_fault(exc) or not conn.in_transaction:
                raise
            conn.execute("ROLLBACK TO writer_prelude")
            conn.execute("RELEASE writer_prelude")
            logger.exception("the SQLite writer's prelude failed; the batch goes ahead")
            return None
        conn.execute("RELEASE writer_prelude")
        return committed

    def _execute_one(self, op: _Op) -> None:
        op.result, op.error = None, None
        committed: Callable[[], None] | None = None
        try:
            self._begin(wait=True)
            try:
                prelude = self._prelude_now()
                if prelude is not None:
                    committed = self._run_prelude(prelude)
                if op.fn is not None:
                    op.result = op.fn(self._conn)
                self._conn.execute(_COMMIT_SQL)
            except BaseException:
                self._rollback()
                raise
        except Exception as exc:
            op.error = exc
            if is_storage_fault(exc):
                self.fault = exc
        else:
            self._committed(committed)
            self.commits += 1
            self.operations += 1
        op.done = True

    def _fail(self, batch: list[_Op], exc: BaseException) -> None:
        if isinstance(exc, Exception) and is_storage_fault(exc):
            self.fault = exc
        for op in batch:
            op.error, op.done = exc, True

    def _committed(self, prelude_done: Callable[[], None] | None) -> None:
        self.fault = None
        if prelude_done is not None:
            try:
                prelude_done()
            except Exception:
                logger.exception("the SQLite writer's prelude callback failed")

    def _rollback(self) -> None:
        if self._conn.in_transaction:
            try:
                self._conn.execute(_ROLLBACK_SQL)
            except sqlite3.Error:  # pragma: no cover - SQLite rolled back already
                pass

    def _complete(self, batch: list[_Op], current: asyncio.AbstractEventLoop | None) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Op]] = {}
        for op in batch:
            if op.loop is not None:
                by_loop.setdefault(op.loop, []).append(op)
        for loop, ops in by_loop.items():
            if loop is current:
                _resolve(ops)
            else:
                try:
                    loop.call_soon_threadsafe(_resolve, ops)
                except RuntimeError:  # that loop is closed; nobody is waiting
                    pass

    def _after_commit(self) -> None:
        if self._wal is not None:
            self._wal.after_commit()

    # --- closing ----------------------------------------------------------------------

    def close(self) -> None:
        """Commit what is queued, stop the threads; the caller closes the connection."""
        with self._state_lock:
            if self._closed:
                return
            self._closed = True
        batch: list[_Op] = []
        with self._conn_lock:
            batch = self._drain()
            self._execute_locked(batch, wait=True)
        self._complete(batch, _running_loop())
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self._wal is not None:
            self._wal.close()


def run_taken(conn: sqlite3.Connection, ops: list[_Op]) -> None:
    """Run what :meth:`GroupCommitWriter.take_queued` handed out, in ``conn``'s transaction.

    Called on the thread about to commit that transaction. The operations run in a
    savepoint: if one fails, the rows of all of them are rolled back, the other user's
    rows stay, and none is marked done (:meth:`GroupCommitWriter.finish_taken` queues them
    again, for the writer to commit each alone, after the other user's rows: the one case
    where a step record lands after the task's writes). A storage fault is the other
    user's too: it propagates.
    """
    if not ops:
        return
    if len(ops) == 1 and getattr(ops[0].fn, "atomic", False):
        # One statement, which fails whole or not at all: no savepoint needed to take it
        # back (two statements less in the other user's transaction).
        op = ops[0]
        try:
            op.result = op.fn(conn)  # type: ignore[misc]
        except Exception as exc:
            if is_storage_fault(exc) or not conn.in_transaction:
                raise
            op.result = None
            return
        op.done = True
        return
    conn.execute("SAVEPOINT graph_runtime_taken")
    try:
        for op in ops:
            if op.fn is not None:
                op.result = op.fn(conn)
    except Exception as exc:
        if is_storage_fault(exc) or not conn.in_transaction:
            raise
        conn.execute("ROLLBACK TO graph_runtime_taken")
        conn.execute("RELEASE graph_runtime_taken")
        for op in ops:
            op.result = None
        return
    conn.execute("RELEASE graph_runtime_taken")
    for op in ops:
        op.done = True


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None

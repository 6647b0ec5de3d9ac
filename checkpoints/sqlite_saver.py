"""A fast, durable SQLite checkpointer for LangGraph: :class:`FastSqliteSaver`."""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import os
import random
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from functools import partial
from pathlib import Path
from typing import Any, Literal, NamedTuple, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    PendingWrite,
    get_checkpoint_id,
    get_checkpoint_metadata,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoints import _sqlite_saver_ops as ops
from checkpoints import _sqlite_saver_sql as sql
from checkpoints._sqlite_writer import GroupCommitWriter, WriteFn, WriterClosedError, WriterMode
from graph_runtime import failpoints

__all__ = ["FastSqliteSaver", "MigrationResult", "Synchronous"]

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

_SYNCHRONOUS_SQL: dict[str, str] = {
    "OFF": "PRAGMA synchronous = OFF",
    "NORMAL": "PRAGMA synchronous = NORMAL",
    "FULL": "PRAGMA synchronous = FULL",
    "EXTRA": "PRAGMA synchronous = EXTRA",
}
_WAL_SQL = "PRAGMA journal_mode = WAL"
_QUERY_ONLY_SQL = "PRAGMA query_only = ON"
# Safety net only: background PASSIVE checkpoints normally keep the WAL short. 10 000
# pages (40 MB) before a commit checkpoints inline.
_WRITER_PRAGMAS = (
    "PRAGMA wal_autocheckpoint = 10000",
    "PRAGMA journal_size_limit = 67108864",
    "PRAGMA cache_size = -16000",
)
_NO_BUSY_TIMEOUT_SQL = "PRAGMA busy_timeout = 0"
_MAX_PAGES = 4294967294  # SQLite's largest max_page_count
_BEGIN_READ_SQL = "BEGIN"
_COMMIT_SQL = "COMMIT"


class MigrationResult(NamedTuple):
    """Rows imported by :meth:`FastSqliteSaver.migrate_from_sqlite_saver`."""

    checkpoints: int
    writes: int


class FastSqliteSaver(BaseCheckpointSaver[str]):
    """Durable SQLite checkpointer, several times cheaper per step than ``AsyncSqliteSaver``.

    Storage (tables prefixed ``lg_`` so the file can hold other tables; foreign tables
    are never touched or dropped, ``PRAGMA user_version`` is left alone; the file is
    switched to WAL, which is persistent and applies to every connection):

    * ``lg_checkpoints``: one row per checkpoint — the checkpoint without its channel
      values, small primitive values (``None``, bools, numbers, strings up to 128
      characters) inline, metadata as JSON.
    * ``lg_blobs``: the other channel values, keyed by ``(thread, namespace, channel,
      version)``. A checkpoint stores only the channels whose version changed
      (``new_versions``), so state that grows in channels a step does not touch does not
      make the step slower; ``channel_values`` is rebuilt from the blobs at the versions
      in ``channel_versions`` (the Postgres saver's ``checkpoint_blobs`` design). A
      channel that changes every step (e.g. an ``operator.add`` list) is still stored
      whole every step, as with every LangGraph saver; LangGraph's ``DeltaChannel``
      (beta) is the fix for that, and works here through the default ancestor walk.
    * ``lg_writes``: pending writes, returned in ``writes_sort_key`` order; special
      writes (ERROR, INTERRUPT, …) use the fixed ``WRITES_IDX_MAP`` indexes and upsert.

    Durability: WAL journal; a checkpoint whose ``aput``/``put`` (and writes whose
    ``aput_writes``/``put_writes``) returned has committed. With
    ``synchronous="NORMAL"`` (default) a commit is written to the WAL file without an
    fsync: it survives a crash or ``kill -9`` of the process (the OS keeps the data),
    but a power loss or OS crash can lose the last commits (the file stays consistent).
    ``synchronous="FULL"`` fsyncs the WAL on every commit and also survives power loss.

    Speed: one writer connection, no thread hop per statement. Writes are queued and
    group-committed, so one run's superstep (its tasks' writes and the next checkpoint)
    and concurrent runs share a transaction; see :mod:`checkpoints._sqlite_writer`. With
    ``NORMAL`` the commit runs on the event loop with the stdlib driver (it never waits
    for another connection's lock there: a busy database is handed to a writer thread);
    with ``FULL``/``EXTRA`` commits run on one writer thread so fsyncs do not stall the
    loop. WAL checkpoints run on a background connection, not inside a commit. Reads use
    per-thread read-only connections; in WAL mode they never block the writer. Reads
    first wait for queued writes, so a read sees every write submitted before it.
    Statements are constants kept prepared by the connection's statement cache.
    Channel versions are shorter than LangGraph's other savers' (see
    :meth:`get_next_version`), because they are most of a checkpoint row.

    Serialisation uses ``JsonPlusSerializer`` with an explicit msgpack allow-list:
    LangGraph's safe types plus ``allowed_msgpack_modules``. Other types stored in state
    are not rebuilt on load (their serialised payload is returned, and LangGraph logs a
    warning); list your own classes, e.g. ``[("myapp.models", "Order")]`` or the class
    itself. ``with_allowlist`` (used by LangGraph in strict mode) extends it.

    Both interfaces work: ``aput``/``aget_tuple``/… from an event loop, and
    ``put``/``get_tuple``/… from any thread (including from inside the loop, unlike
    ``AsyncSqliteSaver``). ``:memory:`` is not supported (readers use their own
    connections); use a file in a temporary directory.

    Migration: :meth:`migrate_from_sqlite_saver` imports the ``checkpoints`` and
    ``writes`` tables of an ``AsyncSqliteSaver``/``SqliteSaver`` database (the same file
    or another one); it is idempotent and leaves the source tables untouched.

    Args:
        path: Database file; parent directories are created.
        synchronous: ``PRAGMA synchronous`` for the writer connection.
        serde: Serializer to use instead of the allow-listed ``JsonPlusSerializer``.
        allowed_msgpack_modules: Extra ``(module, class)`` pairs or classes the default
            serializer may rebuild on load.
        writer: ``"loop"`` commits on the event loop, ``"thread"`` on a writer thread;
            ``"auto"`` picks ``"thread"`` for ``FULL``/``EXTRA``, else ``"loop"``.
        busy_timeout: Seconds to wait when another connection holds the database lock.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "NORMAL",
        serde: SerializerProtocol | None = None,
        allowed_msgpack_modules: Iterable[tuple[str, ...] | type] = (),
        writer: Literal["auto", "loop", "thread"] = "auto",
        busy_timeout: float = 5.0,
    ) -> None:
        if serde is None:
            serde = JsonPlusSerializer(
                allowed_msgpack_modules=tuple(allowed_msgpack_modules) or None
            )
        super().__init__(serde=serde)
        sync_key = synchronous.upper()
        if sync_key not in _SYNCHRONOUS_SQL:
            raise ValueError(f"synchronous must be one of {sorted(_SYNCHRONOUS_SQL)}")
        self.path = ops.file_path(path)
        self.synchronous = cast(Synchronous, sync_key)
        self._busy_timeout = busy_timeout
        mode: WriterMode
        if writer == "auto":
            mode = "thread" if sync_key in ("FULL", "EXTRA") else "loop"
        else:
            mode = writer
        conn = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout
        )
        try:
            # journal_mode needs the lock briefly; the busy timeout above covers it.
            conn.execute(_WAL_SQL).fetchall()
            conn.execute(_SYNCHRONOUS_SQL[sync_key])
            for pragma in _WRITER_PRAGMAS:
                conn.execute(pragma).fetchall()
            ops.create_schema(conn)
            # From here on the writer never sleeps inside SQLite: the group-commit
            # writer does its own waiting, and only off the event loop.
            conn.execute(_NO_BUSY_TIMEOUT_SQL).fetchall()
        except BaseException:
            conn.close()
            raise
        self._writer = GroupCommitWriter(
            conn,
            mode=mode,
            busy_timeout=busy_timeout,
            wal_checkpoint=self._open_checkpoint_connection,
        )
        self._write_conn = conn
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._closed = False
        if failpoints.ENABLED:
            failpoints.on_storage(self._storage_fault)
            failpoints.hit("open")

    def _storage_fault(self, kind: str, on: bool) -> None:
        # Fault injection (tests only): make the writer connection refuse writes.
        def apply(conn: sqlite3.Connection) -> None:
            if kind == "read_only":
                conn.execute(f"PRAGMA query_only = {int(on)}")
                return
            pages = conn.execute("PRAGMA page_count").fetchone()[0] if on else _MAX_PAGES
            conn.execute(f"PRAGMA max_page_count = {int(pages)}").fetchall()

        with contextlib.suppress(WriterClosedError):
            self._writer.run_outside_transaction(apply)

    # --- construction helpers ---------------------------------------------------------

    @classmethod
    @asynccontextmanager
    async def from_path(
        cls,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "NORMAL",
        serde: SerializerProtocol | None = None,
        allowed_msgpack_modules: Iterable[tuple[str, ...] | type] = (),
        writer: Literal["auto", "loop", "thread"] = "auto",
        busy_timeout: float = 5.0,
    ) -> AsyncIterator[FastSqliteSaver]:
        """Open a saver for use from an event loop; commits and closes on exit.

        Args:
            path: Database file; parent directories are created.
            synchronous: ``"NORMAL"`` (process-crash safe) or ``"FULL"`` (power-loss
                safe), see the class docstring.
            serde: Optional serializer replacing the default.
            allowed_msgpack_modules: Extra types the default serializer may rebuild.
            writer: Where commits run, see the class docstring.
            busy_timeout: Seconds to wait when another connection holds the database lock.

        Yields:
            The open saver.
        """
        saver = cls(
            path,
            synchronous=synchronous,
            serde=serde,
            allowed_msgpack_modules=allowed_msgpack_modules,
            writer=writer,
            busy_timeout=busy_timeout,
        )
        try:
            yield saver
        finally:
            await saver.aclose()

    @classmethod
    @contextmanager
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "NORMAL",
        serde: SerializerProtocol | None = None,
        allowed_msgpack_modules: Iterable[tuple[str, ...] | type] = (),
    ) -> Iterator[FastSqliteSaver]:
        """Open a saver for synchronous use (``graph.invoke``); closes on exit.

        Args:
            path: Database file; parent directories are created.
            synchronous: See :meth:`from_path`.
            serde: Optional serializer replacing the default.
            allowed_msgpack_modules: Extra types the default serializer may rebuild.

        Yields:
            The open saver.
        """
        saver = cls(
            path,
            synchronous=synchronous,
            serde=serde,
            allowed_msgpack_modules=allowed_msgpack_modules,
        )
        try:
            yield saver
        finally:
            saver.close()

    def close(self) -> None:
        """Commit queued writes and close every connection. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._writer.close()
        self._write_conn.close()
        with self._readers_lock:
            readers, self._readers = self._readers, []
        for conn in readers:
            conn.close()

    async def aclose(self) -> None:
        """Wait for queued writes to commit, then :meth:`close`."""
        if not self._closed:
            await self._writer.wait_idle()
        self.close()

    @property
    def writer(self) -> GroupCommitWriter:
        """The group-commit writer, for stores that commit in the saver's transactions.

        Another component (the run store) may submit its own operations; they are
        committed in submission order together with the saver's, so what it queues
        before a checkpoint is durable no later than that checkpoint.
        """
        return self._writer

    def _open_checkpoint_connection(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=0)

    def _reader(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            if self._closed:
                raise RuntimeError("the checkpointer is closed")
            conn = sqlite3.connect(
                self.path,
                isolation_level=None,
                check_same_thread=False,
                timeout=self._busy_timeout,
            )
            conn.execute(_QUERY_ONLY_SQL)
            with self._readers_lock:
                self._readers.append(conn)
            self._local.conn = conn
        return conn

    # --- reads ------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Fetch a checkpoint tuple: the one named by ``checkpoint_id``, else the latest.

        Args:
            config: ``configurable`` with ``thread_id``, optional ``checkpoint_ns`` and
                ``checkpoint_id``.

        Returns:
            The checkpoint tuple with pending writes in ``writes_sort_key`` order, or
            ``None``.
        """
        self._writer.sync_wait_idle()
        return self._get_tuple(config)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async :meth:`get_tuple` (runs on the loop: a few indexed lookups).

        Args:
            config: ``configurable`` with ``thread_id``, optional ``checkpoint_ns`` and
                ``checkpoint_id``.

        Returns:
            The checkpoint tuple, or ``None``.
        """
        await self._writer.wait_idle()
        return self._get_tuple(config)

    def _get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        checkpoint_ns = conf.get("checkpoint_ns") or ""
        checkpoint_id = get_checkpoint_id(config)
        conn = self._reader()
        # One read transaction: the row, its blobs and its writes from one snapshot even
        # if a prune or delete commits in between.
        conn.execute(_BEGIN_READ_SQL)
        try:
            if checkpoint_id:
                row = conn.execute(
                    sql.GET_CHECKPOINT_BY_ID_SQL, (thread_id, checkpoint_ns, checkpoint_id)
                ).fetchone()
            else:
                row = conn.execute(
                    sql.GET_LATEST_CHECKPOINT_SQL, (thread_id, checkpoint_ns)
                ).fetchone()
            if row is None:
                return None
            return self._load_tuple(conn, row)
        finally:
            conn.execute(_COMMIT_SQL)

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """List checkpoints, newest first.

        Args:
            config: ``thread_id`` (and optional ``checkpoint_ns``, ``checkpoint_id``) to
                list, or ``None`` for all threads.
            filter: Top-level metadata keys and the values they must equal.
            before: Only checkpoints with an ID below this config's ``checkpoint_id``.
            limit: Maximum number of checkpoints.

        Yields:
            Matching checkpoint tuples.
        """
        self._writer.sync_wait_idle()
        conn = self._reader()
        for row in ops.list_rows(conn, config, filter, before, limit):
            yield self._load_listed(conn, row)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async :meth:`list`.

        Args:
            config: ``thread_id`` (and optional ``checkpoint_ns``, ``checkpoint_id``) to
                list, or ``None`` for all threads.
            filter: Top-level metadata keys and the values they must equal.
            before: Only checkpoints with an ID below this config's ``checkpoint_id``.
            limit: Maximum number of checkpoints.

        Yields:
            Matching checkpoint tuples.
        """
        await self._writer.wait_idle()
        conn = self._reader()
        for row in ops.list_rows(conn, config, filter, before, limit):
            yield self._load_listed(conn, row)

    def _load_listed(self, conn: sqlite3.Connection, row: ops.CheckpointRow) -> CheckpointTuple:
        conn.execute(_BEGIN_READ_SQL)
        try:
            return self._load_tuple(conn, row)
        finally:
            conn.execute(_COMMIT_SQL)

    def _load_tuple(self, conn: sqlite3.Connection, row: ops.CheckpointRow) -> CheckpointTuple:
        thread_id, checkpoint_ns, checkpoint_id, parent_id, type_, payload, blobs, md = row
        loads = self.serde.loads_typed
        checkpoint = cast(Checkpoint, loads((type_, payload)))
        values = checkpoint["channel_values"]
        if blobs != "{}":
            for channel, btype, blob in conn.execute(
                sql.GET_BLOBS_SQL, (thread_id, checkpoint_ns, blobs)
            ):
                values[channel] = loads((btype, blob))
        rows = conn.execute(sql.GET_WRITES_SQL, (thread_id, checkpoint_ns, checkpoint_id))
        pending: builtins.list[PendingWrite] = [
            (task_id, channel, loads((wtype, value)))
            for task_id, channel, wtype, value, _, _ in sorted(
                rows, key=lambda r: writes_sort_key(r[4], r[0], r[5])
            )
        ]
        return CheckpointTuple(
            config={
                "configurable": {
                    "thread_id": thread_id,
                    "checkpoint_ns": checkpoint_ns,
                    "checkpoint_id": checkpoint_id,
                }
            },
            checkpoint=checkpoint,
            metadata=cast(CheckpointMetadata, json.loads(md)),
            parent_config=(
                {
                    "configurable": {
                        "thread_id": thread_id,
                        "checkpoint_ns": checkpoint_ns,
                        "checkpoint_id": parent_id,
                    }
                }
                if parent_id
                else None
            ),
            pending_writes=pending,
        )

    # --- writes -----------------------------------------------------------------------

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint; returns once it is committed.

        Args:
            config: ``thread_id``, ``checkpoint_ns`` and the parent ``checkpoint_id``.
            checkpoint: The checkpoint.
            metadata: Its metadata.
            new_versions: Channels whose value changed since the parent; only their
                values are written.

        Returns:
            The config of the stored checkpoint.
        """
        fn, next_config = self._prepare_put(config, checkpoint, metadata, new_versions)
        self._writer.run_sync(fn)
        failpoints.hit("after_checkpoint")
        return next_config

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async :meth:`put`; returns once the checkpoint is committed.

        Args:
            config: ``thread_id``, ``checkpoint_ns`` and the parent ``checkpoint_id``.
            checkpoint: The checkpoint.
            metadata: Its metadata.
            new_versions: Channels whose value changed since the parent.

        Returns:
            The config of the stored checkpoint.
        """
        fn, next_config = self._prepare_put(config, checkpoint, metadata, new_versions)
        await self._writer.submit_async(
            fn, key=next_config["configurable"]["thread_id"], when="now"
        )
        failpoints.hit("after_checkpoint")
        return next_config

    def _prepare_put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> tuple[WriteFn, RunnableConfig]:
        # Serialise here, in the caller, so the writer's transaction only runs SQL.
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        checkpoint_ns = conf.get("checkpoint_ns") or ""
        blob_rows, row = ops.checkpoint_rows(
            self.serde,
            thread_id,
            checkpoint_ns,
            conf.get("checkpoint_id"),
            checkpoint,
            get_checkpoint_metadata(config, metadata),
            new_versions,
        )
        next_config: RunnableConfig = {
            "configurable": {
                "thread_id": thread_id,
                "checkpoint_ns": checkpoint_ns,
                "checkpoint_id": checkpoint["id"],
            }
        }
        return partial(ops.exec_put, blob_rows, row, sql.UPSERT_CHECKPOINT_SQL), next_config

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's pending writes for the checkpoint in ``config``.

        Args:
            config: Config of the checkpoint the writes belong to.
            writes: ``(channel, value)`` pairs.
            task_id: The task that produced them.
            task_path: The task's path (orders writes of one step).
        """
        self._writer.run_sync(self._prepare_writes(config, writes, task_id, task_path))

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async :meth:`put_writes`; returns once the writes are committed.

        Args:
            config: Config of the checkpoint the writes belong to.
            writes: ``(channel, value)`` pairs.
            task_id: The task that produced them.
            task_path: The task's path (orders writes of one step).
        """
        await self._writer.submit_async(
            self._prepare_writes(config, writes, task_id, task_path),
            key=str(config["configurable"]["thread_id"]),
        )

    def _prepare_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> WriteFn:
        conf = config["configurable"]
        thread_id = str(conf["thread_id"])
        checkpoint_ns = conf.get("checkpoint_ns") or ""
        checkpoint_id = str(conf["checkpoint_id"])
        dumps = self.serde.dumps_typed
        rows = [
            (
                thread_id,
                checkpoint_ns,
                checkpoint_id,
                task_id,
                WRITES_IDX_MAP.get(channel, idx),
                task_path,
                channel,
                *dumps(value),
            )
            for idx, (channel, value) in enumerate(writes)
        ]
        query = (
            sql.UPSERT_WRITE_SQL
            if all(w[0] in WRITES_IDX_MAP for w in writes)
            else sql.INSERT_WRITE_IGNORE_SQL
        )
        return partial(ops.exec_many, query, rows)

    # --- thread maintenance -----------------------------------------------------------

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of a thread (all namespaces).

        Args:
            thread_id: The thread to delete.
        """
        self._writer.run_sync(partial(ops.delete_threads, [str(thread_id)]))

    async def adelete_thread(self, thread_id: str) -> None:
        """Async :meth:`delete_thread`.

        Args:
            thread_id: The thread to delete.
        """
        await self._writer.submit_async(partial(ops.delete_threads, [str(thread_id)]))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy all checkpoints, blobs and writes of a thread to another thread ID.

        Args:
            source_thread_id: Thread to copy.
            target_thread_id: Thread to create (rows with the same keys are replaced).
        """
        self._writer.run_sync(
            partial(ops.copy_thread, str(source_thread_id), str(target_thread_id))
        )

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Async :meth:`copy_thread`.

        Args:
            source_thread_id: Thread to copy.
            target_thread_id: Thread to create (rows with the same keys are replaced).
        """
        await self._writer.submit_async(
            partial(ops.copy_thread, str(source_thread_id), str(target_thread_id))
        )

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads, in one transaction.

        ``"delete"`` removes everything of the threads. ``"keep_latest"`` keeps the
        latest checkpoint of every namespace with its pending writes and the blobs it
        references; the kept checkpoint loses its parent link. It refuses threads that
        use a ``DeltaChannel`` (their latest value is rebuilt from older checkpoints).
        Forking from a deleted checkpoint afterwards is not possible.

        Args:
            thread_ids: Threads to prune.
            strategy: ``"keep_latest"`` or ``"delete"``.

        Raises:
            TypeError: If ``thread_ids`` is a string.
            ValueError: If the strategy is unknown.
        """
        self._writer.run_sync(ops.prune_fn(thread_ids, strategy))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Async :meth:`prune`.

        Args:
            thread_ids: Threads to prune.
            strategy: ``"keep_latest"`` or ``"delete"``.
        """
        await self._writer.submit_async(ops.prune_fn(thread_ids, strategy))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) whose metadata ``run_id`` matches.

        Blobs no remaining checkpoint of the namespace references are deleted too. Do not
        delete a run that is still executing.

        Args:
            run_ids: Run IDs to delete.
        """
        self._writer.run_sync(partial(ops.delete_for_runs, [str(r) for r in run_ids]))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Async :meth:`delete_for_runs`.

        Args:
            run_ids: Run IDs to delete.
        """
        await self._writer.submit_async(partial(ops.delete_for_runs, [str(r) for r in run_ids]))

    # --- migration --------------------------------------------------------------------

    def migrate_from_sqlite_saver(
        self,
        source: str | os.PathLike[str] | None = None,
        *,
        source_serde: SerializerProtocol | None = None,
        batch_size: int = 500,
    ) -> MigrationResult:
        """Import the ``checkpoints``/``writes`` tables of ``(Async)SqliteSaver``.

        Each checkpoint is split into a checkpoint row and blobs; values are decoded with
        ``source_serde`` (default: a plain ``JsonPlusSerializer``, what those savers use)
        and re-encoded with this saver's serializer. Rows already present are kept, so
        running it again is harmless; the source tables are only read.

        Args:
            source: Database holding the tables; ``None`` for this saver's own file.
            source_serde: Serializer the source saver used.
            batch_size: Rows per transaction.

        Returns:
            How many checkpoint and write rows were read from the source.
        """
        src_serde = source_serde or JsonPlusSerializer()
        src = sqlite3.connect(
            Path(source or self.path).resolve().as_uri() + "?mode=ro",
            uri=True,
            timeout=self._busy_timeout,
        )
        try:
            tables = {r[0] for r in src.execute(sql.SOURCE_TABLES_SQL)}
            n_checkpoints = n_writes = 0
            if "checkpoints" in tables:
                batch: builtins.list[tuple[ops.BlobRows, ops.Row]] = []
                for src_row in src.execute(sql.SOURCE_CHECKPOINTS_SQL):
                    batch.append(self._migrated_checkpoint(src_serde, src_row))
                    n_checkpoints += 1
                    if len(batch) >= batch_size:
                        self._writer.run_sync(partial(ops.exec_migrated, batch))
                        batch = []
                if batch:
                    self._writer.run_sync(partial(ops.exec_migrated, batch))
            if "writes" in tables:
                columns = {r[0] for r in src.execute(sql.SOURCE_WRITES_COLUMNS_SQL)}
                query = (
                    sql.SOURCE_WRITES_SQL
                    if "task_path" in columns
                    else sql.SOURCE_WRITES_NO_PATH_SQL
                )
                rows: builtins.list[ops.Row] = []
                for *key, wtype, value in src.execute(query):
                    decoded = src_serde.loads_typed((wtype, value))
                    rows.append((*key, *self.serde.dumps_typed(decoded)))
                    n_writes += 1
                    if len(rows) >= batch_size:
                        self._writer.run_sync(
                            partial(ops.exec_many, sql.INSERT_WRITE_IGNORE_SQL, rows)
                        )
                        rows = []
                if rows:
                    self._writer.run_sync(partial(ops.exec_many, sql.INSERT_WRITE_IGNORE_SQL, rows))
            return MigrationResult(n_checkpoints, n_writes)
        finally:
            src.close()

    async def amigrate_from_sqlite_saver(
        self,
        source: str | os.PathLike[str] | None = None,
        *,
        source_serde: SerializerProtocol | None = None,
        batch_size: int = 500,
    ) -> MigrationResult:
        """:meth:`migrate_from_sqlite_saver` on a worker thread.

        Args:
            source: Database holding the tables; ``None`` for this saver's own file.
            source_serde: Serializer the source saver used.
            batch_size: Rows per transaction.

        Returns:
            How many checkpoint and write rows were read from the source.
        """
        return await asyncio.to_thread(
            self.migrate_from_sqlite_saver,
            source,
            source_serde=source_serde,
            batch_size=batch_size,
        )

    def _migrated_checkpoint(
        self, src_serde: SerializerProtocol, src_row: tuple[Any, ...]
    ) -> tuple[ops.BlobRows, ops.Row]:
        thread_id, checkpoint_ns, checkpoint_id, parent_id, type_, payload, md = src_row
        checkpoint = cast(Checkpoint, src_serde.loads_typed((type_, payload)))
        checkpoint.setdefault("channel_versions", {})
        # The row key is what lookups use; the saver always made them equal anyway.
        checkpoint["id"] = checkpoint_id
        # The source keeps metadata as JSON bytes.
        metadata = cast(CheckpointMetadata, json.loads(md) if md is not None else {})
        # Every value is new to this database: store a blob for each.
        return ops.checkpoint_rows(
            self.serde,
            str(thread_id),
            checkpoint_ns or "",
            parent_id,
            checkpoint,
            metadata,
            checkpoint["channel_versions"],
        )

    # --- versions ---------------------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None) -> str:
        """Next channel version: a zero-padded counter and a random suffix.

        Versions only ever meet other versions of the same channel, compared as strings.
        The counter is 10 digits instead of the 32 of LangGraph's SQLite/Postgres savers:
        versions are stored in every checkpoint (``channel_versions``, ``versions_seen``
        — about 200 of them for a 100-node graph), and their length is most of the
        checkpoint row; a smaller row is a cheaper commit. A version continuing a
        32-digit one (a migrated thread) still sorts after it: its first ten characters
        hold a non-zero digit where the old format has zeros. The random suffix keeps the
        versions of diverging forks apart, since blobs are keyed by version.

        Args:
            current: The channel's current version.
            channel: Unused (deprecated by LangGraph).

        Returns:
            A version that sorts after ``current``.
        """
        if current is None:
            current_v = 0
        elif isinstance(current, int):
            current_v = current
        else:
            current_v = int(current.split(".")[0])
        return f"{current_v + 1:010d}.{random.getrandbits(32):08x}"

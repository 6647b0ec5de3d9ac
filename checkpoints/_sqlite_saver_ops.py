"""Helpers of :mod:`checkpoints.sqlite_saver`: row building and the write operations.

The ``*(conn)`` operations run inside the group-commit writer's transaction (see
:mod:`checkpoints._sqlite_writer`); everything else runs in the caller.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    get_checkpoint_id,
)
from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoints import _sqlite_saver_sql as sql
from checkpoints._sqlite_writer import WriteFn

Row = tuple[Any, ...]
BlobRows = list[Row]
CheckpointRow = tuple[str, str, str, "str | None", str, bytes, str, str]
"""A row of the ``*_CHECKPOINT*_SQL`` and ``LIST_*_SQL`` selects."""

# Values kept inside the checkpoint row instead of a blob row. Small primitives cost less
# to re-serialise every step than a second table write; anything that can grow (lists,
# dicts, messages, long strings) is a versioned blob written only when it changes.
_INLINE_TYPES = (int, float, bool)
_INLINE_STR_MAX = 128

_FILTER_KEY = re.compile(r"^[A-Za-z0-9_.\-]+$")

_BEGIN_WRITE_SQL = "BEGIN IMMEDIATE"
_COMMIT_SQL = "COMMIT"
_ROLLBACK_SQL = "ROLLBACK"


def file_path(path: str | os.PathLike[str]) -> str:
    """Validate a database path and create its parent directories."""
    text = os.fspath(path)
    if text == ":memory:" or text.startswith("file:"):
        raise ValueError("FastSqliteSaver needs a database file path (not :memory: or a URI)")
    parent = Path(text).parent
    parent.mkdir(parents=True, exist_ok=True)
    return text


def create_schema(conn: sqlite3.Connection) -> None:
    """Create the ``lg_*`` tables if missing and check the schema version."""
    # Runs before the group-commit writer exists, with SQLite's busy timeout still set.
    conn.execute(_BEGIN_WRITE_SQL)
    try:
        for statement in sql.SCHEMA_STATEMENTS:
            conn.execute(statement)
        row = conn.execute(sql.GET_SCHEMA_VERSION_SQL).fetchone()
        if row is None:
            conn.execute(sql.SET_SCHEMA_VERSION_SQL, (str(sql.SCHEMA_VERSION),))
        elif int(row[0]) > sql.SCHEMA_VERSION:
            raise RuntimeError(
                f"lg_* tables have schema version {row[0]}, newer than this code "
                f"({sql.SCHEMA_VERSION})"
            )
        conn.execute(_COMMIT_SQL)
    except BaseException:
        conn.execute(_ROLLBACK_SQL)
        raise


def is_inline(value: Any) -> bool:
    """Whether a channel value is kept in the checkpoint row rather than a blob."""
    # Exact type checks: a str/int subclass (enums, pydantic types) needs the serializer.
    t = type(value)
    return value is None or t in _INLINE_TYPES or (t is str and len(value) <= _INLINE_STR_MAX)


def checkpoint_rows(
    serde: SerializerProtocol,
    thread_id: str,
    checkpoint_ns: str,
    parent_id: str | None,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
) -> tuple[BlobRows, Row]:
    """Split a checkpoint into blob rows for changed channels and its own row."""
    versions = checkpoint["channel_versions"]
    inline: dict[str, Any] = {}
    blob_versions: dict[str, str] = {}
    blob_rows: BlobRows = []
    for channel, value in checkpoint["channel_values"].items():
        if is_inline(value):
            inline[channel] = value
            continue
        version = versions.get(channel)
        if version is None:
            # No version, no key to store it under; LangGraph never checkpoints such a
            # value (the Postgres and in-memory savers drop it too).
            continue
        sversion = str(version)
        blob_versions[channel] = sversion
        # An unchanged channel's blob was stored by the checkpoint that changed it, at
        # this same version (or copied/migrated with the thread).
        if channel in new_versions:
            blob_rows.append(
                (thread_id, checkpoint_ns, channel, sversion, *serde.dumps_typed(value))
            )
    stored = dict(checkpoint)
    stored["channel_values"] = inline
    type_, payload = serde.dumps_typed(stored)
    run_id = metadata.get("run_id")
    row = (
        thread_id,
        checkpoint_ns,
        checkpoint["id"],
        parent_id,
        None if run_id is None else str(run_id),
        type_,
        payload,
        json.dumps(blob_versions) if blob_versions else "{}",
        json.dumps(metadata, ensure_ascii=False),
    )
    return blob_rows, row


def exec_put(blob_rows: BlobRows, row: Row, query: str, conn: sqlite3.Connection) -> None:
    """Operation: store a checkpoint's new blobs, then its row."""
    if blob_rows:
        conn.executemany(sql.INSERT_BLOB_SQL, blob_rows)
    conn.execute(query, row)


def exec_many(query: str, rows: list[Row], conn: sqlite3.Connection) -> None:
    """Operation: run ``query`` for each row."""
    if rows:
        conn.executemany(query, rows)


def exec_migrated(batch: list[tuple[BlobRows, Row]], conn: sqlite3.Connection) -> None:
    """Operation: store imported checkpoints, keeping rows that already exist."""
    for blob_rows, row in batch:
        exec_put(blob_rows, row, sql.INSERT_CHECKPOINT_IGNORE_SQL, conn)


def list_rows(
    conn: sqlite3.Connection,
    config: RunnableConfig | None,
    filter: dict[str, Any] | None,
    before: RunnableConfig | None,
    limit: int | None,
) -> list[CheckpointRow]:
    """Select the checkpoint rows ``alist``/``list`` return, newest first."""
    checkpoint_id = get_checkpoint_id(config) if config else None
    before_id = get_checkpoint_id(before) if before else None
    filter_json = None
    if filter:
        for key in filter:
            if not _FILTER_KEY.match(key):
                raise ValueError(f"invalid metadata filter key: {key!r}")
        filter_json = json.dumps(filter, separators=(",", ":"), default=str)
    tail = (checkpoint_id, before_id, filter_json, -1 if limit is None else int(limit))
    if config is None:
        return conn.execute(sql.LIST_ALL_SQL, tail).fetchall()
    thread_id = str(config["configurable"]["thread_id"])
    checkpoint_ns = config["configurable"].get("checkpoint_ns")
    if checkpoint_ns is None:
        return conn.execute(sql.LIST_THREAD_SQL, (thread_id, *tail)).fetchall()
    return conn.execute(sql.LIST_THREAD_NS_SQL, (thread_id, checkpoint_ns, *tail)).fetchall()


def delete_threads(thread_ids: list[str], conn: sqlite3.Connection) -> None:
    """Operation: delete every row of the threads."""
    params = [(t,) for t in thread_ids]
    conn.executemany(sql.DELETE_THREAD_CHECKPOINTS_SQL, params)
    conn.executemany(sql.DELETE_THREAD_BLOBS_SQL, params)
    conn.executemany(sql.DELETE_THREAD_WRITES_SQL, params)


def copy_thread(source: str, target: str, conn: sqlite3.Connection) -> None:
    """Operation: copy every row of a thread to another thread ID."""
    conn.execute(sql.COPY_THREAD_CHECKPOINTS_SQL, (target, source))
    conn.execute(sql.COPY_THREAD_BLOBS_SQL, (target, source))
    conn.execute(sql.COPY_THREAD_WRITES_SQL, (target, source))


def gc_blobs(conn: sqlite3.Connection, thread_id: str, checkpoint_ns: str) -> None:
    """Delete the namespace's blobs that no remaining checkpoint references."""
    referenced = set(conn.execute(sql.SELECT_REFERENCED_BLOBS_SQL, (thread_id, checkpoint_ns)))
    garbage = [
        (thread_id, checkpoint_ns, channel, version)
        for channel, version in conn.execute(
            sql.SELECT_BLOB_KEYS_SQL, (thread_id, checkpoint_ns)
        ).fetchall()
        if (channel, version) not in referenced
    ]
    if garbage:
        conn.executemany(sql.DELETE_BLOB_SQL, garbage)


def prune_fn(thread_ids: Sequence[str], strategy: str) -> WriteFn:
    """Validate prune arguments and return the operation."""
    # Validate in the caller so a bad argument raises before anything is queued.
    if isinstance(thread_ids, str):
        raise TypeError("thread_ids must be a sequence of thread IDs, not a str")
    if strategy not in ("keep_latest", "delete"):
        raise ValueError(f"Unknown prune strategy: {strategy!r}")
    ids = [str(t) for t in thread_ids]
    if strategy == "delete":
        return partial(delete_threads, ids)
    return partial(keep_latest, ids)


def keep_latest(thread_ids: list[str], conn: sqlite3.Connection) -> None:
    """Operation: keep the latest checkpoint of each namespace of the threads."""
    # Everything runs in the writer's transaction: a run saving meanwhile queues behind
    # it, so the "latest" seen here is the latest, and blobs a kept checkpoint needs
    # cannot disappear under it.
    delta = [t for t in thread_ids if conn.execute(sql.SELECT_DELTA_THREAD_SQL, (t,)).fetchone()]
    if delta:
        raise NotImplementedError(
            f"keep_latest can't prune threads that use a DeltaChannel: {', '.join(delta)}"
        )
    for thread_id in thread_ids:
        heads = conn.execute(sql.SELECT_NAMESPACE_HEADS_SQL, (thread_id,)).fetchall()
        for checkpoint_ns, head in heads:
            doomed = [
                (thread_id, checkpoint_ns, cid)
                for (cid,) in conn.execute(
                    sql.SELECT_NAMESPACE_CHECKPOINT_IDS_SQL, (thread_id, checkpoint_ns)
                ).fetchall()
                if cid != head
            ]
            if not doomed:
                continue
            conn.executemany(sql.DELETE_CHECKPOINT_SQL, doomed)
            conn.execute(sql.DELETE_NAMESPACE_WRITES_EXCEPT_SQL, (thread_id, checkpoint_ns, head))
            conn.execute(sql.CLEAR_PARENT_SQL, (thread_id, checkpoint_ns, head))
            gc_blobs(conn, thread_id, checkpoint_ns)


def delete_for_runs(run_ids: list[str], conn: sqlite3.Connection) -> None:
    """Operation: delete the checkpoints (and writes) of runs, then unused blobs."""
    if not run_ids:
        return
    keys = conn.execute(sql.SELECT_RUN_CHECKPOINTS_SQL, (json.dumps(run_ids),)).fetchall()
    if not keys:
        return
    conn.executemany(sql.DELETE_CHECKPOINT_WRITES_SQL, keys)
    conn.executemany(sql.DELETE_CHECKPOINT_SQL, keys)
    for thread_id, checkpoint_ns in {(k[0], k[1]) for k in keys}:
        gc_blobs(conn, thread_id, checkpoint_ns)

"""SQL for :mod:`checkpoints.sqlite_saver`: schema, statements and connection set-up.

Every statement is a constant with bound parameters. Variable-length inputs (metadata
filters, lists of run IDs, the channel versions a checkpoint reads) are bound as one JSON
text parameter and unpacked with SQLite's ``json_each``, so no SQL text is ever built at
run time and the connection's statement cache (``cached_statements``) keeps every
statement prepared.

All tables are prefixed ``lg_`` so the saver can share a database file with the
project's own tables; nothing here touches a table it did not create.
"""

from __future__ import annotations

SCHEMA_VERSION = 1
"""Version of the ``lg_*`` schema, kept in ``lg_meta`` (never in ``PRAGMA user_version``,
which belongs to whoever owns the rest of the file)."""

# WITHOUT ROWID: every access path is the primary key, so the rows live in the key's own
# b-tree. A rowid table would keep a second b-tree (the PK index) and write two pages per
# inserted row instead of one; WAL commits cost a page write each.
SCHEMA_STATEMENTS: tuple[str, ...] = (
    """
    CREATE TABLE IF NOT EXISTS lg_meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    # `checkpoint` is the serialised Checkpoint with only the inline (small primitive)
    # channel values; `blob_versions` is the JSON object {channel: version} of the
    # values kept in `lg_blobs`. `metadata` is JSON text so `alist(filter=...)` can use
    # json_extract. `run_id` is lifted out of the metadata for `delete_for_runs`.
    """
    CREATE TABLE IF NOT EXISTS lg_checkpoints (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        checkpoint_id TEXT NOT NULL,
        parent_checkpoint_id TEXT,
        run_id TEXT,
        type TEXT NOT NULL,
        checkpoint BLOB NOT NULL,
        blob_versions TEXT NOT NULL DEFAULT '{}',
        metadata TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
    ) WITHOUT ROWID
    """,
    """
    CREATE INDEX IF NOT EXISTS lg_checkpoints_run_id
        ON lg_checkpoints (run_id) WHERE run_id IS NOT NULL
    """,
    # One row per (channel, version): a step stores only the channels it changed.
    """
    CREATE TABLE IF NOT EXISTS lg_blobs (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        channel TEXT NOT NULL,
        version TEXT NOT NULL,
        type TEXT NOT NULL,
        blob BLOB,
        PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
    ) WITHOUT ROWID
    """,
    """
    CREATE TABLE IF NOT EXISTS lg_writes (
        thread_id TEXT NOT NULL,
        checkpoint_ns TEXT NOT NULL DEFAULT '',
        checkpoint_id TEXT NOT NULL,
        task_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        task_path TEXT NOT NULL DEFAULT '',
        channel TEXT NOT NULL,
        type TEXT,
        value BLOB,
        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
    ) WITHOUT ROWID
    """,
)

GET_SCHEMA_VERSION_SQL = "SELECT value FROM lg_meta WHERE key = 'schema_version'"
SET_SCHEMA_VERSION_SQL = "INSERT OR REPLACE INTO lg_meta (key, value) VALUES ('schema_version', ?)"

# --- writes (executed by the single writer connection) -------------------------------

UPSERT_CHECKPOINT_SQL = """
INSERT OR REPLACE INTO lg_checkpoints (
    thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id,
    type, checkpoint, blob_versions, metadata
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

# Migration and copy must not overwrite what the saver itself already stored.
INSERT_CHECKPOINT_IGNORE_SQL = """
INSERT OR IGNORE INTO lg_checkpoints (
    thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id,
    type, checkpoint, blob_versions, metadata
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

# A (channel, version) pair names one value; with the saver's random version suffix a
# second insert of the same key is a retry of the same put, so the first row wins.
INSERT_BLOB_SQL = """
INSERT OR IGNORE INTO lg_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
VALUES (?, ?, ?, ?, ?, ?)
"""

# Special writes (ERROR, INTERRUPT, ...) have fixed negative indexes and the latest one
# wins; regular writes keep the first copy so a retried task cannot reorder them. Same
# rule as every LangGraph saver (WRITES_IDX_MAP).
UPSERT_WRITE_SQL = """
INSERT OR REPLACE INTO lg_writes (
    thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path, channel, type, value
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

INSERT_WRITE_IGNORE_SQL = """
INSERT OR IGNORE INTO lg_writes (
    thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path, channel, type, value
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

DELETE_THREAD_CHECKPOINTS_SQL = "DELETE FROM lg_checkpoints WHERE thread_id = ?"
DELETE_THREAD_BLOBS_SQL = "DELETE FROM lg_blobs WHERE thread_id = ?"
DELETE_THREAD_WRITES_SQL = "DELETE FROM lg_writes WHERE thread_id = ?"

COPY_THREAD_CHECKPOINTS_SQL = """
INSERT OR REPLACE INTO lg_checkpoints (
    thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id,
    type, checkpoint, blob_versions, metadata
)
SELECT ?, checkpoint_ns, checkpoint_id, parent_checkpoint_id, run_id,
       type, checkpoint, blob_versions, metadata
FROM lg_checkpoints WHERE thread_id = ?
"""

COPY_THREAD_BLOBS_SQL = """
INSERT OR REPLACE INTO lg_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
SELECT ?, checkpoint_ns, channel, version, type, blob FROM lg_blobs WHERE thread_id = ?
"""

COPY_THREAD_WRITES_SQL = """
INSERT OR REPLACE INTO lg_writes (
    thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path, channel, type, value
)
SELECT ?, checkpoint_ns, checkpoint_id, task_id, idx, task_path, channel, type, value
FROM lg_writes WHERE thread_id = ?
"""

# `?` is a JSON array of run IDs.
SELECT_RUN_CHECKPOINTS_SQL = """
SELECT thread_id, checkpoint_ns, checkpoint_id FROM lg_checkpoints
WHERE run_id IN (SELECT value FROM json_each(?))
"""

DELETE_CHECKPOINT_SQL = """
DELETE FROM lg_checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?
"""

DELETE_CHECKPOINT_WRITES_SQL = """
DELETE FROM lg_writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?
"""

# keep_latest: the newest checkpoint of every namespace of a thread.
SELECT_NAMESPACE_HEADS_SQL = """
SELECT checkpoint_ns, MAX(checkpoint_id) FROM lg_checkpoints
WHERE thread_id = ? GROUP BY checkpoint_ns
"""

SELECT_NAMESPACE_CHECKPOINT_IDS_SQL = """
SELECT checkpoint_id FROM lg_checkpoints WHERE thread_id = ? AND checkpoint_ns = ?
"""

# Orphaned writes: a run saves a step's writes in the background, so writes can exist
# for a checkpoint that was never saved. keep_latest drops every write not attached to
# the kept checkpoint.
DELETE_NAMESPACE_WRITES_EXCEPT_SQL = """
DELETE FROM lg_writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id <> ?
"""

CLEAR_PARENT_SQL = """
UPDATE lg_checkpoints SET parent_checkpoint_id = NULL
WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?
"""

SELECT_DELTA_THREAD_SQL = """
SELECT 1 FROM lg_checkpoints
WHERE thread_id = ?
  AND json_extract(metadata, '$.counters_since_delta_snapshot') IS NOT NULL
LIMIT 1
"""

SELECT_REFERENCED_BLOBS_SQL = """
SELECT DISTINCT j.key, j.value
FROM lg_checkpoints AS c, json_each(c.blob_versions) AS j
WHERE c.thread_id = ? AND c.checkpoint_ns = ?
"""

SELECT_BLOB_KEYS_SQL = """
SELECT channel, version FROM lg_blobs WHERE thread_id = ? AND checkpoint_ns = ?
"""

DELETE_BLOB_SQL = """
DELETE FROM lg_blobs
WHERE thread_id = ? AND checkpoint_ns = ? AND channel = ? AND version = ?
"""

# --- reads (executed by per-thread reader connections) -------------------------------

GET_CHECKPOINT_BY_ID_SQL = """
SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
       type, checkpoint, blob_versions, metadata
FROM lg_checkpoints
WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?
"""

GET_LATEST_CHECKPOINT_SQL = """
SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
       type, checkpoint, blob_versions, metadata
FROM lg_checkpoints
WHERE thread_id = ? AND checkpoint_ns = ?
ORDER BY checkpoint_id DESC
LIMIT 1
"""

# ?3 is the checkpoint's own `blob_versions` text: one primary-key lookup per channel.
# CROSS JOIN pins json_each as the outer loop; with a plain JOIN the planner may scan
# every blob of the namespace (thousands on a long thread) and probe json_each instead.
GET_BLOBS_SQL = """
SELECT b.channel, b.type, b.blob
FROM json_each(?3) AS j
CROSS JOIN lg_blobs AS b
  ON b.thread_id = ?1 AND b.checkpoint_ns = ?2 AND b.channel = j.key AND b.version = j.value
"""

GET_WRITES_SQL = """
SELECT task_id, channel, type, value, task_path, idx FROM lg_writes
WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?
"""

# alist. Optional criteria are `(? IS NULL OR ...)` so each variant is one constant
# statement; the variants differ only in the leading equality constraints, which decide
# whether SQLite can walk the primary key in checkpoint_id order. Parameters:
# checkpoint_id, before, filter (JSON object of top-level metadata key -> value), limit
# (-1 = none). A filter key matches a metadata key of the same name exactly ('$."key"');
# JSON scalars compare as SQL values, objects and arrays as minified JSON text.
LIST_THREAD_NS_SQL = """
SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
       type, checkpoint, blob_versions, metadata
FROM lg_checkpoints
WHERE thread_id = ?1 AND checkpoint_ns = ?2
  AND (?3 IS NULL OR checkpoint_id = ?3)
  AND (?4 IS NULL OR checkpoint_id < ?4)
  AND (?5 IS NULL OR NOT EXISTS (
        SELECT 1 FROM json_each(?5) AS f
        WHERE json_extract(metadata, '$."' || f.key || '"') IS NOT f.value))
ORDER BY checkpoint_id DESC
LIMIT ?6
"""

LIST_THREAD_SQL = """
SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
       type, checkpoint, blob_versions, metadata
FROM lg_checkpoints
WHERE thread_id = ?1
  AND (?2 IS NULL OR checkpoint_id = ?2)
  AND (?3 IS NULL OR checkpoint_id < ?3)
  AND (?4 IS NULL OR NOT EXISTS (
        SELECT 1 FROM json_each(?4) AS f
        WHERE json_extract(metadata, '$."' || f.key || '"') IS NOT f.value))
ORDER BY checkpoint_id DESC
LIMIT ?5
"""

LIST_ALL_SQL = """
SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
       type, checkpoint, blob_versions, metadata
FROM lg_checkpoints
WHERE (?1 IS NULL OR checkpoint_id = ?1)
  AND (?2 IS NULL OR checkpoint_id < ?2)
  AND (?3 IS NULL OR NOT EXISTS (
        SELECT 1 FROM json_each(?3) AS f
        WHERE json_extract(metadata, '$."' || f.key || '"') IS NOT f.value))
ORDER BY checkpoint_id DESC
LIMIT ?4
"""

# --- migration from langgraph-checkpoint-sqlite's tables ------------------------------

SOURCE_TABLES_SQL = (
    "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('checkpoints', 'writes')"
)

SOURCE_WRITES_COLUMNS_SQL = "SELECT name FROM pragma_table_info('writes')"

SOURCE_CHECKPOINTS_SQL = """
SELECT thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata
FROM checkpoints ORDER BY thread_id, checkpoint_ns, checkpoint_id
"""

SOURCE_WRITES_SQL = """
SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, idx, task_path, channel, type, value
FROM writes ORDER BY thread_id, checkpoint_ns, checkpoint_id, task_id, idx
"""

# Databases written before langgraph-checkpoint-sqlite added `task_path`.
SOURCE_WRITES_NO_PATH_SQL = """
SELECT thread_id, checkpoint_ns, checkpoint_id, task_id, idx, '', channel, type, value
FROM writes ORDER BY thread_id, checkpoint_ns, checkpoint_id, task_id, idx
"""

"""SQL for :mod:`checkpoints.sqlite` (the run store): every statement is a constant.

Parameters are always bound; variable-length filters are one JSON parameter unpacked with
``json_each``, so no SQL text is built at run time and every statement stays in the
connection's statement cache. The tables are made by ``migrations/sqlite/NNNN_*.sql``.
"""

from __future__ import annotations

from typing import LiteralString

__all__ = [
    "COUNT_RUNS",
    "DELETE_RUN",
    "DELETE_THREAD",
    "INSERT_EVENT",
    "INSERT_EVENT_IDEMPOTENT",
    "INSERT_LOG",
    "INSERT_RUN",
    "INSERT_STEP",
    "INSERT_THREAD",
    "INSERT_WORKFLOW",
    "LIST_RUNS",
    "LIST_THREADS",
    "LIST_THREAD_RUNS",
    "LIST_WORKFLOWS",
    "PRAGMA_FOREIGN_KEYS",
    "PRAGMA_NO_BUSY_TIMEOUT",
    "PRAGMA_QUERY_ONLY",
    "PRAGMA_SYNC_FULL",
    "PRAGMA_SYNC_NORMAL",
    "PRAGMA_WAL",
    "RELEASE_JOB",
    "ROLLBACK_TO_JOB",
    "SAVEPOINT_JOB",
    "SELECT_EVENTS_AFTER",
    "SELECT_LAST_EVENT_ID",
    "SELECT_LAST_STEP_SEQ",
    "SELECT_LOGS",
    "SELECT_RUN",
    "SELECT_RUN_STATUS",
    "SELECT_STEPS",
    "SELECT_STEP_EVENT",
    "SELECT_STEP_KEYS",
    "SELECT_THREAD",
    "SELECT_WORKFLOW_LATEST",
    "SELECT_WORKFLOW_LATEST_HEAD",
    "SELECT_WORKFLOW_VERSION",
    "SELECT_WORKFLOW_VERSIONS",
    "STEP_COLUMNS",
    "UPDATE_THREAD",
]

PRAGMA_WAL: LiteralString = "PRAGMA journal_mode = WAL"
PRAGMA_SYNC_NORMAL: LiteralString = "PRAGMA synchronous = NORMAL"
PRAGMA_SYNC_FULL: LiteralString = "PRAGMA synchronous = FULL"
PRAGMA_FOREIGN_KEYS: LiteralString = "PRAGMA foreign_keys = ON"
PRAGMA_QUERY_ONLY: LiteralString = "PRAGMA query_only = ON"
# The group-commit writer does its own waiting for the write lock, and never on the loop.
PRAGMA_NO_BUSY_TIMEOUT: LiteralString = "PRAGMA busy_timeout = 0"

# Every store job runs inside its own savepoint of the shared transaction, so a job that
# fails rolls back only its own rows, never the checkpoints committed beside it.
SAVEPOINT_JOB: LiteralString = "SAVEPOINT run_store_job"
RELEASE_JOB: LiteralString = "RELEASE run_store_job"
ROLLBACK_TO_JOB: LiteralString = "ROLLBACK TO run_store_job"

INSERT_WORKFLOW: LiteralString = (
    "INSERT INTO workflows (workflow_id, version, definition, content_hash, created_at)"
    " VALUES (:workflow_id, :version, :definition, :content_hash, :created_at)"
)
SELECT_WORKFLOW_LATEST_HEAD: LiteralString = (
    "SELECT version, content_hash, created_at FROM workflows WHERE workflow_id = ?"
    " ORDER BY version DESC LIMIT 1"
)
SELECT_WORKFLOW_LATEST: LiteralString = (
    "SELECT * FROM workflows WHERE workflow_id = ? ORDER BY version DESC LIMIT 1"
)
SELECT_WORKFLOW_VERSION: LiteralString = (
    "SELECT * FROM workflows WHERE workflow_id = ? AND version = ?"
)
SELECT_WORKFLOW_VERSIONS: LiteralString = (
    "SELECT version FROM workflows WHERE workflow_id = ? ORDER BY version"
)
LIST_WORKFLOWS: LiteralString = """
SELECT w.* FROM workflows AS w
JOIN (SELECT workflow_id, MAX(version) AS version FROM workflows GROUP BY workflow_id) AS latest
  USING (workflow_id, version)
ORDER BY w.workflow_id
"""

INSERT_RUN: LiteralString = """
INSERT INTO runs (run_id, workflow_id, workflow_version, thread_id, status, priority, input,
  result, error, error_code, current_node, progress, timeout_seconds, attempts, owner, metadata,
  created_at, updated_at, started_at, finished_at)
VALUES (:run_id, :workflow_id, :workflow_version, :thread_id, :status, :priority, :input,
  :result, :error, :error_code, :current_node, :progress, :timeout_seconds, :attempts, :owner,
  :metadata, :created_at, :updated_at, :started_at, :finished_at)
ON CONFLICT (run_id) DO NOTHING
"""
SELECT_RUN: LiteralString = "SELECT * FROM runs WHERE run_id = ?"
SELECT_RUN_STATUS: LiteralString = "SELECT status, started_at FROM runs WHERE run_id = ?"
# Variable-length status filters are bound as one JSON array and unpacked by json_each,
# so the SQL text never changes with the arguments.
COUNT_RUNS: LiteralString = """
SELECT status, COUNT(*) AS n FROM runs GROUP BY status
"""

LIST_RUNS: LiteralString = """
SELECT * FROM runs
WHERE (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:workflow_id IS NULL OR workflow_id = :workflow_id)
ORDER BY created_at, rowid
LIMIT :limit OFFSET :offset
"""
# One thread's runs: its own statement, since `:thread_id IS NULL OR ...` would keep SQLite
# from searching runs_thread_created and scan every run instead.
LIST_THREAD_RUNS: LiteralString = """
SELECT * FROM runs
WHERE thread_id = :thread_id
  AND (:statuses IS NULL OR status IN (SELECT value FROM json_each(:statuses)))
  AND (:workflow_id IS NULL OR workflow_id = :workflow_id)
ORDER BY created_at, rowid
LIMIT :limit OFFSET :offset
"""
DELETE_RUN: LiteralString = "DELETE FROM runs WHERE run_id = ?"

# Threads (migration 0002): a taken id is not an error, the caller gets the existing record.
INSERT_THREAD: LiteralString = """
INSERT INTO threads (thread_id, graph_id, metadata, input_keys, created_at, updated_at)
VALUES (:thread_id, :graph_id, :metadata, :input_keys, :created_at, :updated_at)
ON CONFLICT (thread_id) DO NOTHING
"""
SELECT_THREAD: LiteralString = "SELECT * FROM threads WHERE thread_id = ?"
UPDATE_THREAD: LiteralString = """
UPDATE threads SET graph_id = :graph_id, metadata = :metadata, input_keys = :input_keys,
  updated_at = :updated_at
WHERE thread_id = :thread_id
"""
DELETE_THREAD: LiteralString = "DELETE FROM threads WHERE thread_id = ?"
LIST_THREADS: LiteralString = """
SELECT * FROM threads
WHERE (:ids IS NULL OR thread_id IN (SELECT value FROM json_each(:ids)))
ORDER BY created_at, rowid
"""

# A status event must not vanish, so transition/create_run use a plain INSERT (a taken id
# is a ConflictError); record() uses DO NOTHING so a replayed event is a no-op.
INSERT_EVENT: LiteralString = (
    "INSERT INTO events (run_id, id, type, data, created_at)"
    " VALUES (:run_id, :id, :type, :data, :created_at)"
)
INSERT_EVENT_IDEMPOTENT: LiteralString = INSERT_EVENT + " ON CONFLICT DO NOTHING"
# A run's events: the events table, and the steps whose row holds their event (``data`` NULL
# marks those). One statement, so both are read from the same snapshot: a step event
# committed after an events row with a lower id is never seen without it.
SELECT_EVENTS_AFTER: LiteralString = """
SELECT run_id, id, type, data, created_at, NULL AS seq, NULL AS task_id, NULL AS attempt,
  NULL AS step, NULL AS node_type, NULL AS status, NULL AS completed, NULL AS result,
  NULL AS message, NULL AS error_code, NULL AS error_message, NULL AS started_at,
  NULL AS finished_at, NULL AS duration_ms
FROM events WHERE run_id = ?1 AND id > ?2
UNION ALL
SELECT run_id, event_id, 'step', NULL, finished_at, seq, task_id, attempt, step, node_type,
  status, completed, result, message, error_code, error_message, started_at, finished_at,
  duration_ms
FROM steps WHERE run_id = ?1 AND event_id > ?2
ORDER BY 2 LIMIT ?3
"""
SELECT_STEP_EVENT: LiteralString = "SELECT 1 FROM steps WHERE run_id = ? AND event_id = ?"
SELECT_LAST_EVENT_ID: LiteralString = """
SELECT MAX(
  COALESCE((SELECT MAX(id) FROM events WHERE run_id = ?1), 0),
  COALESCE((SELECT MAX(event_id) FROM steps WHERE run_id = ?1 AND event_id IS NOT NULL), 0)
) AS id
"""

# ON CONFLICT DO NOTHING (not INSERT OR IGNORE, which would also swallow CHECK and NOT NULL
# failures) skips only a row whose idempotency key is taken. A NULL seq takes the next number;
# executemany runs row by row, so each row sees the ones before it.
#: The columns of a steps row, in INSERT_STEP's parameter order.
STEP_COLUMNS = (
    "run_id",
    "seq",
    "task_id",
    "attempt",
    "step",
    "node_type",
    "status",
    "completed",
    "result",
    "message",
    "error_code",
    "error_message",
    "started_at",
    "finished_at",
    "duration_ms",
    "event_id",
)
# Positional: binding by name costs the writer a lookup per column and row.
INSERT_STEP: LiteralString = """
INSERT INTO steps (run_id, seq, task_id, attempt, step, node_type, status, completed, result,
  message, error_code, error_message, started_at, finished_at, duration_ms, event_id)
VALUES (?1,
  COALESCE(?2, (SELECT COALESCE(MAX(seq), 0) + 1 FROM steps WHERE run_id = ?1)),
  ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
ON CONFLICT DO NOTHING
"""
SELECT_STEPS: LiteralString = "SELECT * FROM steps WHERE run_id = ? ORDER BY seq, pk"
SELECT_LAST_STEP_SEQ: LiteralString = (
    "SELECT COALESCE(MAX(seq), 0) AS seq FROM steps WHERE run_id = ?"
)
SELECT_STEP_KEYS: LiteralString = (
    "SELECT task_id, attempt FROM steps WHERE run_id = ? AND task_id IS NOT NULL"
)

INSERT_LOG: LiteralString = """
INSERT INTO logs (id, run_id, level, level_no, message, node_id, created_at)
VALUES (:id, :run_id, :level, :level_no, :message, :node_id, :created_at)
ON CONFLICT DO NOTHING
"""
SELECT_LOGS: LiteralString = (
    "SELECT * FROM logs WHERE run_id = ? AND id > ? AND level_no >= ? ORDER BY id LIMIT ?"
)

-- graph-runtime's own tables (DESIGN.md §6). SHIPPED: never edit this file; add 0002_*.sql.
-- migrate.py runs it in one transaction and records its checksum in graph_runtime_migrations.
-- The LangGraph checkpointer shares the database file with its own tables; nothing here
-- touches them. Timestamps are fixed-width ISO-8601 UTC text (text order = time order);
-- JSON columns are text.

CREATE TABLE workflows (
    workflow_id TEXT NOT NULL,
    version INTEGER NOT NULL CHECK (version >= 1),
    definition TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (workflow_id, version)
);

CREATE TABLE runs (
    run_id TEXT NOT NULL PRIMARY KEY,
    workflow_id TEXT NOT NULL,
    workflow_version INTEGER,
    thread_id TEXT NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL,
    input TEXT NOT NULL,
    result TEXT,
    error TEXT,
    error_code TEXT,
    current_node TEXT,
    progress REAL NOT NULL DEFAULT 0,
    timeout_seconds REAL,
    attempts INTEGER NOT NULL DEFAULT 0,
    owner TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT
);

-- The queue and recovery scans: runs of some statuses, highest priority, oldest first.
CREATE INDEX runs_status_priority_created ON runs (status, priority DESC, created_at);
CREATE INDEX runs_created ON runs (created_at);
CREATE INDEX runs_workflow_created ON runs (workflow_id, created_at);

-- One row per (run, event id); the composite primary key is the (run_id, id) index used by
-- SSE replay and makes INSERT OR IGNORE a no-op for a replayed event. A rowid table (not
-- WITHOUT ROWID) because step events can carry large payloads.
CREATE TABLE events (
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    id INTEGER NOT NULL CHECK (id >= 1),
    type TEXT NOT NULL,
    data TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_id, id)
);

-- One row per attempt of a node task. The idempotency key is (run_id, task_id, attempt);
-- a step without a LangGraph task id is keyed by (run_id, seq) instead. Two partial unique
-- indexes, so a replay is ignored but two different tasks that share a seq are both kept.
CREATE TABLE steps (
    pk INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    seq INTEGER NOT NULL CHECK (seq >= 1),
    task_id TEXT,
    attempt INTEGER NOT NULL CHECK (attempt >= 1),
    step TEXT NOT NULL,
    node_type TEXT,
    status TEXT NOT NULL,
    completed INTEGER NOT NULL,
    result TEXT,
    message TEXT NOT NULL,
    error_code TEXT,
    error_message TEXT,
    started_at TEXT,
    finished_at TEXT,
    duration_ms REAL
);

CREATE UNIQUE INDEX steps_task_attempt ON steps (run_id, task_id, attempt)
    WHERE task_id IS NOT NULL;
CREATE UNIQUE INDEX steps_untasked_seq ON steps (run_id, seq) WHERE task_id IS NULL;
CREATE INDEX steps_run_seq ON steps (run_id, seq);

-- Log ids are global rowids; per run they only grow, so `after` pages a run's logs.
CREATE TABLE logs (
    id INTEGER PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    level TEXT NOT NULL,
    level_no INTEGER NOT NULL,
    message TEXT NOT NULL,
    node_id TEXT,
    created_at TEXT NOT NULL
);

CREATE INDEX logs_run_id ON logs (run_id, id);

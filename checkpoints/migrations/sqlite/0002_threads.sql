-- Threads of the LangGraph Server API (server/agent_protocol): LangGraph threads that outlive
-- their runs. SHIPPED: never edit this file; add 0003_*.sql. The thread's state lives in the
-- checkpointer's tables and its runs in `runs` (runs.thread_id); its status is derived from
-- both on every read, so no column here can go stale.

CREATE TABLE threads (
    thread_id TEXT NOT NULL PRIMARY KEY,
    graph_id TEXT,
    metadata TEXT NOT NULL DEFAULT '{}',
    input_keys TEXT NOT NULL DEFAULT '[]',
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);

CREATE INDEX threads_created ON threads (created_at);

-- A thread's runs in creation order: listing them, and finding the active one.
CREATE INDEX runs_thread_created ON runs (thread_id, created_at);

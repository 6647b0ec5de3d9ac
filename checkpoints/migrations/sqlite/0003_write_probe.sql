-- A scratch table for the write probe: checking that the database takes writes again after
-- an outage (disk full, read-only) inserts a row here and rolls it back, so the check needs
-- the same free room a real write does. It never holds a committed row.
-- SHIPPED: never edit this file; add 0004_*.sql.

CREATE TABLE graph_runtime_write_probe (
    id INTEGER PRIMARY KEY,
    pad BLOB NOT NULL
);

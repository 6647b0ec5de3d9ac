-- Steps keep one index. SHIPPED: never edit this file; add 0005_*.sql.
--
-- Every step record is inserted in the transaction of its task's checkpoint, and every
-- B-tree page an insert touches is written to the WAL at that commit. A step used to touch
-- three (the table, steps_task_attempt and steps_run_seq). Now it touches two: the
-- idempotency index no longer leaves out rows without a task id (NULLs never conflict in a
-- UNIQUE index, so the rule it enforces is the same), which lets it serve every lookup by
-- run. steps_run_seq is dropped: reading a run's steps in seq order now sorts them, and the
-- highest seq (read on resume, and for a step recorded without a seq) takes a scan of the
-- run's steps.

DROP INDEX steps_task_attempt;
DROP INDEX steps_run_seq;
CREATE UNIQUE INDEX steps_run_task_attempt ON steps (run_id, task_id, attempt);

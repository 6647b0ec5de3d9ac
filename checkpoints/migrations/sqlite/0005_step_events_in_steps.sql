-- A step's event is stored in its steps row. SHIPPED: never edit this file; add 0006_*.sql.
--
-- A step event's data is its step record, so the recorder used to write the record twice,
-- as a steps row and as an events row, both committed with the task's checkpoint: every
-- B-tree page each insert touched was written to the WAL at that commit. Now the steps row
-- carries the event's id, and reading a run's events merges the events table with the steps
-- that have one; the event is rebuilt from the row (its data is the record, its time the
-- record's finished_at). Steps recorded before this migration keep their events rows
-- (event_id NULL), and so does a step whose result is not plain JSON (its event keeps the
-- data as it was published).

ALTER TABLE steps ADD COLUMN event_id INTEGER;

-- A run's step events in id order (replay, the last event id, a taken-id check).
CREATE INDEX steps_run_event ON steps (run_id, event_id) WHERE event_id IS NOT NULL;

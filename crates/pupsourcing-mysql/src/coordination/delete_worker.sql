-- Removes one worker's row and, by the foreign key (ON DELETE CASCADE), its lock row, in that
-- order; the first statement of a removal, so that both exclusive locks are taken before any
-- shard row's (a batch commit takes its worker's lock row shared, then its shard row: the
-- delete waits for the batches in flight). ? worker id, ? the stale cutoff (microseconds;
-- i64::MAX to remove the worker whatever its heartbeat).
DELETE FROM {workers} WHERE worker_id = ? AND last_heartbeat < ?

-- Removes one worker's row; the first statement of a removal, so that the row's exclusive lock
-- is taken before any shard row's (the order a batch commit takes them in: its worker row
-- shared, then its shard row). ? worker id, ? the stale cutoff (microseconds; i64::MAX to
-- remove the worker whatever its heartbeat).
DELETE FROM {workers} WHERE worker_id = ? AND last_heartbeat < ?

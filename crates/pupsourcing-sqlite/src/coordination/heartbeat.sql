-- Moves a worker's heartbeat to now (database clock) and sets its state. Changes no row when
-- the worker is gone (removed as stale). ?1 worker id, ?2 state.
UPDATE {workers}
SET state = ?2, last_heartbeat = {now}
WHERE worker_id = ?1

-- Worker $1 is alive now (database clock), in state $2. Changes no row when it was removed.
-- A concurrent stale removal either deletes the row first (then this changes nothing) or
-- re-checks the heartbeat this statement wrote and keeps the worker.
UPDATE {schema}.{workers}
   SET last_heartbeat = now(), state = $2
 WHERE worker_id = $1

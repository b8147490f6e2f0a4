-- A worker is alive now (database clock), in a state. Matches no row when it was removed. No
-- batch locks this row (they lock the worker's lock row): a batch in flight does not hold it up.
-- ? state, ? worker id.
UPDATE {workers} SET last_heartbeat = {now}, state = ? WHERE worker_id = ?

-- A worker is alive now (database clock), in a state. Matches no row when it was removed.
-- ? state, ? worker id.
UPDATE {workers} SET last_heartbeat = {now}, state = ? WHERE worker_id = ?

-- A batch commit's first statement: its worker's lock row, locked shared until the batch ends.
-- A removal (whose delete of the workers row deletes this row too, by the foreign key) waits
-- for the batch in flight, and a batch after a removal finds no row (a locking read sees the
-- latest committed row whatever the isolation level). The heartbeat updates the workers row,
-- which no batch locks. ? worker id.
SELECT 1 FROM {worker_locks} WHERE worker_id = ? LOCK IN SHARE MODE

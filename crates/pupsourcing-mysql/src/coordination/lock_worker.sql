-- A batch commit's first statement: its worker's row, locked shared until the batch ends. A
-- removal (its DELETE) waits for the batch in flight, and a batch after a removal finds no row
-- (a locking read sees the latest committed row whatever the isolation level). ? worker id.
SELECT 1 FROM {workers} WHERE worker_id = ? LOCK IN SHARE MODE

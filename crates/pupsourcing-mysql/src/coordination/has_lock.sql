-- Whether a worker has its lock row: a plain read (it takes no lock, whatever the session's
-- isolation level), after its heartbeat found its workers row. ? worker id.
SELECT 1 FROM {worker_locks} WHERE worker_id = ?
